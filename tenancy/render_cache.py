"""The per-tenant render cache: what a tenant's rendering depends on, as a key, and a folder of renderings.

Given the stack's settings, tenants are independent: a tenant's resources are a function of the program's code,
the stack's settings, its own merged spec, and the platform-level resources it reads (providers, the Vault mount,
the registry table). A key is a SHA-256 over exactly those; a rendering is stored under its key, so a key that
matches can only return what the same inputs rendered before, and any change to one of them is a different key:
a stale entry is never found, only left behind.

- code: every `.py` file under `components/` (the project's and the imported package's, if another) and under
  this tooling package (`tenancy/`: the mocks and monitor that record), `__main__.py`, `Pulumi.yaml`, the Python version and the installed versions of the Pulumi SDK and provider
  packages (their typed classes shape what is registered).
- settings: the stack name and the config map the program is given (encrypted values are already "[secret]";
  the catalogue's path is left out, its content is in each tenant's spec), with the PEM files the settings name.
  A shard stack (`<env>-shard-<i>`) is given its environment's config map (and its own file's, which holds no
  settings) and reads the platform stack's outputs through a StackReference: a hash of those outputs is part
  of its settings, so a changed platform output is a different key for every tenant of every shard.
- tenant: the spec after defaults, overrides and stack defaults are merged (a certificate file's content is
  part of it) and its derived names.
- platform: a tenant entry records a hash of the shared records it was rendered beside; it is used only when
  the shared records of this render hash the same (the shared records themselves are keyed by every tenant
  they render from, since providers and stack outputs depend on the whole list: a stack's own tenants, or every
  tenant of the environment for a sharded environment's platform stack, which holds none).

Entries live in `.cache/render/` of the project (ignored by git); deleting the folder is always safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Optional

from components import settings as settings_module
from components import sharding

CACHE_DIR = Path(".cache") / "render"
# Parsed catalogues (catalogue.load's `parsed_dir`), beside the renderings.
PARSED_DIR = Path(".cache") / "catalogue"
# Packages whose code runs while the program renders: the SDK and every provider SDK the program imports.
PACKAGES = ("pulumi", "pulumi-aws", "pulumi-kubernetes", "pulumi-random", "pulumi-vault", "protobuf")
# Bumped when the layout of an entry changes.
FORMAT = "2"


def _sha(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def code_fingerprint(project_dir: Path) -> str:
    """Hash of the program: its Python files, Pulumi.yaml, the interpreter and SDK/provider versions.

    The components that run are the imported package, which is the project's own except when the tooling renders
    another folder (`--project`, the base side of a diff): both are hashed. So is this tooling package: its mocks
    and recording monitor shape every recorded resource."""
    import components

    files = set()  # (folder, relative path, digest): a copy identical to the running package hashes as it alone
    for folder in {(project_dir / "components").resolve(), Path(components.__file__).resolve().parent,
                   Path(__file__).resolve().parent}:
        for path in folder.rglob("*.py"):
            if "__pycache__" not in path.parts:
                files.add((folder.name, path.relative_to(folder).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest()))
    parts = [FORMAT, sys.version, *(f"{p}=={_version(p)}" for p in PACKAGES),
             *(f"{f}/{n}:{d}" for f, n, d in sorted(files))]
    for path in (project_dir / "__main__.py", project_dir / "Pulumi.yaml"):
        if path.exists():
            parts += [path.name, hashlib.sha256(path.read_bytes()).hexdigest()]
    return _sha(*parts)


def settings_fingerprint(project_dir: Path, stack: str, stack_settings: settings_module.StackSettings,
                         platform_outputs: Optional[dict[str, Any]] = None) -> str:
    """Hash of what the program reads about the stack: its name, its environment's config map, its own (a shard
    stack's file may exist without settings), the PEM files the settings name and, for a shard stack, the platform
    stack's outputs its StackReference reads (`platform_outputs`)."""
    config, secret_keys = settings_module.read_stack_file(project_dir, stack_settings.environment)
    config.pop(f"{settings_module.NAMESPACE}:catalogue", None)
    own, own_secret_keys = settings_module.shard_config(project_dir, stack) \
        if sharding.is_shard_stack(stack) else ({}, frozenset())
    pems = settings_module.read_pems(project_dir, stack_settings)
    return _sha(stack, json.dumps(config, sort_keys=True), json.dumps(sorted(secret_keys)),
                json.dumps(own, sort_keys=True), json.dumps(sorted(own_secret_keys)), json.dumps(pems),
                json.dumps(platform_outputs, sort_keys=True, default=str))


def tenant_key(code: str, settings_fp: str, spec: Any, names: Any) -> str:
    """Key of one tenant's rendering: program, settings, merged spec and derived names."""
    return _sha("tenant", code, settings_fp, spec.model_dump_json(),
                json.dumps(dataclasses.asdict(names), sort_keys=True, default=str))


def shared_key(code: str, settings_fp: str, tenant_keys: Iterable[str]) -> str:
    """Key of the shared records and stack outputs: they may depend on every tenant (regions, names)."""
    return _sha("shared", code, settings_fp, *tenant_keys)


def records_hash(records: list[dict[str, Any]]) -> str:
    return _sha(json.dumps(records, sort_keys=True))


class RenderCache:
    """Renderings stored as `<dir>/<key[:2]>/<key>.json`; a missing or unreadable entry is a miss.

    A file is two lines of JSON: a small head (`key`, `platform`, `count` of records) and the body (`records`,
    and the stack `outputs` for shared records). Which tenants must render, and which are the same on both sides
    of a diff, is decided from heads alone; a body is parsed only when its records are used."""

    def __init__(self, directory: Path):
        self.directory = directory
        # An entry never changes under its key, so one read serves both sides of a diff: they then hold the very
        # same records, which diff compares by identity before anything else.
        self._heads: dict[str, dict[str, Any]] = {}
        self._read: dict[str, dict[str, Any]] = {}

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def head(self, key: str) -> Optional[dict[str, Any]]:
        """The entry's head (`key`, `platform`, `count`), or None when there is no readable entry."""
        if key in self._heads:
            return self._heads[key]
        try:
            with self._path(key).open(encoding="utf-8") as stream:
                head = json.loads(stream.readline())
        except (OSError, ValueError):
            return None
        if not isinstance(head, dict) or head.get("key") != key:
            return None
        self._heads[key] = head
        return head

    def get(self, key: str) -> Optional[dict[str, Any]]:
        """The whole entry, head and body, or None when there is no readable entry."""
        if key in self._read:
            return self._read[key]
        try:
            head_line, body_line = self._path(key).read_text(encoding="utf-8").split("\n", 1)
            head, body = json.loads(head_line), json.loads(body_line)
        except (OSError, ValueError):
            return None
        if not isinstance(head, dict) or head.get("key") != key or not isinstance(body, dict) \
                or not isinstance(body.get("records"), list) or len(body["records"]) != head.get("count"):
            return None
        self._heads[key] = head
        self._read[key] = {**body, **head}
        return self._read[key]

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Store `entry` (`platform`, `records` and any more body fields) under `key`."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = {"key": key, "platform": entry["platform"], "count": len(entry["records"])}
        body = {k: v for k, v in entry.items() if k not in head}
        # Written whole then renamed, so a reader (or a crash) never sees half an entry. JSON escapes newlines in
        # strings, so the head is exactly the first line.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(head) + "\n" + json.dumps(body))
        os.replace(tmp, path)
        self._heads[key] = head
        self._read[key] = {**body, **head}
