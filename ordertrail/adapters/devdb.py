"""A throwaway PostgreSQL cluster for tests, benchmarks and local trials.

It is created in a temporary directory, listens on 127.0.0.1 (and a socket in that
directory) on a free port, and is removed when stopped. A watchdog process stops it if
the process that started it dies without stopping it. PostgreSQL refuses to run as root:
as root, the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

_WATCHDOG = """
import os, subprocess, sys, time, shutil
parent, pg_ctl, data, base = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
runas = sys.argv[5:]
while True:
    time.sleep(1)
    if not os.path.isdir(data):
        sys.exit(0)
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        subprocess.run([*runas, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        sys.exit(0)
"""


def find_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise FileNotFoundError(
        f"PostgreSQL's {name} was not found on PATH or in /usr/lib/postgresql/*/bin"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    base: Path
    port: int
    user: str
    runas: list[str]

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, dbname: str = "postgres", schema: str | None = None) -> str:
        query = f"?schema={schema}" if schema else ""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}{query}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.runas, *args], check=True, capture_output=True, text=True)

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.run(find_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def restart(self, mode: str = "immediate") -> None:
        """Stop abruptly (as a crash would) and start again on the same port."""
        pg_ctl = find_binary("pg_ctl")
        self.run(pg_ctl, "-D", str(self.data), "-m", mode, "stop")
        self.run(pg_ctl, "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "start")


def start_cluster(
    settings: Mapping[str, str] = FAST,
    *,
    max_connections: int = 300,
    base_dir: str | None = None,
) -> Cluster:
    """initdb and start a new cluster; the caller must ``stop()`` it."""
    runas: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="ordertrail-pg-", dir=base_dir))
    if os.geteuid() == 0:
        runas = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        base.chmod(0o700)
    user = "ordertrail"
    cluster = Cluster(base, free_port(), user, runas)
    cluster.run(
        find_binary("initdb"),
        "-D",
        str(cluster.data),
        "-U",
        user,
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
        "--locale=C",
    )
    options = {
        "port": str(cluster.port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(base),
        "max_connections": str(max_connections),
        "shared_buffers": "256MB",
        **settings,
    }
    with (cluster.data / "postgresql.conf").open("a") as conf:
        for key, value in options.items():
            conf.write(f"{key} = '{value}'\n")
    cluster.run(
        find_binary("pg_ctl"),
        "-D",
        str(cluster.data),
        "-l",
        str(base / "server.log"),
        "-w",
        "-t",
        "60",
        "start",
    )
    subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WATCHDOG,
            str(os.getpid()),
            find_binary("pg_ctl"),
            str(cluster.data),
            str(base),
            *runas,
        ],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_until_accepting(cluster)
    return cluster


def _wait_until_accepting(cluster: Cluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(cluster.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def throwaway_cluster(settings: Mapping[str, str] = FAST) -> Iterator[Cluster]:
    cluster = start_cluster(settings)
    try:
        yield cluster
    finally:
        cluster.stop()
