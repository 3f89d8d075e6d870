"""Fuzzing the edge: any catalogue or stack file is either accepted or refused with problem lines, never a crash.

Every case runs the real CLI entry point (`tenancy.cli.main`) in-process on a copy of the project, with one
file replaced: random mutations of the sample `tenants.yaml` and `Pulumi.dev.yaml` (text and tree level),
generated YAML, and the classes of input already seen to crash (seeded below, one test each). The run is
bounded and deterministic (`TENANCY_FUZZ_SEED`, default 1212); `TENANCY_FUZZ_CASES=20000 make test` runs a
longer campaign locally. A case passes when the exit code is 0, or 1 with every stderr line in the documented
`<file>: <path>: <why>` form; an exception, another exit code or a hang (SIGALRM) fails it and prints the input.
Accepted catalogues are also fed to the quota builders, so a quantity that passes validation cannot crash synth.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

from components import quota
from tenancy import cli, inputs
from tests.conftest import PROJECT

CASES = int(os.environ.get("TENANCY_FUZZ_CASES", "300"))
SEED = int(os.environ.get("TENANCY_FUZZ_SEED", "1212"))
CASE_SECONDS = 20

PROBLEM_LINE = re.compile(r"^[^\s:][^:]*: \S.*$")
# Problem lines quote what the user wrote cut short (components/problems.py): none is longer than this.
MAX_LINE = 1000
SUMMARY_LINE = re.compile(r"^\d+ problem\(s\); nothing was rendered\.$")

SAMPLE_TENANTS = (PROJECT / "tenants.yaml").read_text()
SAMPLE_STACK = (PROJECT / "Pulumi.dev.yaml").read_text()
CERT = (PROJECT / "certs" / "compliance-root-ca.pem").read_text()

# Scalars that have broken, or could break, a reader: YAML 1.1 surprises, tags that fail to construct,
# out-of-range quantities, control characters, aliases, flow collections.
SPECIALS = [
    "1e1000000", "1e-1000000", "1E+99999999999999999999", "9" * 400, "8Ei", "9223372036854775807",
    "9223372036854775808", "-1", "0", "-0", "1.5", ".5", "1.", ".inf", "-.inf", ".nan", "1e3", "1e3m", "0.0001m",
    "10Ki", "1_000", "1:30", "0x1F", "0o17", "010", "0b101", "yes", "no", "on", "off", "Y", "true", "False",
    "~", "null", "''", '""', "[]", "{}", "[a, b]", "{a: 1}", "!!timestamp x", "!!float true", "!!int x",
    "!!binary '!!!'", "!!bool maybe", "!!null x", "!!set {a, b}", "!!omap [a: 1]", "!!python/object:os.system x",
    "!custom x", "2024-01-01", "2024-01-01T10:00:00Z", '"\\x00"', '"\\ud800"', '"\\t"', "*nowhere", "&a x",
    "&a [*a]", "{a: 1, a: 2}", "? [a]\n: b", "'unterminated", "\"unterminated", "|\n  block", ">-\n  folded",
    "-", "- - - x", "[" * 2000 + "]" * 2000, "a" * 70, "UPPER", "x y", "../../../etc/passwd", "/etc/passwd",
    "certs/compliance-root-ca.pem", "https://github.com/x/y.git", "us-east-1", "static", "irsa", "kms",
    "temporary", "archive", "dedicated", "baseline", "offboarded", "dev", "prod", "Dev",
]
KEYS = ["name", "team", "repo", "url", "tenants", "defaults", "overrides", "environments", "Environments",
        "artifacts", "bucket", "quota", "requests.cpu", "pods", "limits", "max", "labels", "params", "region",
        "supplyChain", "certificateFile", "certificate", "enabled", "minicluster", "size", "users", "network",
        "loadBalancerCidrs", "storageClass", "expireAfterDays", "archiveAfterDays", "lifecycle", "config",
        "tenancy:org", "tenancy:quotaScale", "tenancy:vault", "aws:region", "tenancy:protectData", "<<", "1", "~"]


# --- running one case ---------------------------------------------------------------------------------------

class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Timeout(f"no answer within {CASE_SECONDS}s")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project's inputs that each case may overwrite."""
    root = tmp_path_factory.mktemp("fuzz-project")
    for path in PROJECT.glob("Pulumi*.yaml"):
        shutil.copy(path, root / path.name)
    shutil.copy(PROJECT / "tenants.yaml", root / "tenants.yaml")
    shutil.copytree(PROJECT / "certs", root / "certs")
    return root


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """The CLI in-process: exit code, stdout, stderr. Raises whatever escapes `main` (that is the failure)."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


OUTCOMES: collections.Counter = collections.Counter()


def verdict(project: Path, stack: str = "dev") -> Optional[str]:
    """None when the CLI accepted or refused properly; otherwise what went wrong."""
    try:
        code, _, err = run_cli(["--project", str(project), "validate", "--stack", stack])
    except BaseException as exc:  # noqa: BLE001 - anything escaping main is the defect being hunted
        if isinstance(exc, KeyboardInterrupt):
            raise
        return "".join(traceback.format_exception(exc))[-3000:]
    OUTCOMES["accepted" if code == 0 else "refused"] += 1
    if code == 0:
        return _quantities_render(project, stack)
    if code != 1:
        return f"exit code {code}"
    lines = err.splitlines()
    if not lines or not SUMMARY_LINE.match(lines[-1]):
        return f"no problem summary line:\n{err[-2000:]}"
    bad = [line for line in lines[:-1] if not PROBLEM_LINE.match(line) or len(line) > MAX_LINE]
    if bad or len(lines) < 2:
        return f"lines not in the problem format: {bad[:3]!r}"
    return None


def _quantities_render(project: Path, stack: str) -> Optional[str]:
    """An accepted catalogue's quotas and limits render as synth would render them."""
    try:
        stack_settings, tenants = inputs.load_inputs(project, stack, None)
        for spec, names in tenants:
            quota.resource_quota(spec, names, stack_settings.quota_scale)
            quota.limit_range(spec, names)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        return "accepted, then the quota builders crashed:\n" + "".join(traceback.format_exception(exc))[-3000:]
    return None


