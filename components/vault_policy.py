"""The Vault policy of one tenant: read-only access to its own subtree of the kv-v2 mount, nothing else.

HCL is assembled from strings, so the only defence against a name widening the policy (a `*` or `+` glob,
`..`, a quote or newline ending the path string early) is refusing every segment that is not a plain name.
"""

from __future__ import annotations

from . import naming


def _checked(path: str) -> str:
    problem = naming.vault_path_problem(path)
    if problem:
        raise ValueError(problem)
    return path


def tenant_policy(mount: str, base_path: str) -> str:
    """HCL granting `read` on `<mount>/data/<base_path>/*` and `list`/`read` on its metadata.

    Write, delete and the metadata of any other path stay denied: External Secrets only reads, and tenants
    change their credentials through the catalogue, never directly in Vault.
    """
    mount, base_path = _checked(mount), _checked(base_path)
    return (
        f'path "{mount}/data/{base_path}/*" {{\n'
        '  capabilities = ["read"]\n'
        "}\n"
        "\n"
        f'path "{mount}/metadata/{base_path}/*" {{\n'
        '  capabilities = ["list", "read"]\n'
        "}\n"
    )
