"""Input problems, collected rather than raised one at a time.

A user fixing a catalogue wants every problem in one run, each pointing at the field to change, and never a
traceback; so validators append `Problem`s and the edge raises one `InvalidInput` carrying all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True, order=True)
class Problem:
    source: str  # the file a user edits, e.g. "tenants.yaml" or "Pulumi.dev.yaml"
    path: str  # where in it, e.g. "tenants[2] (name=acme).artifacts.keyPrefix"; "" for the whole file
    message: str

    def __str__(self) -> str:
        # A value echoed from the input is cut where it is quoted (`shown`); what slips through (a huge key in the
        # path, a message quoting a long list) is cut here, in the middle, so the line keeps its place and its why.
        path, message = _cut(self.path, PATH_LIMIT), _cut(self.message, MESSAGE_LIMIT)
        text = f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}"
        # One problem is one line: line breaks and control characters copied from the input are shown escaped.
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# Longest path and message a problem line shows; a line stays readable in a terminal and a pull-request comment.
PATH_LIMIT, MESSAGE_LIMIT = 240, 720
# Longest value `shown` quotes.
SHOWN_LIMIT = 120


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = (limit - 40) // 2
    return f"{text[:keep]}...[{len(text) - 2 * keep} characters cut]...{text[-keep:]}"


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """`value` quoted as Python shows it, cut to `limit` characters with its full length said: a problem quotes
    what the user wrote without copying a 1.5 MB value into the line."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class At(ValueError):
    """A rule over several fields of a model, raised with the place a user edits: `loc` is the field's path in
    the model (by alias), as pydantic gives it for a field's own rule. A model-level error has no place of its own."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc


def error_loc(error: dict) -> tuple:
    """The place of a pydantic error: its own, or the one an `At` raised by a model validator names."""
    raised = (error.get("ctx") or {}).get("error")
    return tuple(error["loc"]) + raised.loc if isinstance(raised, At) else tuple(error["loc"])


class InvalidInput(Exception):
    """Raised at the edge, before any resource is registered, with every problem found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.source, _natural(p.path), p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


def _natural(path: str) -> list:
    # tenants[10] sorts after tenants[9]. Only ASCII digit runs are numbers: a key such as `²` (a digit to
    # str.isdigit, not to int) or `٣` stays text. Captured runs sit at the odd indices, so positions always compare
    # like with like.
    import re

    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"([0-9]+)", path))]


def join_path(*parts: object) -> str:
    """Join location parts the way users read them: `a.b[3].c`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part is None:
            continue
        elif part == "":  # a key the user wrote empty is a place too
            out += ".''" if out else "''"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` naming the nearest candidate (same letters in another case first), or ""."""
    import difflib

    if not isinstance(word, str):
        return ""
    candidates = sorted(set(candidates))
    close = [c for c in candidates if c.casefold() == word.casefold()] or difflib.get_close_matches(
        word, candidates, n=1, cutoff=0.6
    )
    return f"; did you mean {close[0]!r}?" if close else ""


def describe(value: object) -> str:
    """What a user wrote, in YAML's words: `text`, `an integer`, `a list`..."""
    names = {
        str: "text",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), type(value).__name__)


def pydantic_message(error: dict, model: type) -> str:
    """A pydantic error as a user fixes it: unknown fields name the nearest known one, wrong types say what came."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        return "unknown field" + did_you_mean(loc[-1], fields_at(model, loc[:-1]))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"].endswith(("_type", "_parsing")) or error["type"] in ("literal_error", "enum"):
        given = error.get("input")
        shown = (
            repr(given)
            if isinstance(given, str) and len(given) <= 40 and error["type"] == "literal_error"
            else describe(given)
        )
        message += f", got {shown}"
    if error["type"] == "missing":
        message = "missing; this field is required"
    return message


# A pydantic error type carrying several problems of one mapping's entries (`ctx["entries"]`), one line each.
ENTRIES = "entries"


def pydantic_messages(error: dict, model: type) -> list[str]:
    """`pydantic_message`, one message per problem: an ENTRIES error holds every bad entry of a mapping."""
    if error["type"] == ENTRIES:
        return list(error["ctx"]["entries"])
    return [pydantic_message(error, model)]


def fields_at(model: type, loc: Iterable[object]) -> list[str]:
    """The field names (aliases) the pydantic model nested at `loc` accepts; [] when `loc` leads elsewhere."""
    import typing

    from pydantic import BaseModel

    def nested(annotation: object) -> Optional[type]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        return next(filter(None, (nested(arg) for arg in typing.get_args(annotation))), None)

    current: Optional[type] = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        current = nested(field.annotation) if field else None
        if current is None:
            return []
    return [f.alias or n for n, f in current.model_fields.items()]
