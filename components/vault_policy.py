"""The Vault policy of one tenant: read-only access to its own subtree of the kv-v2 mount, plus the two token
endpoints External Secrets calls on its own token, nothing else.

HCL is assembled from strings, so the only defence against a name widening the policy (a `*` or `+` glob,
`..`, a quote or newline ending the path string early) is refusing every segment that is not a plain name.
"""

from __future__ import annotations

from . import naming

# External Secrets' Vault provider (external-secrets v0.17 `pkg/provider/vault`, v1.x/v2.x
# `providers/v1/vault`): `Validate` (validate.go) and `setAuth` (auth.go, `checkToken`) look the login token up
# with `GET auth/token/lookup-self`, and `Close` (client.go, `revokeTokenIfValid`) revokes it with
# `PUT auth/token/revoke-self`. The role keeps `token_no_default_policy`: Vault's `default` policy would also
# grant renew-self, cubbyhole, response wrapping, identity look-ups and more, none of which ESO uses.
TOKEN_SELF_RULES = (
    ("auth/token/lookup-self", ("read",)),
    ("auth/token/revoke-self", ("update",)),
)


def _checked(path: str) -> str:
    problem = naming.vault_path_problem(path)
    if problem:
        raise ValueError(problem)
    return path


def _rule(path: str, capabilities: tuple[str, ...]) -> str:
    caps = ", ".join(f'"{c}"' for c in capabilities)
    return f'path "{path}" {{\n  capabilities = [{caps}]\n}}\n'


def tenant_policy(mount: str, base_path: str) -> str:
    """HCL granting `read` on `<mount>/data/<base_path>/*`, `list`/`read` on its metadata, and the token
    look-up and revocation External Secrets performs on the token its Kubernetes login returned.

    Write, delete and the metadata of any other path stay denied: External Secrets only reads, and tenants
    change their credentials through the catalogue, never directly in Vault. The two token paths act only on
    the calling token (`-self`), so they give no reach into another tenant's token or data.
    """
    mount, base_path = _checked(mount), _checked(base_path)
    rules = [
        (f"{mount}/data/{base_path}/*", ("read",)),
        (f"{mount}/metadata/{base_path}/*", ("list", "read")),
        *TOKEN_SELF_RULES,
    ]
    return "\n".join(_rule(path, caps) for path, caps in rules)
