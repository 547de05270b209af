"""Runs the TLS front's own nginx.conf in Debian's real nginx, on 127.0.0.1.

The shipped file (kubernetes/serving/components/front/nginx.conf) is used
as it is, with only what a cluster provides pointed at the test's: the
mounted Secrets' folders, the upstream Service addresses, the listen port
and the writable /tmp. Certificates are made by `openssl` for the test: a
server CA and a certificate for 127.0.0.1, a client CA and a client
certificate; the API keys are hashed with `openssl passwd -6` (SHA-512
crypt, which nginx checks through the system's crypt()).
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

FRONT_CONF = REPO_ROOT / "kubernetes" / "serving" / "components" / "front" / "nginx.conf"
FRONT_ROUTES = FRONT_CONF.with_name("routes.conf")
KEY_ID, KEY = "ci-client", "k3y-" + "9f2c1d7e5a"


def nginx() -> str:
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        message = "nginx is not installed (scripts/ensure_nginx.sh installs it)"
        if os.environ.get("REQUIRE_NGINX") == "1":
            pytest.fail(f"{message}; REQUIRE_NGINX=1 forbids skipping")
        pytest.skip(message)
    return path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


# A fresh P-256 key, unencrypted, for `openssl req`.
_NEW_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _certificate(folder: Path, name: str, ca: str, subject: str, san: str | None) -> None:
    _openssl(
        "req",
        *_NEW_EC_KEY,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={subject}",
        cwd=folder,
    )
    extra = []
    if san:
        (folder / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        extra = ["-extfile", f"{name}.ext"]
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        *extra,
        cwd=folder,
    )


def _ca(folder: Path, name: str) -> None:
    _openssl(
        "req",
        "-x509",
        *_NEW_EC_KEY,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )


@dataclass
class Front:
    """A running front: where it listens and the files a client needs."""

    port: int
    folder: Path
    config: Path
    process: subprocess.Popen[bytes]

    @property
    def rest_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"grpcs://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> str:
        return str(self.folder / "certs" / "server-ca.crt")

    def client(self, name: str = "client") -> tuple[str, str]:
        return str(self.folder / "certs" / f"{name}.crt"), str(
            self.folder / "certs" / f"{name}.key"
        )

    def context(self, client: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_cert)
        if client:
            context.load_cert_chain(*self.client(client))
        return context

    def log(self) -> str:
        return (self.folder / "nginx.log").read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replace(text: str, source: Path, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"{source}: {old!r} is gone; update tests/nginx_front.py"
        text = text.replace(old, new)
    return text


def write_routes(folder: Path, routes: str) -> None:
    """The routes file nginx.conf includes (the front's own, or one `rollout` wrote)."""
    (folder / "routes").mkdir(exist_ok=True)
    (folder / "routes" / "routes.conf").write_text(routes)


def render(
    folder: Path, rest_upstream: str, grpc_upstream: str, port: int, routes: str | None = None
) -> Path:
    """The shipped nginx.conf with the cluster's paths and addresses pointed at `folder`'s.

    Args:
        routes: The routes file to include; None: the front's own, its one
            track pointed at the given upstreams.
    """
    text = _replace(
        FRONT_CONF.read_text(),
        FRONT_CONF,
        {
            # First: the folder itself lies under /tmp.
            "/tmp/": f"{folder}/run/",
            "/etc/nginx/tls/": f"{folder}/tls/",
            "/etc/nginx/client-ca/": f"{folder}/client-ca/",
            "/etc/nginx/api-keys/": f"{folder}/api-keys/",
            "/etc/nginx/routes/": f"{folder}/routes/",
            "listen 8443 ": f"listen 127.0.0.1:{port} ",
        },
    )
    if routes is None:
        routes = _replace(
            FRONT_ROUTES.read_text(),
            FRONT_ROUTES,
            {
                "server taxi-serving:8501;": f"server {rest_upstream};",
                "server taxi-serving:8500;": f"server {grpc_upstream};",
            },
        )
    write_routes(folder, routes)
    config = folder / "nginx.conf"
    config.write_text(text)
    return config


def prepare(
    rest_upstream: str, grpc_upstream: str, routes: str | None = None
) -> tuple[Path, Path, int]:
    """Certificates, the htpasswd Secret's file and the rendered config, in a fresh folder."""
    # Workers run as nobody and read the key file per request: a folder they can traverse.
    folder = Path(tempfile.mkdtemp(prefix="front-", dir="/tmp"))
    folder.chmod(0o755)
    certs = folder / "certs"
    certs.mkdir()
    _ca(certs, "server-ca")
    _certificate(certs, "server", "server-ca", "127.0.0.1", "IP:127.0.0.1,DNS:localhost")
    _ca(certs, "client-ca")
    _certificate(certs, "client", "client-ca", "ci-client", None)
    _ca(certs, "stranger-ca")
    _certificate(certs, "stranger", "stranger-ca", "stranger", None)
    for sub, files in {
        "tls": {"tls.crt": "server.crt", "tls.key": "server.key"},
        "client-ca": {"ca.crt": "client-ca.crt"},
    }.items():
        (folder / sub).mkdir()
        for target, source in files.items():
            shutil.copy(certs / source, folder / sub / target)
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", KEY], check=True, capture_output=True, text=True
    ).stdout.strip()
    (folder / "api-keys").mkdir(mode=0o755)
    (folder / "api-keys" / "htpasswd").write_text(f"{KEY_ID}:{hashed}\n")
    (folder / "api-keys" / "htpasswd").chmod(0o644)
    (folder / "run").mkdir(mode=0o777)
    (folder / "run").chmod(0o777)
    port = _free_port()
    return folder, render(folder, rest_upstream, grpc_upstream, port, routes), port


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a rendered config."""
    return subprocess.run(
        [nginx(), "-t", "-c", str(config), "-p", str(config.parent)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start(rest_upstream: str, grpc_upstream: str, routes: str | None = None) -> Front:
    """Starts nginx on the rendered config; waits until it accepts connections."""
    folder, config, port = prepare(rest_upstream, grpc_upstream, routes)
    with open(folder / "nginx.log", "wb") as log:  # nginx keeps its own descriptor
        process = subprocess.Popen(
            [nginx(), "-c", str(config), "-p", str(folder), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = (folder / "nginx.log").read_text()
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"nginx exited {process.returncode}: {log_text}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Front(port, folder, config, process)
        except OSError:
            time.sleep(0.1)
    process.kill()
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError("nginx did not listen within 30 s")


def stop(front: Front) -> None:
    front.process.terminate()
    try:
        front.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        front.process.kill()
    shutil.rmtree(front.folder, ignore_errors=True)
