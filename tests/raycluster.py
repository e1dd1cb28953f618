"""A throwaway Ray cluster of separate ``ray start`` processes, for tests and benchmarks.

A head and worker nodes, each started by ``ray start`` with a temp dir of its own under one
short folder (Ray's socket paths must fit in 107 characters). :meth:`Cluster.stop` kills only
this cluster's processes (those whose command line names its folder): ``ray stop --force``
would also kill every other Ray on the machine, such as another test run's local one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hiding_works() -> bool:
    """Whether ``unshare -m`` may give a node a mount namespace of its own here."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@dataclass
class Cluster:
    """A running cluster: its ``address`` and the folder its nodes' temp dirs are in."""

    address: str
    folder: Path

    def pids(self) -> list[int]:
        """The processes whose command line names this cluster's folder."""
        found = []
        needle = str(self.folder).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> None:
        """Kill this cluster's processes (SIGKILL) and remove its folder."""
        for _ in range(3):  # a dying raylet may still start a worker: look again
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(head_cpus: int, workers: list[int], *, hide: Path | None = None) -> Cluster:
    """A head of ``head_cpus`` CPUs and one worker node per entry of ``workers`` (its CPUs).
    ``hide``: start the worker nodes in a mount namespace where that folder is an empty tmpfs
    (see :func:`hiding_works`).

    ``RAY_AUTH_MODE=disabled`` must be in the environment (of this process and the driver).
    """
    folder = Path(tempfile.mkdtemp(prefix="sr", dir="/tmp"))
    port = _free_port()
    start = [str(RAY), "start", "--disable-usage-stats"]
    head = [*start, "--head", f"--port={port}", f"--num-cpus={head_cpus}"]
    head += ["--include-dashboard=false", f"--temp-dir={folder / 'head'}"]
    subprocess.run(head, check=True, capture_output=True)
    cluster = Cluster(f"127.0.0.1:{port}", folder)
    mount = f"mount -t tmpfs none '{hide}' && exec \"$@\""
    try:
        for i, cpus in enumerate(workers):
            node = [*start, f"--address={cluster.address}", f"--num-cpus={cpus}"]
            node.append(f"--temp-dir={folder / f'node{i}'}")
            if hide is not None:
                node = ["unshare", "-m", "sh", "-c", mount, "sh", *node]
            subprocess.run(node, check=True, capture_output=True)
    except BaseException:
        cluster.stop()
        raise
    return cluster
