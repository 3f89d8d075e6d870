"""Kubernetes resource quantities: parse, check, and scale them per stack.

Quota differences between environments are a setting (`tenancy:quotaScale`), so the catalogue states one
size per tenant and a stack scales it instead of duplicating the numbers per environment.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal

from .problems import shown

_QUANTITY = re.compile(r"^(?P<num>[+-]?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


# Kubernetes keeps quantities as int64 multiples of 1n: a larger value is capped (binary suffixes) or overflows
# its exponent, a finer one is rounded up (k8s.io/apimachinery v0.34 pkg/api/resource/quantity.go ParseQuantity).
# Either way the cluster would enforce another number than the one written, so both are refused.
MAX_VALUE = Decimal(2**63 - 1)
MIN_STEP = Decimal("1e-9")
_EXACT = Context(prec=80)  # enough digits for every in-range value, so nothing here rounds


def parse(quantity: str) -> Decimal:
    """The value of a quantity in base units; ValueError when Kubernetes would reject it or not keep it exactly."""
    text = str(quantity).strip()
    match = _QUANTITY.match(text)
    if not match or len(text) > 64:
        raise ValueError(f"{shown(text)} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    number = Decimal(match["num"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        value = _EXACT.multiply(number, _BINARY[suffix])
    elif suffix in _DECIMAL:
        value = _EXACT.multiply(number, _DECIMAL[suffix])
    elif not number:
        value = Decimal(0)
    else:
        exponent = int(suffix[1:])
        if not -30 <= number.adjusted() + exponent <= 30:
            raise ValueError(f"{shown(text)} is outside the range Kubernetes keeps (1n to 2^63-1)")
        value = _EXACT.multiply(number, Decimal(1).scaleb(exponent))
    if abs(value) > MAX_VALUE:
        raise ValueError(f"{shown(text)} is larger than Kubernetes keeps (2^63-1)")
    if value % MIN_STEP:
        raise ValueError(f"{shown(text)} is finer than Kubernetes keeps (1n); Kubernetes would round it up")
    return value


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
