"""`python -m` commands as forks of a preloaded interpreter, against fresh interpreters.

Each behaviour is checked both ways: the command run by `subprocess` in a
new interpreter (what a container does) and through `PreloadedPython`; the
two must agree on what the module sees, what it writes and how it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipeline.kubeflow.preloaded import PreloadedPython, ServerFailed, module_command

TASK = textwrap.dedent(
    """
    import atexit, json, os, signal, sys
    import preloaded_probe_state as state

    atexit.register(lambda: print("atexit ran", flush=True))
    print(json.dumps({
        "argv": sys.argv, "name": __name__, "cwd": os.getcwd(), "path0": sys.path[0],
        "touched": state.touched, "env": os.environ.get("PROBE_SET"),
        "stdin": sys.stdin.read(),
    }))
    import numpy
    print("draw", numpy.random.randint(2**31))
    state.touched = True
    os.environ["PROBE_SET"] = "by a task"
    print("to stderr", file=sys.stderr)
    how = sys.argv[1] if len(sys.argv) > 1 else "ok"
    if how == "exit3":
        sys.exit(3)
    if how == "raise":
        raise ValueError("column fare: not a number")
    if how == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    if how == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
    if how == "sleep":
        import time
        time.sleep(60)
    """
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preloaded")
    (root / "preloaded_probe.py").write_text(TASK)
    (root / "preloaded_probe_state.py").write_text("touched = False\n")
    (root / "preloaded_guarded.py").write_text(
        "import sys\nprint('imported as', __name__, file=sys.stderr)\n"
        "if __name__ == '__main__':\n    print('main ran', file=sys.stderr)\n"
    )
    (root / "elsewhere").mkdir()
    return root


@pytest.fixture(scope="module")
def sigint_raises():
    """Ctrl-C raises KeyboardInterrupt here, as in an interactive shell.

    A suite started in the background by a script (`make test &`) inherits
    SIGINT ignored, and so would the tasks these tests interrupt; the
    server and the fresh interpreters take this process's disposition.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def server(folder: Path, sigint_raises: None):
    # Preloads the state module too: a task that changes it must not change
    # what the next task sees.
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        python = PreloadedPython(
            dict(os.environ, PYTHONPATH=str(folder)),
            folder / "server.log",
            modules=("json", "numpy", "preloaded_probe_state", "preloaded_guarded"),
        )
        yield python
    finally:
        os.chdir(cwd)
        python.close()


