"""The Argo CD side of the e2e suite: the real ApplicationSet controller `tools/engines/argocd.sh` built.

- `appset_controller(kubeconfig, folder, repo_server)`: the controller run as Argo CD's manifests run it
  (`argocd-applicationset-controller`, argo-cd v3.5.7 `cmd/argocd-applicationset-controller/commands/
  applicationset_controller.go`), watching the `argocd` namespace only, on loopback only, stopped by PID.
- `reconciles(server)`: how many reconciles of the ApplicationSet the controller has finished or abandoned, read
  from its JSON log, so a test can wait for the next one instead of sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

from tests.e2e.kube import ENGINES, Server, free_port, pinned_version
from tests.processes import stop

ARGOCD_VERSION = pinned_version("argocd.sh", "ARGOCD_VERSION")
ARGOCD_DIR = ENGINES / f"argo-cd-{ARGOCD_VERSION}"
# The log lines that end one reconcile (applicationset_controller.go: `Reconcile`): a generator error, or success.
GENERATION_FAILED = "unable to generate applications"
RECONCILED = "end reconcile in "


def appset_binary() -> Path:
    binary = ARGOCD_DIR / "bin" / "argocd-applicationset-controller"
    if not (ARGOCD_DIR / ".complete").exists() or not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"the Argo CD ApplicationSet controller is not built in {ARGOCD_DIR}; "
                                "run `make engines`")
    return binary


@contextlib.contextmanager
def appset_controller(kubeconfig: Path, folder: Path, namespace: str, repo_server: str) -> Iterator[Server]:
    """The controller with its defaults but for: the namespace (`--namespace`, from the kubeconfig flags; only
    that namespace's ApplicationSets are watched), leader election off, metrics, probe and webhook servers on
    free loopback ports, and the repo-server address `repo_server` (the plugin generator never calls it; the
    client is built at start-up, and nothing listens there). No `--policy`: the ApplicationSet's own
    `applicationsSync` applies, as with the upstream install manifests."""
    argv = [str(appset_binary()), "--kubeconfig", str(kubeconfig), "--namespace", namespace,
            "--enable-leader-election=false", f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--probe-addr=127.0.0.1:{free_port()}",
            f"--webhook-addr=127.0.0.1:{free_port()}", f"--argocd-repo-server={repo_server}",
            "--logformat=json", "--loglevel=info"]
    # controller-runtime's own client (ctrl.GetConfigOrDie) reads KUBECONFIG, the cobra flags the rest.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "KUBECONFIG": str(kubeconfig)}
    log = folder / "argocd-applicationset-controller.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True, cwd=folder)
    server = Server("argocd-applicationset-controller", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the ApplicationSet controller exited with {process.returncode}:\n"
                                   f"{server.tail(60)}")
            # The manager registers no readiness check; the reconcile workers starting is what matters.
            if any(e.get("msg") == "Starting workers" for e in log_entries(server)):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ApplicationSet controller never became ready:\n{server.tail(60)}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process, group=True)


def log_entries(server: Server) -> list[dict]:
    """The controller's JSON log lines (klog lines from client-go, if any, are skipped)."""
    entries = []
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
    return entries


def reconciles(server: Server, appset: str) -> tuple[int, int]:
    """(failed generations, successful reconciles) of ApplicationSet `appset` logged so far."""
    failed = succeeded = 0
    for entry in log_entries(server):
        if (entry.get("applicationset") or {}).get("Name") != appset:
            continue
        message = str(entry.get("msg", ""))
        failed += message.startswith(GENERATION_FAILED)
        succeeded += message.startswith(RECONCILED)
    return failed, succeeded
