"""A real S3 endpoint for tests: moto in server mode (``moto_server``) on a free loopback port,
stopped by its PID. The registry reaches it through fsspec/s3fs like any S3."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, running

KEY, SECRET = "testing", "testing"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    pid: int

    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options for this endpoint (what ``registry.storage_options`` takes)."""
        return {
            "endpoint_url": self.endpoint,
            "key": KEY,
            "secret": SECRET,
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def create_bucket(self, name: str) -> None:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=name)


def _moto_server() -> str:
    local = Path(sys.executable).with_name("moto_server")
    found = str(local) if local.is_file() else shutil.which("moto_server")
    if not found:
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
    return found


@contextlib.contextmanager
def start_s3(tmp: Path) -> Iterator[S3Server]:
    port = free_port()
    log = tmp / f"moto-{port}.log"
    url = f"http://127.0.0.1:{port}"
    with running(
        [_moto_server(), "-H", "127.0.0.1", "-p", str(port)], ready_url=f"{url}/", log_path=log, timeout=60
    ) as proc:
        yield S3Server(url, proc.pid)