def _fresh(
    folder: Path,
    args: list[str],
    log: Path,
    module: str = "preloaded_probe",
    cwd: Path | None = None,
) -> int:
    with open(log, "w") as out:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd or folder,
            env=dict(os.environ, PYTHONPATH=str(folder)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode


def _forked(
    server: PreloadedPython, args: list[str], log: Path, module: str = "preloaded_probe"
) -> int:
    with open(log, "w") as out:
        code = server.run(module, args, out, timeout_s=60)
        out.write("written by the launcher after the task\n")
    return code


@pytest.mark.parametrize(
    "how, code",
    [("ok", 0), ("exit3", 3), ("raise", 1), ("sigterm", -15), ("sigint", -2)],
)
def test_a_forked_task_sees_writes_and_exits_as_a_fresh_interpreter(
    server, folder, tmp_path, how, code
):
    fresh = _fresh(folder, [how], tmp_path / "fresh.log")
    forked = _forked(server, [how], tmp_path / "forked.log")
    assert fresh == forked == code
    fresh_lines = (tmp_path / "fresh.log").read_text().splitlines()
    forked_lines = (tmp_path / "forked.log").read_text().splitlines()
    # Same first line: argv[0] is the module's file, __main__, the working
    # folder first on sys.path, empty standard input, nothing left by the
    # task before (module state, environment).
    assert forked_lines[0] == fresh_lines[0]
    assert '"touched": false' in forked_lines[0] and '"env": null' in forked_lines[0]
    assert "to stderr" in forked_lines
    assert ("atexit ran" in forked_lines) == ("atexit ran" in fresh_lines)
    if how == "raise":
        error = "ValueError: column fare: not a number"
        assert error in fresh_lines and error in forked_lines
    # The launcher's own line comes after the task's output, not over it.
    assert forked_lines[-1] == "written by the launcher after the task"


def test_a_task_runs_in_the_callers_folder_with_its_own_random_seed(server, folder, tmp_path):
    # The server started in `folder`; this task is asked for from elsewhere.
    elsewhere = folder / "elsewhere"
    os.chdir(elsewhere)
    try:
        assert _fresh(folder, ["ok"], tmp_path / "fresh.log", cwd=elsewhere) == 0
        assert _forked(server, ["ok"], tmp_path / "a.log") == 0
        assert _forked(server, ["ok"], tmp_path / "b.log") == 0
    finally:
        os.chdir(folder)
    fresh, a, b = (
        (tmp_path / name).read_text().splitlines() for name in ("fresh.log", "a.log", "b.log")
    )
    assert a[0] == fresh[0] and f'"cwd": "{elsewhere}"' in a[0]
    # numpy's global generator is seeded per process, as in a new interpreter.
    assert a[1].startswith("draw ") and a[1] != b[1]


def test_a_preloaded_module_runs_once_as_main(server, folder, tmp_path):
    assert _forked(server, [], tmp_path / "forked.log", module="preloaded_guarded") == 0
    assert _fresh(folder, [], tmp_path / "fresh.log", module="preloaded_guarded") == 0
    forked = (tmp_path / "forked.log").read_text().splitlines()
    assert forked[:-1] == (tmp_path / "fresh.log").read_text().splitlines()
    assert forked[:2] == ["imported as __main__", "main ran"]  # no runpy warning


def test_an_interrupted_wait_takes_the_task_down(server, folder, tmp_path):
    # Ctrl-C in the caller while a task runs: as with subprocess.run, the
    # task is killed, not left running.
    seen: list[int] = []

    def interrupt() -> None:
        while server.task_pid is None:
            time.sleep(0.05)
        seen.append(server.task_pid)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with open(tmp_path / "slow.log", "w") as out, pytest.raises(KeyboardInterrupt):
        server.run("preloaded_probe", ["sleep"], out, timeout_s=60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(seen[0], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"task {seen[0]} still running")
    assert _forked(server, ["ok"], tmp_path / "next.log") == 0


def test_a_task_past_its_timeout_is_killed_and_the_next_one_runs(server, folder, tmp_path):
    started = time.monotonic()
    with open(tmp_path / "slow.log", "w") as out, pytest.raises(subprocess.TimeoutExpired):
        server.run("preloaded_probe", ["sleep"], out, timeout_s=1)
    assert time.monotonic() - started < 30
    assert _forked(server, ["ok"], tmp_path / "next.log") == 0


def test_only_python_dash_m_commands_are_forked():
    assert module_command(["python", "-m", "pkg.mod", "--a", "1"]) == ("pkg.mod", ["--a", "1"])
    assert module_command([sys.executable, "-m", "pkg.mod"]) == ("pkg.mod", [])
    assert module_command(["python", "script.py"]) is None
    assert module_command(["python", "-c", "print(1)"]) is None
    assert module_command(["sh", "-m", "x"]) is None
    assert module_command(["python", "-m"]) is None


def test_a_server_that_cannot_import_says_what_failed(tmp_path):
    python = PreloadedPython(dict(os.environ), tmp_path / "server.log", modules=("no_such_lib",))
    try:
        with open(tmp_path / "task.log", "w") as out, pytest.raises(ServerFailed) as failed:
            python.run("json.tool", [], out, timeout_s=60)
    finally:
        python.close()
    assert "No module named 'no_such_lib'" in str(failed.value)
    assert str(tmp_path / "server.log") in str(failed.value)
