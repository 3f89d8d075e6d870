"""tenancy: one catalogue (tenants.yaml) rendered into isolated tenants, one Pulumi stack per environment.

This package is what `pulumi up` runs: the Pulumi program (`__main__.py` at the project root) imports it. The
offline tooling (`python -m tenancy validate|synth|diff|plan`) lives in its own package, `tenancy/`, and imports
this one; nothing here imports the tooling. Nothing here reads `pulumi.Config` or files except the edge modules
`settings` and `catalogue`.
"""
