"""Secret settings stay secret in every input they reach.

A stack marks a setting secret (`pulumi config set --secret`, `secure:` in Pulumi.<stack>.yaml); Pulumi hands the
program its plain text, and a plain string built from it (a Deployment's env, a registry row, a provider's
address) would be stored in the state and shown by `preview` unmasked. The composition root hands this module
the text of the stack's secret settings once (`StackSettings.secret_values`, settings that cannot stay secret
are refused there); the few places that register resources (`kube.apply`, `sdk.register`, `providers.build`,
the registry records) pass their inputs through `mask`, which sends every string containing one of them as a
secret, wherever the value ended up (a whole JSON policy document, an image reference with a digest).
"""

from __future__ import annotations

from typing import Any, Iterable

import pulumi

_values: frozenset[str] = frozenset()


def keep_secret(values: Iterable[str]) -> None:
    """The secret settings of the stack this program run registers (set once, before any resource)."""
    global _values
    _values = frozenset(v for v in values if v)


def _contains(text: str) -> bool:
    return any(value in text for value in _values)


def mask(value: Any) -> Any:
    """`value` (plain data, Outputs anywhere inside) with each string that contains a secret setting a secret."""
    if not _values:
        return value
    if isinstance(value, str):
        return pulumi.Output.secret(value) if _contains(value) else value
    if isinstance(value, dict):
        return {key: mask(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(item) for item in value]
    if isinstance(value, pulumi.Output):
        return value.apply(mask)
    return value
