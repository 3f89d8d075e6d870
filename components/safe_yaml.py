"""Reading YAML a reviewer may not have read closely.

The catalogue and the stack files arrive through pull requests, so they are read defensively and every way
they could be half-understood is refused, each with the path, line and column of the offending node:

- only regular files of bounded size, only UTF-8 (a UTF-16 file or stray bytes say so instead of crashing);
- the safe loader, and only the plain JSON types: text, numbers, booleans, null, lists and mappings (no
  `!!binary`, `!!set`, `!!timestamp` or custom tags, and explicit tags that cannot be read are problems);
- no alias bombs, no recursive aliases, no nesting deeper than a catalogue needs;
- mapping keys are text and appear once per mapping (YAML would silently keep the last `tenants:` block);
- plain scalars that YAML 1.1 (PyYAML) and YAML 1.2 (most editors, yaml.v3 in the Pulumi CLI) read differently
  are refused: `010` (octal 8 or decimal 10), `yes`/`on`/`off` (booleans or text), `1_000`, `1:30`, bare dates.
  Writing `true`, `8` or `"010"` says what is meant.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 2 * 1024 * 1024
MAX_ALIASES = 100
MAX_NODES = 200_000
# The catalogue needs about six levels (tenants[i].overrides.prod.network.ingress.podLabels); 64 leaves room
# while keeping every recursive walk far from Python's recursion limit.
MAX_DEPTH = 64


class YamlRefused(ValueError):
    """The input is not one we are willing to read. `problems` lists (path, why); path "" is the whole file."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {why}" if path else why for path, why in problems))


_TAG = "tag:yaml.org,2002:"
_AMBIGUOUS = "tag:tenancy,2026:yaml11-only"
_PLAIN_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}
_SHORT = {"int": "an integer", "float": "a number", "bool": "a boolean", "null": "null", "timestamp": "a date"}
# Plain scalars that YAML 1.2's core schema reads the same way as YAML 1.1.
_SAME_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)|0x[0-9a-fA-F]+")
_SAME_BOOL = {"true", "false"}


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1 resolution, except that plain scalars whose type YAML 1.2 would read differently are marked."""

    def resolve(self, kind, value, implicit):
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)
        # A scalar's tag depends on its text and plainness alone; a catalogue repeats the same keys and values
        # in every tenant, so each is resolved once per document.
        known = self._scalar_tags.get((value, implicit))
        if known is None:
            known = super().resolve(kind, value, implicit)
            if implicit[0] and _yaml11_only(known, value):
                known = _AMBIGUOUS
            self._scalar_tags[value, implicit] = known
        return known


def _yaml11_only(tag: str, value: str) -> bool:
    kind = tag.removeprefix(_TAG)
    return (
        (kind == "bool" and value.lower() not in _SAME_BOOL)
        or (kind == "int" and not _SAME_INT.fullmatch(value))
        or (kind == "float" and ("_" in value or ":" in value))
        or kind == "timestamp"
    )


# libyaml's parser and composer when present (the catalogue is parsed on every run); construction is Python.
_LIBYAML = getattr(yaml, "__with_libyaml__", False)
_READERS = (
    (yaml.cyaml.CParser,)
    if _LIBYAML
    else (yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer)
)


class _Loader(*_READERS, yaml.constructor.SafeConstructor, _Resolver):  # type: ignore[misc]
    def __init__(self, stream: str):
        if _LIBYAML:
            yaml.cyaml.CParser.__init__(self, stream)
        else:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self._scalar_tags: dict[tuple[str, tuple[bool, bool]], str] = {}


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _refuse_at(mark: Any, why: str) -> YamlRefused:
    return YamlRefused([("", f"{_where(mark)}: {why}" if mark else why)])


# --- reading files ------------------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_file(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them; YamlRefused otherwise.

    Opened without blocking and checked on the open descriptor, so a FIFO, a device or a directory (or a file
    swapped for one after a check) is refused instead of hanging or reading forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise YamlRefused([("", f"cannot read: {exc.strerror}")]) from None
    except ValueError:
        raise YamlRefused([("", "cannot read: the path contains a NUL byte")]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise YamlRefused([("", f"is {_kind(info.st_mode)}, not a regular file")])
        if info.st_size > limit:
            raise YamlRefused([("", f"is {info.st_size} bytes; the limit is {limit}")])
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise YamlRefused([("", f"is more than {limit} bytes")])
        return b"".join(chunks)
    except OSError as exc:
        raise YamlRefused([("", f"cannot read: {exc.strerror}")]) from None
    finally:
        os.close(fd)


def decode(data: bytes) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is allowed); other encodings are named rather than misread."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise YamlRefused([("", f"is encoded as {name}; save it as UTF-8")])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlRefused(
            [("", f"line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8")]
        ) from None


# --- checking the document before constructing it ---------------------------------------------------------


def _check_events(text: str) -> tuple[int, int]:
    """Refuse alias bombs, recursive aliases and deep nesting from the event stream, before any node is built.
    Returns how many aliases and how many other nodes (scalars and collections) there are."""
    aliases = depth = nodes = 0
    latest: dict[str, int] = {}  # anchor -> id of its latest definition (anchors may be redefined)
    open_ids: list[Optional[int]] = []
    for number, event in enumerate(yaml.parse(text, Loader=_Loader)):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _refuse_at(
                    event.start_mark, f"more than {MAX_ALIASES} aliases; refusing a possible alias-expansion bomb"
                )
            if anchor in latest and latest[anchor] in open_ids:
                raise _refuse_at(
                    event.start_mark,
                    f"alias *{anchor} is inside the collection &{anchor} it refers to (a recursive alias)",
                )
            continue
        if anchor is not None:
            latest[anchor] = number
        if isinstance(event, yaml.ScalarEvent):
            nodes += 1
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            depth += 1
            if depth > MAX_DEPTH:
                raise _refuse_at(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
            open_ids.append(number if anchor is not None else None)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            open_ids.pop()
    return aliases, nodes


def _size(node: Node, sizes: dict[int, int]) -> int:
    """Values in `node` as a consumer sees them: an aliased subtree counts each time it appears."""
    if id(node) not in sizes:
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, MappingNode)
            else node.value
            if isinstance(node, SequenceNode)
            else []
        )
        sizes[id(node)] = 1 + sum(_size(child, sizes) for child in children)
    return sizes[id(node)]


def _join(path: str, part: Union[str, int]) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def _item_label(node: Node) -> str:
    """` (name=x)` for a list item that is a mapping with a text `name`, as the catalogue's paths read."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if (
                isinstance(key, ScalarNode)
                and key.value == "name"
                and isinstance(value, ScalarNode)
                and value.tag == f"{_TAG}str"
            ):
                return f" (name={value.value})"
    return ""


