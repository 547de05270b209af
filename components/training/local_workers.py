"""The `local` launcher: N training worker processes on this host.

Each worker gets a free localhost port and its own TF_CONFIG, and its output
is logged line by line with a `[worker i]` prefix. MultiWorkerMirroredStrategy
cannot lose a member: when one worker fails, the others block in (or fail
out of) the collectives. So a failure stops the whole group, and a restart
starts all of them again, each resuming from the BackupAndRestore checkpoint.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.training.cluster import TF_CONFIG, worker_cluster
from components.training.worker import dump_fn_args
from components.training.workers import (
    WorkerFailedError,
    error_line,
    terminate_raises,
    worker_command,
)

_TAIL_LINES = 60
_STOP_GRACE_S = 10.0


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free now (they are bound again by the workers)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def gpu_assignment(workers: int, env: Mapping[str, str]) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES per worker, or None on a host without GPUs.

    Workers on one host must not share GPUs: each would reserve the memory
    of all of them, and NCCL refuses two ranks on one device. So the GPUs are
    split evenly; with fewer GPUs than workers, the workers run on CPU.
    """
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [g for g in visible.split(",") if g.strip()]
    else:
        import tensorflow as tf

        gpus = [str(i) for i in range(len(tf.config.list_physical_devices("GPU")))]
    if not gpus:
        return None
    per_worker = len(gpus) // workers
    if per_worker == 0:
        logging.warning(
            "trainer: %d GPU(s) for %d local workers: the workers run on CPU", len(gpus), workers
        )
        return [""] * workers
    return [",".join(gpus[i * per_worker : (i + 1) * per_worker]) for i in range(workers)]


@dataclass(frozen=True)
class WorkerExit:
    """How one worker ended.

    Attributes:
        index: Worker index.
        returncode: Exit code; negative: the signal that killed it.
        tail: Its last output lines.
    """

    index: int
    returncode: int
    tail: tuple[str, ...]

    @property
    def how(self) -> str:
        if self.returncode < 0:
            return f"was killed by {signal.Signals(-self.returncode).name}"
        return f"exited with code {self.returncode}"

    @property
    def error(self) -> str:
        return error_line(self.tail)


class LocalWorkers:
    """Runs `run_fn` in N worker processes with a TF_CONFIG each.

    Attributes:
        processes: The current attempt's worker processes (for tests and
            operators that need their pids).
        attempt: The current attempt, from 1.
    """

    def __init__(
        self,
        workers: int,
        max_restarts: int,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        log: Callable[[str], None] = logging.info,
    ):
        if workers < 1 or max_restarts < 0:
            raise ValueError(f"need workers >= 1, max_restarts >= 0; got {workers}, {max_restarts}")
        self.workers = workers
        self.max_restarts = max_restarts
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self.log = log
        self.processes: list[subprocess.Popen[str]] = []
        self.attempt = 0

    def run(self, fn_args: Any, run_fn: str) -> None:
        """Trains; returns when every worker of one attempt exited 0.

        Raises:
            WorkerFailedError: The last allowed attempt failed; names the
                worker that failed first, how, and its error line.
        """
        with tempfile.TemporaryDirectory(prefix="trainer-launch-") as scratch:
            fn_args_path = os.path.join(scratch, "fn_args.json")
            with open(fn_args_path, "w") as f:
                f.write(dump_fn_args(fn_args))
            command = worker_command(self.python, fn_args_path, run_fn)
            attempts = self.max_restarts + 1
            for self.attempt in range(1, attempts + 1):
                with terminate_raises():
                    failure = self._run_attempt(command)
                if failure is None:
                    return
                if self.attempt < attempts:
                    self.log(
                        f"trainer: worker {failure.index} {failure.how} ({failure.error}); "
                        f"restarting all {self.workers} workers from the last checkpoint "
                        f"(restart {self.attempt} of {self.max_restarts})"
                    )
            assert failure is not None  # the loop returns on success
            raise WorkerFailedError(
                f"training failed: worker {failure.index} {failure.how} on attempt "
                f"{attempts} of {attempts} (trainer.max_restarts={self.max_restarts}): "
                f"{failure.error}"
            )

    def _run_attempt(self, command: Sequence[str]) -> WorkerExit | None:
        addresses = [f"localhost:{port}" for port in free_ports(self.workers)]
        tails: list[collections.deque[str]] = []
        readers = []
        self.processes = []
        try:
            devices = gpu_assignment(self.workers, self.env)
            for index in range(self.workers):
                env = dict(self.env)
                env[TF_CONFIG] = worker_cluster(addresses, index).to_json()
                if devices is not None:
                    env["CUDA_VISIBLE_DEVICES"] = devices[index]
                env["PYTHONUNBUFFERED"] = "1"
                process = subprocess.Popen(
                    list(command),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                )
                self.processes.append(process)
                tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
                tails.append(tail)
                reader = threading.Thread(
                    target=self._stream, args=(index, process, tail), daemon=True
                )
                reader.start()
                readers.append(reader)
            self.log(
                f"trainer: attempt {self.attempt}: started {self.workers} workers on "
                f"{', '.join(addresses)} (pids {', '.join(str(p.pid) for p in self.processes)})"
            )
            failed = self._wait()
        finally:
            self._stop_all()
            for reader in readers:
                # The pipe closes when the worker exits, unless a child of
                # it still holds it; do not hang on that.
                reader.join(timeout=_STOP_GRACE_S)
        if failed is None:
            return None
        return WorkerExit(failed, self.processes[failed].returncode, tuple(tails[failed]))

    def _stream(
        self, index: int, process: subprocess.Popen[str], tail: collections.deque[str]
    ) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            self.log(f"[worker {index}] {line}")

    def _wait(self) -> int | None:
        """Index of the first worker to fail, or None when all exited 0.

        When several have failed by the same poll, one killed by a signal
        is the cause: its peers fail because their collective ops lost it.
        """
        while True:
            codes = [p.poll() for p in self.processes]
            failed = [i for i, code in enumerate(codes) if code is not None and code != 0]
            if failed:
                killed = [i for i in failed if (codes[i] or 0) < 0]
                return (killed or failed)[0]
            if all(code == 0 for code in codes):
                return None
            time.sleep(0.1)

    def _stop_all(self) -> None:
        # SIGKILL, not SIGTERM: once MultiWorkerMirroredStrategy is up,
        # TensorFlow's coordination agent catches SIGTERM as a preemption
        # notice and the worker trains on, blocked in a collective op on the
        # peer that is gone until that op times out (measured: 8.7 s, all of
        # it before the restart could begin). A stopped attempt has nothing
        # left to save: the restart resumes from the last checkpoint, which
        # BackupAndRestore only names once it is complete.
        running = [p for p in self.processes if p.poll() is None]
        for p in running:
            p.kill()
        for p in running:
            p.wait()
