"""A throwaway S3-compatible server for the tests: moto's ``moto_server`` (the dev extra installs
``moto[server]``) in its own process on a free loopback port, a fresh bucket per test.

It is a real HTTP server speaking the S3 protocol: delta-rs and pyarrow reach it through their
ordinary clients, configured only by the ``storage_options`` a workspace would give.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def options_for(endpoint: str) -> dict[str, str]:
    """The ``storage_options`` of a workspace whose tables live on the server at ``endpoint``."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "spindle-test",
        "AWS_SECRET_ACCESS_KEY": "spindle-test-secret",
        "AWS_ALLOW_HTTP": "true",
    }


@dataclass(frozen=True)
class Bucket:
    """One bucket on the server: its ``s3://`` URL and the options that reach it."""

    name: str
    endpoint: str

    @property
    def url(self) -> str:
        return f"s3://{self.name}"

    @property
    def options(self) -> dict[str, str]:
        return options_for(self.endpoint)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``, sorted."""
        from pyarrow import fs

        client = _client(self.endpoint)
        selector = fs.FileSelector(f"{self.name}/{prefix}".rstrip("/"), recursive=True)
        infos = client.get_file_info(selector)
        return sorted(
            i.path.removeprefix(f"{self.name}/") for i in infos if i.type == fs.FileType.File
        )


def _client(endpoint: str):  # type: ignore[no-untyped-def]
    from pyarrow import fs

    scheme, _, host = endpoint.partition("://")
    found = options_for(endpoint)
    return fs.S3FileSystem(
        access_key=found["AWS_ACCESS_KEY_ID"],
        secret_key=found["AWS_SECRET_ACCESS_KEY"],
        region=REGION,
        endpoint_override=host,
        scheme=scheme,
        allow_bucket_creation=True,
    )


class MotoServer:
    """``moto_server`` in a process of its own: :meth:`start`, :meth:`bucket`, :meth:`stop`."""

    def __init__(self, enforce_auth: bool = False) -> None:
        self.enforce_auth = enforce_auth  # refuse keys not created in its IAM (none are)
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._names = itertools.count(1)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        script = Path(sys.executable).with_name("moto_server")
        if not script.exists():
            pytest.fail("no moto_server: `make install` installs the dev extra (moto[server])")
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        if self.enforce_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self._process = subprocess.Popen(
            [str(script), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
                return
            except (urllib.error.URLError, OSError):
                if self._process.poll() is not None:
                    pytest.fail(f"moto_server exited with {self._process.returncode}")
                time.sleep(0.1)
        self.stop()
        pytest.fail("moto_server did not answer within 60 s")

    def bucket(self) -> Bucket:
        """A new empty bucket."""
        name = f"spindle-test-{next(self._names)}"
        _client(self.endpoint).create_dir(name)
        return Bucket(name, self.endpoint)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)


def running_moto(enforce_auth: bool = False) -> Iterator[MotoServer]:
    """A started server, stopped (SIGKILL) when the generator is closed: the body of a fixture

    @pytest.fixture(scope="module")
    def moto() -> Iterator[MotoServer]:
        yield from running_moto()
    """
    server = MotoServer(enforce_auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()
