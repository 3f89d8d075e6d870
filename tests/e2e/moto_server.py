"""moto in server mode on a free loopback port: the AWS endpoints (S3, IAM, KMS, STS) the aws stand-in provider
calls, started as a process and stopped by its PID. Clients reach it with any access key and the endpoint URL."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from tests.e2e.kube import free_port, start_server
from tests.processes import stop

ACCESS_KEY = "testing"
SECRET_KEY = "testing"


@dataclass(frozen=True)
class Moto:
    url: str
    log: Path

    def client(self, service: str, region: str = "us-west-2"):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=region, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[Moto]:
    port = free_port()
    server = start_server("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], folder)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto did not start:\n{server.tail()}")
            try:
                if httpx.get(f"{url}/moto-api/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield Moto(url, server.log)
    finally:
        stop(server.process, group=True)
