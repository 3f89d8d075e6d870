"""The Pulumi engine for the e2e suite: the real CLI (tools/engines/pulumi.sh) runs the real composition root of a
project copy through the Automation API, with the real Kubernetes provider (tools/engines/kubernetes-provider.sh)
and the test-only stand-ins for the aws, vault and random providers (tests/e2e/standin).

- `PulumiHome.create(folder)`: a Pulumi home of the test's own (never ~/.pulumi) with the Kubernetes provider
  installed at the version the Python SDK requests; the stand-ins install into it too.
- `EngineStack.open(...)`: an Automation API stack of a project copy on a local file backend: `up`, `preview`,
  `refresh`, `destroy`, `export` (each bounded by a timeout, its output and engine events kept in a log folder,
  `.engines/e2e-logs/pulumi-<stack>/engine/` for the tests), and `stop()` (every process the engine left behind,
  by its id).

Why an inline program: the Python language host (`pulumi-language-python`) is served by no registry. The Automation
API serves the program itself (pulumi/automation/_server.py `LanguageServer`, `Run` resets the runtime with the
engine's monitor address and the stack's config) and passes `--client=<address>` to the CLI
(pulumi/automation/_stack.py `up`). The program is the copy's own `__main__.py`, run with runpy as the language
host runs it: `__file__` set to it, its folder first on sys.path and as the working directory. The engine loads no
plugin for a client program (`GetRequiredPlugins` answers nothing), so every provider is installed beforehand and
`PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION` turns a missing one into an error instead of a download.
Dynamic providers (the registry rows) run in `pulumi-resource-pulumi-python`, the script pulumi/pulumi ships in the
sdk/v3 module under `python/dist/` (it runs `${PULUMI_PYTHON_CMD:-python3} -u -m pulumi.dynamic`): it is
referenced from the Go module cache, never copied into the repository.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from tests.e2e.kube import ENGINES, PROJECT, pinned_version

PULUMI_VERSION = pinned_version("pulumi.sh", "PULUMI_VERSION")
K8S_PROVIDER_VERSION = pinned_version("kubernetes-provider.sh", "K8S_PROVIDER_VERSION")
PULUMI_ROOT = ENGINES / f"pulumi-{PULUMI_VERSION}"
K8S_PROVIDER_DIR = ENGINES / f"pulumi-kubernetes-{K8S_PROVIDER_VERSION}"
LOGS = ENGINES / "e2e-logs"
# Test-only: it encrypts the secrets of throwaway stacks on a throwaway backend.
PASSPHRASE = "tenancy-e2e-" + uuid.uuid4().hex
# The longest one engine operation may take here (the sample stacks take well under it on two loaded cores).
OPERATION_TIMEOUT = 900
# Marks every process the engine starts (the CLI passes its environment to each plugin), so that a timeout or a
# teardown stops exactly those, by process id.
MARKER = "TENANCY_E2E_ENGINE_RUN"


def cli() -> Path:
    binary = PULUMI_ROOT / "bin" / "pulumi"
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"the Pulumi CLI is not built in {binary}; run `make engines`")
    return binary


def kubernetes_provider() -> Path:
    binary = K8S_PROVIDER_DIR / "bin" / "pulumi-resource-kubernetes"
    if not (K8S_PROVIDER_DIR / ".complete").exists() or not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"the Kubernetes provider is not built in {binary}; run `make engines`")
    return binary


@functools.lru_cache(maxsize=1)
def dynamic_provider_script() -> Path:
    """`pulumi-resource-pulumi-python` of the CLI's release, in the Go module cache (downloaded if absent)."""
    with tempfile.TemporaryDirectory() as outside_any_module:
        done = subprocess.run(["go", "mod", "download", "-json", f"github.com/pulumi/pulumi/sdk/v3@{PULUMI_VERSION}"],
                              cwd=outside_any_module, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise FileNotFoundError(f"go mod download of pulumi sdk/v3 {PULUMI_VERSION} failed:\n{done.stdout}{done.stderr}")
    script = Path(json.loads(done.stdout)["Dir"]) / "python" / "dist" / "pulumi-resource-pulumi-python"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: pulumi sdk/v3 {PULUMI_VERSION} no longer ships it there")
    return script


def _run(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class PulumiHome:
    """A Pulumi home and the environment every engine call of a test runs with."""
    folder: Path
    bin_dir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def create(cls, folder: Path) -> "PulumiHome":
        home = cls(folder / "pulumi-home", folder / "bin")
        home.folder.mkdir(parents=True)
        home.bin_dir.mkdir(parents=True)
        # The module cache keeps files read-only and not executable: a two-line launcher runs the script with sh.
        launcher = home.bin_dir / "pulumi-resource-pulumi-python"
        launcher.write_text(f"#!/bin/sh\nexec /bin/sh '{dynamic_provider_script()}' \"$@\"\n")
        launcher.chmod(0o755)
        home.install_plugin("kubernetes", K8S_PROVIDER_VERSION, kubernetes_provider())
        return home

    def env(self) -> dict[str, str]:
        """The CLI's environment (the Automation API adds it to this process's own)."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PULUMI_HOME": str(self.folder),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            # The dynamic-provider launcher first, then the venv's python (the launcher's `python3`).
            "PATH": os.pathsep.join([str(self.bin_dir), venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
            "PULUMI_PYTHON_CMD": sys.executable,
            MARKER: self.run_id,
        }

    def install_plugin(self, name: str, version: str, binary: Path, kind: str = "resource") -> None:
        _run([str(cli()), "plugin", "install", kind, name, version, "--file", str(binary)],
             env={**os.environ, **self.env()}, timeout=600)

    def stop_strays(self) -> list[int]:
        """Stop every process still carrying this home's run id (plugins a killed CLI left); their ids."""
        return stop_marked(self.run_id)


def _marked_pids(run_id: str) -> list[int]:
    needle = f"{MARKER}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # exited meanwhile, or not ours
            continue
    return found


def stop_marked(run_id: str, grace_seconds: float = 5) -> list[int]:
    pids = _marked_pids(run_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and _marked_pids(run_id):
        time.sleep(0.2)
    for pid in _marked_pids(run_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def composition_root(project: Path) -> Callable[[], None]:
    """The inline program: the copy's `__main__.py` as the Python language host runs it."""
    main = project / "__main__.py"

    def program() -> None:
        cwd = os.getcwd()
        os.chdir(project)
        sys.path.insert(0, str(project))
        try:
            runpy.run_path(str(main), run_name="__main__")
        finally:
            sys.path.remove(str(project))
            os.chdir(cwd)

    return program


@dataclass
class Operation:
    """What one engine call printed and the engine events it emitted."""
    name: str
    stdout: str
    events: list[Any]
    seconds: float

    def steps(self) -> list[Any]:
        """The StepEventMetadata of each resource step the engine announced (ResourcePreEvent)."""
        return [e.resource_pre_event.metadata for e in self.events if e.resource_pre_event is not None]

    def changes(self) -> list[tuple[str, str]]:
        """(op, urn) of every step that is not `same`."""
        return [(str(s.op.value if hasattr(s.op, "value") else s.op), s.urn) for s in self.steps()
                if str(getattr(s.op, "value", s.op)) != "same"]


class EngineStack:
    """One stack of a project copy, driven by the real CLI through the Automation API."""

    def __init__(self, stack: Any, home: PulumiHome, logs: Path):
        self.stack = stack
        self.home = home
        self.logs = logs
        self.count = 0

    @classmethod
    def open(cls, project: Path, stack_name: str, home: PulumiHome, backend: Path, logs: Path,
             env: Optional[dict[str, str]] = None) -> "EngineStack":
        """Create (or select) `stack_name` of the copy at `project`; config comes from its Pulumi.<stack>.yaml.
        Each operation's output and events go to `logs` (emptied first: it holds this run's only)."""
        from pulumi import automation as auto

        backend.mkdir(parents=True, exist_ok=True)
        workspace_env = {**home.env(), "PULUMI_BACKEND_URL": f"file://{backend}", **(env or {})}
        opts = auto.LocalWorkspaceOptions(
            work_dir=str(project), pulumi_home=str(home.folder), env_vars=workspace_env,
            secrets_provider="passphrase",
            pulumi_command=auto.PulumiCommand(root=str(PULUMI_ROOT), skip_version_check=True))
        stack = auto.create_or_select_stack(stack_name, project_name="tenancy", program=composition_root(project),
                                            opts=opts)
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
        return cls(stack, home, logs)

    @property
    def name(self) -> str:
        return self.stack.name

    def set_secret(self, key: str, value: str) -> None:
        from pulumi import automation as auto

        self.stack.set_config(key, auto.ConfigValue(value=value, secret=True))

    def _call(self, name: str, method: Callable[..., Any], timeout: float, **kwargs: Any) -> tuple[Any, Operation]:
        """Run one engine operation, bounded: at `timeout` every process of this run is stopped, so the CLI
        exits and the call returns. Its output and events are written under the stack's log folder."""
        from pulumi.automation import errors

        self.count += 1
        events: list[Any] = []
        output: list[str] = []
        log = self.logs / f"{self.count:02d}-{name}.log"
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            stop_marked(self.home.run_id)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        begin = time.monotonic()
        timer.start()
        result, failure = None, None
        try:
            result = method(on_output=output.append, on_event=events.append, color="never", **kwargs)
        except errors.CommandError as exc:
            failure = exc
        finally:
            timer.cancel()
            seconds = time.monotonic() - begin
            log.write_text("\n".join(output) + (f"\n--- failed:\n{failure}" if failure else "") + "\n")
            with (self.logs / f"{self.count:02d}-{name}.events.jsonl").open("w") as out:
                for event in events:
                    out.write(json.dumps(_plain(event), default=str) + "\n")
        operation = Operation(name, "\n".join(output), events, seconds)
        if timed_out.is_set():
            raise TimeoutError(f"pulumi {name} of {self.name} did not finish within {timeout:.0f}s; log: {log}")
        if failure is not None:
            raise EngineFailed(name, failure, operation)
        return result, operation

    def up(self, timeout: float = OPERATION_TIMEOUT, **kwargs: Any) -> Operation:
        return self._call("up", self.stack.up, timeout, **kwargs)[1]

    def preview(self, timeout: float = OPERATION_TIMEOUT, **kwargs: Any) -> Operation:
        return self._call("preview", self.stack.preview, timeout, **kwargs)[1]

    def refresh(self, timeout: float = OPERATION_TIMEOUT, **kwargs: Any) -> Operation:
        return self._call("refresh", self.stack.refresh, timeout, **kwargs)[1]

    def destroy(self, timeout: float = OPERATION_TIMEOUT, **kwargs: Any) -> Operation:
        return self._call("destroy", self.stack.destroy, timeout, **kwargs)[1]

    def export(self) -> dict[str, Any]:
        """The stack's checkpoint as `pulumi stack export` prints it, secrets encrypted. Not the Automation API's
        `export_stack()`: that passes `--show-secrets` (pulumi/automation/_local_workspace.py), so it decrypts."""
        workspace = self.stack.workspace
        done = subprocess.run([str(cli()), "stack", "export", "--stack", self.name], cwd=workspace.work_dir,
                              env={**os.environ, **workspace.env_vars}, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"pulumi stack export failed:\n{done.stderr}")
        return json.loads(done.stdout)["deployment"]

    def stop(self) -> list[int]:
        return self.home.stop_strays()


class EngineFailed(AssertionError):
    def __init__(self, name: str, error: Exception, operation: Operation):
        super().__init__(f"pulumi {name} failed:\n{_tail(str(error))}")
        self.error = error
        self.operation = operation


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _plain(event: Any) -> Any:
    """An engine event as JSON-able data (the SDK's event classes hold nested objects and enums)."""
    if isinstance(event, (str, int, float, bool)) or event is None:
        return event
    if isinstance(event, (list, tuple)):
        return [_plain(e) for e in event]
    if isinstance(event, dict):
        return {str(k): _plain(v) for k, v in event.items()}
    if hasattr(event, "value") and type(event).__module__.endswith("events"):
        return event.value
    if hasattr(event, "__dict__"):
        return {k: _plain(v) for k, v in vars(event).items() if v is not None}
    return str(event)


@contextlib.contextmanager
def engine_home(folder: Path) -> Iterator[PulumiHome]:
    """A Pulumi home for one test module; whatever engine process is left at the end is stopped."""
    home = PulumiHome.create(folder)
    try:
        yield home
    finally:
        home.stop_strays()
