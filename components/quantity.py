"""Kubernetes resource quantities: parse, check, and scale them per stack.

Quota differences between environments are a setting (`tenancy:quotaScale`), so the catalogue states one
size per tenant and a stack scales it instead of duplicating the numbers per environment.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^(?P<num>[+-]?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal("1e3"),
            "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}


def parse(quantity: str) -> Decimal:
    """The value of a quantity in base units; ValueError when Kubernetes would reject it."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    number = Decimal(match["num"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    try:
        return number * (Decimal(10) ** int(suffix[1:]))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity") from exc


def scale(quantity: str, factor: float) -> str:
    """`quantity` multiplied by `factor`, written in the same suffix family, rounded up (quotas never shrink to 0)."""
    if factor == 1:
        return quantity
    match = _QUANTITY.match(quantity.strip())
    if not match:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    suffix = match["suffix"] or ""
    value = parse(quantity) * Decimal(str(factor))
    if suffix in _BINARY:
        unit = _BINARY[suffix]
        return f"{math.ceil(value / unit)}{suffix}"
    if suffix in _DECIMAL and suffix not in ("", "m", "u", "n"):
        return f"{math.ceil(value / _DECIMAL[suffix])}{suffix}"
    milli = math.ceil(value * 1000)
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"
