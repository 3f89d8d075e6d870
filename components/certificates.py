"""Certificate files named by the inputs (`supplyChain.certificateFile`, `tenancy:vault.kubernetesAuth.caCertFile`).

Their content is published: embedded in cluster objects and Vault configuration, recorded in `resources.json`
and shown in the diff CI posts on a pull request. So a name may only reach a file inside the folder it is
relative to (no absolute path, no `..`, no symbolic link out of it), only a regular file of bounded size, and the
file may hold PEM certificates and nothing else: a private key or any other text is refused without being echoed.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from cryptography import x509

from . import safe_yaml
from .problems import shown

MAX_BYTES = 64 * 1024
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n(.*?)-----END \1-----", re.S)
_PUBLISHED = "its content is published in cluster objects, resources.json and the diff"


def read_confined(base_dir: Path, name: str) -> str:
    """The PEM certificates in the file `name`, relative to `base_dir` and inside it; ValueError saying why not."""
    if "\x00" in name:
        raise ValueError("the path contains a NUL byte")
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or PureWindowsPath(name).anchor or ".." in relative.parts:
        raise ValueError(f"{shown(name)} must be a relative path inside {base_dir.name or 'its'} folder, without '..'")
    try:
        root = base_dir.resolve()
        target = (root / relative).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop, a name too long
        raise ValueError(f"cannot read {shown(name)}: {exc}") from None
    if not target.is_relative_to(root):
        raise ValueError(f"{shown(name)} leads outside {base_dir.name or 'its'} folder through a symbolic link")
    try:
        data = safe_yaml.read_file(target, MAX_BYTES)
    except safe_yaml.YamlRefused as refused:
        why = str(refused)
        raise ValueError(
            f"cannot read {shown(name)}: {why.removeprefix('cannot read: ')}"
            if why.startswith("cannot read: ")
            else f"{shown(name)} {why}"
        ) from None
    return certificates_only(data, shown(name))


def certificates_only(content: bytes | str, what: str = "the certificate") -> str:
    """`content` as text when it is one or more PEM certificates and nothing else; ValueError otherwise."""
    try:
        text = content.decode("ascii") if isinstance(content, bytes) else content
        text.encode("ascii")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise ValueError(f"{what} is not PEM text (it holds binary or non-ASCII data)") from None
    labels = [match.group(1) for match in _BLOCK.finditer(text)]
    others = sorted(set(labels) - {"CERTIFICATE"})
    if others:
        raise ValueError(f"{what} holds a {others[0]} block; only CERTIFICATE blocks are allowed ({_PUBLISHED})")
    if not labels or _BLOCK.sub("", text).strip():
        raise ValueError(f"{what} must hold PEM CERTIFICATE blocks and nothing else ({_PUBLISHED})")
    try:
        x509.load_pem_x509_certificates(text.encode("ascii"))
    except ValueError:
        raise ValueError(f"{what} holds a CERTIFICATE block that is not a valid X.509 certificate") from None
    return text
