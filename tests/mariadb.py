"""A real MariaDB server for the ML Metadata MySQL-backend tests.

Starts Debian's `mariadbd` directly (the package's service start is refused
in containers) on a fresh data dir, a free localhost port and a private
socket, with passwordless root over TCP, and stops it afterwards. Where the
server is not installed the tests skip, unless REQUIRE_MARIADB=1 (set by
.ci/run), which turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class MariaDB:
    host: str
    port: int
    user: str
    socket: Path

    def sql(self, statement: str) -> str:
        client = shutil.which("mariadb") or shutil.which("mysql")
        assert client, "no mariadb client"
        return subprocess.run(
            [client, "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-e", statement],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mariadb(root: Path) -> Iterator[MariaDB]:
    server = _binary("mariadbd") or _binary("mysqld")
    install = _binary("mariadb-install-db") or _binary("mysql_install_db")
    if not server or not install:
        message = "MariaDB is not installed (scripts/ensure_mariadb.sh installs it)"
        if os.environ.get("REQUIRE_MARIADB") == "1":
            pytest.fail(f"{message}; REQUIRE_MARIADB=1 forbids skipping")
        pytest.skip(message)
    data = root / "data"
    sock = root / "mysqld.sock"
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = _free_port()
    log = open(root / "mariadbd.log", "w")  # noqa: SIM115  closed in the finally below
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--pid-file={root / 'mariadbd.pid'}",
            "--skip-name-resolve",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited with {process.returncode}: "
                    + (root / "mariadbd.log").read_text()[-2000:]
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mariadbd did not open its port within 120 s") from None
                time.sleep(0.2)
        yield MariaDB("127.0.0.1", port, "root", sock)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
