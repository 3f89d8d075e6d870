"""YAML text exactly as `yaml.safe_dump(data, sort_keys=False)` writes it, from libyaml's emitter where that is
the same text.

PyYAML's pure-Python emitter costs about five times libyaml's (synth writes one file per Kubernetes object: ~30,000
at 1,000 tenants). The two emitters choose the same style for every scalar and differ in two places only, both
visible in libyaml's text:

- folding a long double-quoted scalar (PyYAML may break after an escape, libyaml only at a space). With
  `allow_unicode` off, every non-ASCII or control character is escaped, so it too is double-quoted;
- how long a simple key may be: PyYAML counts the key's tag (`!!str`, 5 characters; `!!float`, 7) towards its
  limit of 128, libyaml does not, so keys of 121 to 128 characters may be simple in libyaml only.

libyaml's text is kept when no double-quoted scalar starts anywhere in it (in block style one starts a line, or
follows `- `, `? ` or `: `; a match inside a single-quoted scalar only costs the fast path) and no simple key is
121 characters or longer; anything else is written by PyYAML's emitter (tests/test_yaml_emit.py compares both on
arbitrary data).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_FAST = getattr(yaml, "CSafeDumper", None)
_KEY_LIMIT = 121
_DOUBLE_QUOTED = re.compile(r'(?m)^ *"|[-?:] "')
# Only a line this long can hold a key of _KEY_LIMIT characters and its ":".
_LONG_LINE = re.compile(r"(?m)^.{%d,}$" % (_KEY_LIMIT + 1))
_INDICATORS = re.compile(r" *(?:[-?:] +)*")


def _pyyaml_would_agree(text: str) -> bool:
    if _DOUBLE_QUOTED.search(text):
        return False
    for line in _LONG_LINE.findall(text):
        body = line[_INDICATORS.match(line).end() :]
        if body.startswith("'"):
            return False  # a single-quoted key may itself contain ": "
        # A plain scalar never contains ": ", so the first one ends a plain key (a line without one is no key).
        end = body.find(": ")
        if end < 0 and body.endswith(":"):
            end = len(body) - 1
        if end >= _KEY_LIMIT:
            return False
    return True


def dump(data: Any) -> str:
    if _FAST is not None:
        text = yaml.dump(data, Dumper=_FAST, sort_keys=False)
        if _pyyaml_would_agree(text):
            return text
    return yaml.safe_dump(data, sort_keys=False)
