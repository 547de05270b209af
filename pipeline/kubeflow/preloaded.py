"""Task commands as forks of one Python that has already imported TensorFlow and TFX.

Every task of the compiled pipeline runs `python -m pipeline.kubeflow.entrypoint
...`, and a fresh interpreter spends about 6 s of CPU importing TensorFlow,
TFX and Beam before the executor starts: more than most tasks' own work on
small data, eleven times a run (docs/benchmarks.md, "Test suite time").
`PreloadedPython` starts one server interpreter that imports those modules
once; each `python -m MODULE ARGS` command then runs in a fork of it, as
`python -m` would run it: `sys.argv`, `sys.path[0]`, `__main__` and the
working folder set the same way, standard output and error in the task's
log, the exit status that `subprocess` would report (negative for a
signal), and the interpreter's normal shutdown (atexit handlers, flushed
streams) at the end.

What differs from a fresh interpreter: the preloaded modules' import-time
code ran once, in the server, with the same environment as every task gets.
Nothing else is shared: each task is its own process, its TensorFlow runtime
is created in the fork (the server imports, it never runs an op), and what a
task changes dies with it. A command that is not `python -m ...` runs as
a plain subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

# Imported by the server before the first fork: the container entrypoint,
# TFX's Kubeflow v2 executor runner and the libraries the executors import
# when they start.
PRELOAD = (
    "pipeline.kubeflow.entrypoint",
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    "tensorflow_transform.beam",
    "tensorflow_data_validation",
    "tensorflow_model_analysis",
)
_PYTHON_NAMES = {"python", "python3", Path(sys.executable).name}


class ServerFailed(RuntimeError):
    """The preloading interpreter exited or stopped answering."""


def module_command(command: list[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) of a `python -m MODULE ARGS...` command; None for any other."""
    if len(command) >= 3 and Path(command[0]).name in _PYTHON_NAMES and command[1] == "-m":
        return command[2], command[3:]
    return None


class PreloadedPython:
    """Runs `python -m` commands as forks of one interpreter that imported `modules`.

    Args:
        env: The environment of the server, hence of every command.
        log: Where the server's own output goes (its import warnings, and
            why it failed if it did).
        modules: What the server imports before the first command.
    """

    def __init__(self, env: dict[str, str], log: Path, modules: tuple[str, ...] = PRELOAD):
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            # Started now, it imports while the caller prepares the first task.
            self._server = subprocess.Popen(
                [sys.executable, "-m", __name__, *modules],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=out,
                # Unbuffered: a buffered reader could take the next reply
                # out of the pipe where select() no longer sees it.
                bufsize=0,
            )
        self._ready = False
        # The running task's pid, while `run` waits for it.
        self.task_pid: int | None = None

    def _reply(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The server's next message; None if `timeout_s` passed first."""
        assert self._server.stdout is not None
        if timeout_s is not None:
            ready, _, _ = select.select([self._server.stdout], [], [], max(timeout_s, 0))
            if not ready:
                return None
        line = self._server.stdout.readline()
        if not line:
            self._server.wait()
            tail = self.log.read_text(errors="replace")[-2000:]
            raise ServerFailed(
                f"the preloading python exited with {self._server.returncode} "
                f"(log {self.log}):\n{tail}"
            )
        message: dict[str, Any] = json.loads(line)
        return message

    def run(self, module: str, args: list[str], log: IO[str], timeout_s: float) -> int:
        """Runs `python -m module *args` with its output in `log`.

        Returns:
            Its exit status, as `subprocess` reports it.

        Raises:
            subprocess.TimeoutExpired: It ran past `timeout_s` and was killed.
        """
        assert self._server.stdin is not None
        if not self._ready:
            if self._reply(None) != {"ready": True}:
                raise ServerFailed(f"the preloading python did not start (log {self.log})")
            self._ready = True
        log.flush()
        request = {
            "module": module,
            "args": args,
            "cwd": os.getcwd(),
            "log": os.path.abspath(log.name),
        }
        self._server.stdin.write((json.dumps(request) + "\n").encode())
        self._server.stdin.flush()
        started = self._reply(None)
        assert started is not None
        self.task_pid = started["pid"]
        try:
            ended = self._reply(timeout_s)
            timed_out = ended is None
            if timed_out:
                self._kill_task()
                ended = self._reply(None)
        except BaseException:
            # Ctrl-C, or the caller stopped: as `subprocess.run` does, the
            # task does not outlive the wait for it, and the server's
            # report of its end is read so the next task's replies are its own.
            self._kill_task()
            with contextlib.suppress(ServerFailed):
                self._reply(10)
            raise
        finally:
            self.task_pid = None
            # The task appended to the file through its own descriptor.
            log.seek(0, os.SEEK_END)
        assert ended is not None
        if timed_out and ended["exit"] == -signal.SIGKILL:
            raise subprocess.TimeoutExpired([sys.executable, "-m", module, *args], timeout_s)
        return int(ended["exit"])

    def _kill_task(self) -> None:
        if self.task_pid is not None:
            with contextlib.suppress(ProcessLookupError):  # it ended at that moment
                os.kill(self.task_pid, signal.SIGKILL)

    def close(self) -> None:
        """Stops the server (it exits when its input ends)."""
        if self._server.poll() is None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        if self._server.stdout is not None:
            self._server.stdout.close()


# -- the server ------------------------------------------------------------------


def _become_task(
    request: dict[str, Any], control: tuple[IO[bytes], IO[bytes]], sigint: Any
) -> None:
    """In the fork: the process `python -m module args` would be, up to its main."""
    import runpy

    signal.signal(signal.SIGINT, sigint)
    for pipe in control:
        pipe.close()
    out = os.open(request["log"], os.O_WRONLY | os.O_APPEND)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]
    sys.argv = ["-m", *request["args"]]  # argv[0] becomes the module's file, as with -m
    # A fresh process draws its own numpy seed (Python's `random` reseeds
    # itself in a fork).
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    # Run as __main__ only, as `python -m` does, even when the server
    # preloaded the module itself for its imports.
    sys.modules.pop(request["module"], None)
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


def serve(modules: list[str]) -> None:
    """Imports `modules`, then forks once per request read from standard input."""
    import importlib

    # Ctrl-C reaches the whole process group: the task it interrupts
    # reports it; the server waits for the task's status and the caller's
    # next line.
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    # Anything the imports print goes to the server's log, not the replies.
    os.dup2(2, 1)
    for module in modules:
        importlib.import_module(module)

    def reply(message: dict[str, Any]) -> None:
        replies.write((json.dumps(message) + "\n").encode())

    reply({"ready": True})
    while line := requests.readline():
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _become_task(request, (requests, replies), sigint)
            # The task's main returned: leave as `python -m` does, through
            # the interpreter's shutdown, never back into this loop.
            raise SystemExit(0)
        reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        reply({"exit": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve(sys.argv[1:])
