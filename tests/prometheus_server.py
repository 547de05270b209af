"""Debian's real Prometheus on 127.0.0.1, scraping test targets every second.

Installed by scripts/ensure_prometheus.sh; with REQUIRE_PROMETHEUS=1 a
missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.fake_serving import METRICS_PATH

_T = TypeVar("_T")


def tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; skips (or fails, if required) without it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/ensure_prometheus.sh installs it)"
        if os.environ.get("REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"{message}; REQUIRE_PROMETHEUS=1 forbids skipping")
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(port: int, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def safe_query(port: int, promql: str) -> list[dict[str, Any]]:
    """As `query`, empty while the server is not up yet."""
    try:
        return query(port, promql)
    except OSError:
        return []


def wait_for(check: Callable[[], _T], seconds: float = 60.0) -> _T:
    """Polls `check` until it returns something truthy or `seconds` pass; returns the last."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@contextmanager
def running(
    targets: Sequence[tuple[str, Mapping[str, str]]],
    rule_groups: Sequence[Mapping[str, Any]] = (),
    job: str = "tf-serving",
) -> Iterator[int]:
    """Prometheus scraping TF Serving's metrics path of each (host:port, labels) target.

    Yields:
        Its port, once every target is up.
    """
    binary = tool("prometheus")
    folder = Path(tempfile.mkdtemp(prefix="prometheus-"))
    settings: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": METRICS_PATH,
                "static_configs": [
                    {"targets": [target], "labels": dict(labels)} for target, labels in targets
                ],
            }
        ],
    }
    if rule_groups:
        (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": list(rule_groups)}))
        settings["rule_files"] = [str(folder / "rules.yaml")]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(settings))
    port = _free_port()
    with open(folder / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        up = wait_for(
            lambda: len(safe_query(port, f'up{{job="{job}"}} == 1')) == len(targets) or None
        )
        assert up, (folder / "prometheus.log").read_text()[-3000:]
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