class _Checker:
    """Walks the composed document once, collecting every problem with its path, line and column."""

    def __init__(self, loader: _Loader):
        self.loader = loader
        self.problems: list[tuple[str, str]] = []
        self.seen: set[int] = set()

    def add(self, path: str, node: Node, why: str) -> None:
        self.problems.append((path, f"{_where(node.start_mark)}: {why}"))

    def walk(self, node: Node, path: str) -> None:
        if id(node) in self.seen:  # an aliased node was checked where it was defined
            return
        self.seen.add(id(node))
        if node.tag not in _PLAIN_TAGS and node.tag != _AMBIGUOUS:
            self.add(
                path,
                node,
                f"the tag {node.tag.replace(_TAG, '!!')} is not used in this file; "
                "write plain text, numbers, booleans, lists and mappings",
            )
        elif isinstance(node, ScalarNode):
            self.scalar(node, path)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, _join(path, index) + _item_label(item))
        elif isinstance(node, MappingNode):
            self.mapping(node, path)

    def scalar(self, node: ScalarNode, path: str) -> None:
        if node.tag == _AMBIGUOUS:
            self.add(path, node, _ambiguity(node.value))
            return
        try:
            self.loader.construct_object(node)
        except Exception as exc:  # noqa: BLE001 - an explicit tag PyYAML cannot construct, e.g. `!!float true`
            kind = _SHORT.get(node.tag.removeprefix(_TAG), node.tag)
            self.add(path, node, f"{_show(node.value)} cannot be read as {kind} ({type(exc).__name__})")

    def mapping(self, node: MappingNode, path: str) -> None:
        first: dict[str, Node] = {}
        for key, value in node.value:
            if key.tag == f"{_TAG}merge":
                self.walk(value, path)
                continue
            if not isinstance(key, ScalarNode) or key.tag != f"{_TAG}str":
                self.add(path, key, _bad_key(key))
                continue
            where = _join(path, key.value)
            if key.value in first:
                self.add(
                    where,
                    key,
                    f"duplicate key {_show(key.value)} (first at {_where(first[key.value].start_mark)}); "
                    "YAML would keep only the last one",
                )
            else:
                first[key.value] = key
            self.walk(value, where)


def _ambiguity(value: str) -> str:
    kind = yaml.resolver.Resolver().resolve(ScalarNode, value, (True, False)).removeprefix(_TAG)
    if kind == "timestamp":
        return f"{_show(value)} is read as a date by YAML 1.1 and as text by YAML 1.2; quote it"
    try:
        read = yaml.safe_load(value)
    except (yaml.YAMLError, ValueError):  # e.g. more digits than Python converts
        return f"{_show(value)} is read as {_SHORT[kind]} by YAML 1.1 but differently by YAML 1.2; quote it for text"
    if kind == "bool":
        return (
            f"{_show(value)} is read as the boolean {str(read).lower()} by YAML 1.1 but as text by YAML 1.2; "
            f"write {str(read).lower()} for a boolean, or quote it for text"
        )
    return (
        f"{_show(value)} is read as {read} by YAML 1.1 but differently by YAML 1.2; write {read} if that is "
        "meant, or quote it for text"
    )


def _bad_key(key: Node) -> str:
    if not isinstance(key, ScalarNode):
        return "a key must be text, not a list or mapping"
    tag = yaml.resolver.Resolver().resolve(ScalarNode, key.value, (True, False)) if key.tag == _AMBIGUOUS else key.tag
    kind = _SHORT.get(tag.removeprefix(_TAG), f"the tag {tag.replace(_TAG, '!!')}")
    return f"the key {_show(key.value)} is read as {kind}; keys must be text, so quote it"


def loads(text: Union[str, bytes]) -> Any:
    """The value of one YAML document; YamlRefused listing every problem, each with its line and column."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_BYTES:
        raise YamlRefused([("", f"file is larger than {MAX_BYTES // 1024} KiB")])
    text = decode(data)  # text with lone surrogates is refused here like undecodable bytes
    try:
        aliases, nodes = _check_events(text)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            # Without aliases no node appears twice, so the events counted them all.
            if (_size(node, {}) if aliases else nodes) > MAX_NODES:
                raise YamlRefused(
                    [("", f"expands to more than {MAX_NODES} values; refusing a possible alias-expansion bomb")]
                )
            checker = _Checker(loader)
            checker.walk(node, "")
            if checker.problems:
                raise YamlRefused(checker.problems)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise _refuse_at(exc.problem_mark, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlRefused([("", f"not valid YAML: {exc}".replace("\n", " "))]) from None


def load(path: Path) -> Any:
    return loads(read_file(path))