def check(project: Path, files: dict[str, bytes], stack: str = "dev") -> Optional[str]:
    """Write `files` into the project, run validate, restore the originals."""
    originals = {name: (project / name).read_bytes() for name in files if (project / name).is_file()}
    try:
        for name, content in files.items():
            (project / name).write_bytes(content)
        return verdict(project, stack)
    finally:
        for name in files:
            if name in originals:
                (project / name).write_bytes(originals[name])
            else:
                (project / name).unlink()


# --- generating cases ---------------------------------------------------------------------------------------

def _random_scalar(rng: random.Random) -> Any:
    return rng.choice([
        lambda: rng.randint(-10**6, 10**6), lambda: rng.random() * 10 ** rng.randint(-5, 30),
        lambda: rng.choice([True, False, None]), lambda: rng.choice(SPECIALS), lambda: rng.choice(KEYS),
        lambda: "".join(rng.choice("abcXYZ-_./:0123456789 \t\u00e9\u2028") for _ in range(rng.randint(0, 12))),
    ])()


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.55:
        return _random_scalar(rng)
    if roll < 0.75:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS) if rng.random() < 0.8 else _random_scalar(rng): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 5))}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, prefix + (key,)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_paths(value, prefix + (i,)))
    return found


def _tree_mutation(rng: random.Random, text: str) -> str:
    """Parse, change one node (replace, delete, add a key, rename a key), dump back."""
    tree = yaml.load(text, Loader=_LOADER)
    path = rng.choice(_paths(tree)[1:] or [()])
    if not path:
        return yaml.dump(_random_value(rng), Dumper=_DUMPER)
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = rng.randrange(4)
    if action == 0:
        parent[last] = _random_value(rng)
    elif action == 1:
        del parent[last]
    elif action == 2 and isinstance(parent, dict):
        parent[rng.choice(KEYS)] = _random_value(rng)
    elif isinstance(parent, dict):
        parent[rng.choice([str(last).upper(), str(last).lower(), str(last)[:-1], str(last) + "s"])] = parent.pop(last)
    else:
        parent.insert(rng.randrange(len(parent) + 1), _random_value(rng))
    return yaml.dump(tree, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)


def _line_mutation(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True) or ["\n"]
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    action = rng.randrange(6)
    if action == 0:  # a scalar value becomes a special one
        match = re.match(r"^(\s*(?:- )?[^\s:#][^:#]*:)\s*\S.*$", lines[i])
        if match:
            lines[i] = f"{match.group(1)} {rng.choice(SPECIALS)}\n"
    elif action == 1:
        del lines[i]
    elif action == 2:  # duplicated lines give duplicate keys
        lines.insert(j, lines[i])
    elif action == 3:
        lines[i], lines[j] = lines[j], lines[i]
    elif action == 4:
        lines[i] = (" " * rng.choice([0, 1, 2, 4])) + lines[i].lstrip(" ") if rng.random() < 0.5 else "  " + lines[i]
    else:
        lines[i] = re.sub(r"\b[a-z][A-Za-z]+(?=:)", lambda m: rng.choice([m.group(0).capitalize(), m.group(0)[:-1]]),
                          lines[i], count=1)
    return "".join(lines)


