"""Stopping the real servers tests and benchmarks start (OpenBao, the generator), by process id."""

from __future__ import annotations

import os
import signal
import subprocess


def stop(process: subprocess.Popen, *, group: bool = False, grace_seconds: float = 10) -> None:
    """TERM, then KILL if it has not exited in time; `group` signals the process group it leads."""
    if process.poll() is not None:
        return  # already exited (and reaped): its pid may belong to another process by now
    send = os.killpg if group else os.kill
    send(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        send(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
