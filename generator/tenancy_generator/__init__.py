"""Argo CD ApplicationSet plugin generator backed by the tenancy registry (Amazon Keyspaces).

Argo CD's ApplicationSet controller polls `POST /api/v1/getparams.execute`; the reply holds one parameter map
per enabled tenant row, which the ApplicationSet template turns into one Application per tenant.
"""
