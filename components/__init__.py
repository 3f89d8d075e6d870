"""tenancy: one catalogue (tenants.yaml) rendered into isolated tenants, one Pulumi stack per environment.

The package is imported by the Pulumi program (`__main__.py` at the project root) and by the offline tooling
(`python -m components validate|synth`). Nothing here reads `pulumi.Config` or files except the edge modules
`settings` and `catalogue`.
"""