def _byte_mutation(rng: random.Random, data: bytes) -> bytes:
    action = rng.randrange(5)
    i = rng.randrange(len(data) + 1)
    if action == 0:
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[i:]
    if action == 1:
        return data[:i]
    if action == 2:
        return data.decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-16-le", "utf-32", "latin-1"]),
                                                      "replace")
    if action == 3:
        return data[:i] + rng.choice([b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r", b"\t", b"\x1b[31m", b"\xc3("])
    return data[:i] + rng.choice(SPECIALS).encode("utf-8", "replace") + data[i:]


def _random_quantity(rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 21)))
    fraction = "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 12))) if rng.random() < 0.3 else ""
    suffix = rng.choice(["", "", "m", "n", "u", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
                         f"e{rng.randint(-40, 40)}", f"E+{rng.randint(0, 25)}"])
    return rng.choice(["", "", "", "+", "-"]) + digits + fraction + suffix


def _quantity_mutation(rng: random.Random, text: str) -> str:
    """A random quantity in the defaults' quota or limits: many are valid, and then must render."""
    tree = yaml.load(text, Loader=_LOADER)
    defaults = tree.setdefault("defaults", {}) if isinstance(tree, dict) else None
    if not isinstance(defaults, dict):
        return text
    if rng.random() < 0.5:
        key = rng.choice(["requests.cpu", "limits.memory", "requests.storage", "pods", "count/jobs.batch"])
        defaults.setdefault("quota", {})[key] = _random_quantity(rng)
    else:
        part = rng.choice(["defaultRequest", "default", "max"])
        defaults.setdefault("limits", {}).setdefault(part, {})[rng.choice(["cpu", "memory"])] = _random_quantity(rng)
    return yaml.dump(tree, Dumper=_DUMPER, sort_keys=False)


def mutate(rng: random.Random, text: str, quantities: bool = False) -> bytes:
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if quantities and roll < 0.3:
            try:
                text = _quantity_mutation(rng, text)
            except Exception:  # noqa: BLE001 - an earlier mutation left text PyYAML cannot load
                text = _line_mutation(rng, text)
        elif roll < 0.45:
            text = _line_mutation(rng, text)
        elif roll < 0.85:
            try:
                text = _tree_mutation(rng, text)
            except Exception:  # noqa: BLE001 - an earlier mutation left text PyYAML cannot load; mutate lines
                text = _line_mutation(rng, text)
    data = text.encode("utf-8", "surrogatepass")
    return _byte_mutation(rng, data) if rng.random() < 0.15 else data


def cases(count: int, seed: int) -> list[tuple[str, dict[str, bytes]]]:
    """`count` (label, files) pairs, the same ones for the same seed."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.6:
            out.append((f"tenants-mutation-{n}", {"tenants.yaml": mutate(rng, SAMPLE_TENANTS, quantities=True)}))
        elif roll < 0.85:
            out.append((f"stack-mutation-{n}", {"Pulumi.dev.yaml": mutate(rng, SAMPLE_STACK)}))
        else:
            generated = {"tenants": [_random_value(rng, 1) for _ in range(rng.randint(0, 3))]} \
                if rng.random() < 0.7 else _random_value(rng)
            text = yaml.dump(generated, Dumper=_DUMPER, allow_unicode=True)
            out.append((f"generated-{n}", {"tenants.yaml": text.encode("utf-8", "surrogatepass")}))
    return out


def test_fuzz_catalogue_and_stack_files(project, capsys):
    OUTCOMES.clear()
    failures = []
    for label, files in cases(CASES, SEED):
        why = check(project, files)
        if why:
            failures.append((label, files, why))
    with capsys.disabled():
        print(f"\nfuzz: {CASES} cases (seed {SEED}): {OUTCOMES['accepted']} accepted, {OUTCOMES['refused']} refused "
              f"with problem lines, {len(failures)} failed")
    assert not failures, "\n\n".join(
        f"{label}: {why}\ninput: {next(iter(files.values()))[:600]!r}" for label, files, why in failures[:5])


# --- the classes already seen to crash, each pinned -----------------------------------------------------------

def _tenant(extra: str) -> bytes:
    return (SAMPLE_TENANTS + textwrap.indent(textwrap.dedent("""\
        - name: fuzz
          team: fuzz
          repo: {url: https://github.com/x/fuzz.git}
        """) + textwrap.indent(textwrap.dedent(extra), "  "), "  ")).encode()


SEEDED = {
    "undecodable bytes": {"tenants.yaml": SAMPLE_TENANTS.encode() + b"\n# \xff\xfe\xc3(\n"},
    "utf-16 catalogue": {"tenants.yaml": SAMPLE_TENANTS.encode("utf-16")},
    "utf-16 stack file": {"Pulumi.dev.yaml": SAMPLE_STACK.encode("utf-16")},
    "latin-1 stack file": {"Pulumi.dev.yaml": SAMPLE_STACK.replace("dev:", "d\u00e9v:").encode("latin-1")},
    "NUL byte": {"tenants.yaml": SAMPLE_TENANTS.encode().replace(b"research", b"rese\x00arch", 1)},
    "recursive alias": {"tenants.yaml": b"defaults: &d {labels: *d}\ntenants: []\n"},
    "recursive list alias": {"tenants.yaml": b"tenants: &t [*t]\n"},
    "recursive stack alias": {"Pulumi.dev.yaml": b"config: &c\n  tenancy:kubernetes: *c\n"},
    "deep nesting": {"tenants.yaml": b"tenants: " + b"[" * 5000 + b"]" * 5000 + b"\n"},
    "deep mapping nesting": {"tenants.yaml": b"tenants:\n" + b"".join(b" " * i + b"a:\n" for i in range(3000))},
    "huge quantity": {"tenants.yaml": _tenant("quota: {requests.cpu: 1e1000000}")},
    "huge limit": {"tenants.yaml": _tenant("limits: {max: {memory: 1e1000000}}")},
    "huge exponent": {"tenants.yaml": _tenant("quota: {limits.memory: 1E+99999999999999999999}")},
    "quantity too large to scale": {"tenants.yaml": _tenant("quota: {requests.memory: 1e4000}")},
    "many digits": {"tenants.yaml": _tenant(f"quota: {{requests.cpu: '{'9' * 5000}'}}")},
    "timestamp tag": {"tenants.yaml": _tenant("displayName: !!timestamp x")},
    "float tag": {"tenants.yaml": _tenant("minicluster: {size: !!float true}")},
    "int tag": {"Pulumi.dev.yaml": SAMPLE_STACK.replace("quotaScale: 0.5", "quotaScale: !!int x").encode()},
    "bad binary": {"tenants.yaml": _tenant("displayName: !!binary '!!!'")},
    "integer key": {"tenants.yaml": _tenant("labels: {1: x}")},
    "null key": {"tenants.yaml": _tenant("artifacts: {~: x}")},
    "list key": {"tenants.yaml": _tenant("params:\n  ? [a]\n  : b")},
    "integer stack key": {"Pulumi.dev.yaml": SAMPLE_STACK.replace("  tenancy:org: calypr", "  1: calypr").encode()},
    "integer top-level key": {"tenants.yaml": b"1: x\ntenants: []\n"},
    "superscript digit key": {"tenants.yaml": "\u00b2: 1\ntenants: []\n".encode()},
    "huge value": {"tenants.yaml": _tenant("region: " + "a" * 1_500_000)},
    "date value": {"tenants.yaml": _tenant("params: {since: 2024-01-01}")},
    "stack file not a mapping": {"Pulumi.dev.yaml": b"- config\n"},
    "deeply nested JSON in a stack value": {"Pulumi.dev.yaml": (SAMPLE_STACK + "  tenancy:minicluster: '"
                                                                + "[" * 5000 + "]" * 5000 + "'\n").encode()},
    "config not a mapping": {"Pulumi.dev.yaml": b"config: [1, 2]\n"},
    "empty stack file": {"Pulumi.dev.yaml": b""},
    "certificateFile with a NUL byte": {"tenants.yaml": _tenant(
        'supplyChain: {enabled: true, certificateFile: "certs/a\\0.pem"}')},
    "certificateFile absolute": {"tenants.yaml": _tenant("supplyChain: {enabled: true, certificateFile: /etc/passwd}")},
    "certificateFile escaping": {"tenants.yaml": _tenant(
        "supplyChain: {enabled: true, certificateFile: ../../../../../../etc/hostname}")},
    "certificateFile a directory": {"tenants.yaml": _tenant("supplyChain: {enabled: true, certificateFile: certs}")},
    "certificateFile a device": {"tenants.yaml": _tenant(
        "supplyChain: {enabled: true, certificateFile: ../../../../../../../../dev/zero}")},
    "certificateFile binary": {"tenants.yaml": _tenant("supplyChain: {enabled: true, certificateFile: certs/binary}"),
                               "certs/binary": bytes(range(256)) * 4},
    "certificateFile huge": {"tenants.yaml": _tenant("supplyChain: {enabled: true, certificateFile: certs/huge.pem}"),
                             "certs/huge.pem": (CERT * 4000).encode()},
    "certificateFile latin-1": {"tenants.yaml": _tenant("supplyChain: {enabled: true, certificateFile: certs/l.pem}"),
                                "certs/l.pem": "caf\u00e9\n".encode("latin-1")},
}


@pytest.mark.parametrize("label", list(SEEDED))
def test_seeded_crash_classes_are_refused_cleanly(label, project):
    assert check(project, SEEDED[label]) is None


def _special_file(project: Path, kind: str) -> str:
    """A FIFO (reading it would block), a directory, or a symbolic link out of the project."""
    special = project / f"special-{kind}"
    if kind == "fifo":
        os.mkfifo(special)
    elif kind == "directory":
        special.mkdir()
    elif kind == "symlink-out":
        special.symlink_to("/etc/hostname")
    return special.name


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink-out"])
@pytest.mark.parametrize("where", ["catalogue", "certificateFile"])
def test_special_files_where_a_file_is_expected(kind, where, project):
    name = _special_file(project, kind)
    catalogue = project / "special.yaml"
    if where == "catalogue":
        catalogue = project / name
    else:
        catalogue.write_bytes(_tenant(f"supplyChain: {{enabled: true, certificateFile: {name}}}"))
    try:
        code, _, err = run_cli(["--project", str(project), "validate", "--stack", "dev", "--tenants", str(catalogue)])
        assert code == 1, err
        lines = err.splitlines()
        assert lines and all(PROBLEM_LINE.match(line) for line in lines[:-1]) and SUMMARY_LINE.match(lines[-1]), err
        if where == "certificateFile":
            assert "supplyChain.certificateFile" in err
            assert "hostname" not in err.split("certificateFile:", 1)[1].split("leads", 1)[-1], err
    finally:
        path = project / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        (project / "special.yaml").unlink(missing_ok=True)


def test_a_device_as_the_catalogue_is_refused(project):
    code, _, err = run_cli(["--project", str(project), "validate", "--stack", "dev", "--tenants", "/dev/zero"])
    assert code == 1 and "not a regular file" in err, err


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_stack_file_that_is_not_a_file_is_refused(kind, project):
    special = project / "Pulumi.odd.yaml"
    special.mkdir() if kind == "directory" else os.mkfifo(special)
    try:
        code, _, err = run_cli(["--project", str(project), "validate", "--stack", "odd"])
    finally:
        special.rmdir() if kind == "directory" else special.unlink()
    assert code == 1 and err.startswith(f"Pulumi.odd.yaml: is a {kind.replace('fifo', 'FIFO')}, not a regular file"), err


def test_a_crash_class_through_the_real_process(project):
    """One sample through a separate interpreter: exit status 1, problem lines, no traceback anywhere."""
    (project / "deep.yaml").write_bytes(SEEDED["deep nesting"]["tenants.yaml"])
    run = subprocess.run([sys.executable, "-m", "tenancy", "--project", str(project), "validate", "--stack", "dev",
                          "--tenants", str(project / "deep.yaml")], cwd=PROJECT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr + run.stdout
    assert PROBLEM_LINE.match(run.stderr.splitlines()[0]), run.stderr


def test_quantities_at_the_edge_of_what_validation_accepts_synthesise(tmp_path):
    """The largest and finest quantities that pass validation render, scaled by dev's quotaScale 0.5, into objects."""
    from tests.conftest import render

    result = render("dev", """
        tenants:
          - name: edge
            team: edge
            repo: {url: https://github.com/x/edge.git}
            quota: {requests.cpu: "9223372036854775807", limits.memory: 8191Pi, requests.storage: 1e-9,
                    pods: "9223372036854775807", count/jobs.batch: 1e18}
            limits: {max: {memory: 8191Pi, cpu: 1n}, default: {cpu: 1n, memory: 1n}, defaultRequest: {cpu: 1n}}
        """, tmp_path)
    objects = {doc["kind"]: doc for _, doc in result.manifests() if doc["kind"] in ("ResourceQuota", "LimitRange")}
    hard = objects["ResourceQuota"]["spec"]["hard"]
    assert (hard["requests.cpu"], hard["limits.memory"], hard["requests.storage"], hard["pods"]) == (
        "4611686018427387903500m", "4096Pi", "1m", "9223372036854775807")
    assert objects["LimitRange"]["spec"]["limits"][0]["max"] == {"memory": "8191Pi", "cpu": "1n"}
