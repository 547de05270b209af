"""What every launcher shares: the worker command, its failure, SIGTERM handling.

The launchers themselves: `local_workers.py` (processes on this host) and
`kubernetes_workers.py` (an Indexed Job or a TFJob); `launchers.py` picks one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

WORKER_MODULE = "components.training.worker"


class WorkerFailedError(RuntimeError):
    """Training workers failed (and restarts, if any, were used up)."""


def error_line(tail: Sequence[str]) -> str:
    """A worker's own error from its last output lines: the last line naming an exception."""
    for line in reversed(tail):
        text = line.strip()
        head = text.split(":", 1)[0]
        if " " not in head and head.endswith(("Error", "Exception", "Exit", "Interrupt")):
            return text
    return tail[-1].strip() if tail else "(no output)"


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """Turns SIGTERM into an exception, so launchers clean up their workers.

    Kubeflow cancels a step with SIGTERM, which by default ends Python at
    once: no `finally` runs and launched workers keep training. Signal
    handlers can only be set from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise WorkerFailedError("trainer step terminated (SIGTERM); stopping its workers")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_command(python: str, fn_args_uri: str, run_fn: str) -> list[str]:
    """The command every worker runs (see components/training/worker.py)."""
    return [python, "-m", WORKER_MODULE, "--fn-args", fn_args_uri, "--run-fn", run_fn]


class Launcher(Protocol):
    def run(self, fn_args: Any, run_fn: str) -> None:
        """Runs `run_fn(fn_args)` on every worker; returns when all succeeded.

        Raises:
            WorkerFailedError: A worker failed and no restart was left.
        """
