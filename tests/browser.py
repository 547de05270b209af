"""Loads a page in Debian's real headless Chromium: its DOM, console messages, a screenshot.

Chromium logs each console message and uncaught error to stderr as
`INFO:CONSOLE(...)` with --enable-logging=stderr; that is what `console`
holds. scripts/ensure_chromium.sh installs the browser; without it the
tests that need it skip, unless REQUIRE_CHROMIUM=1 (set by .ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\] (.*)$")


@dataclass(frozen=True)
class Loaded:
    dom: str
    console: list[str]
    screenshot: bytes


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Chromium is not installed (scripts/ensure_chromium.sh installs it)"
        if os.environ.get("REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"{message}; REQUIRE_CHROMIUM=1 forbids skipping")
        pytest.skip(message)
    return path


def _run(*flags: str, url: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",  # root in a container
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                *flags,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )


def load(page: Path, screenshot_size: str = "1200,2400") -> Loaded:
    url = page.resolve().as_uri()
    dumped = _run("--dump-dom", url=url)
    console = [m.group(1) for line in dumped.stderr.splitlines() if (m := _CONSOLE.search(line))]
    with tempfile.TemporaryDirectory() as out:
        shot = Path(out) / "page.png"
        _run(
            "--hide-scrollbars", f"--window-size={screenshot_size}", f"--screenshot={shot}", url=url
        )
        picture = shot.read_bytes()
    return Loaded(dumped.stdout, console, picture)
