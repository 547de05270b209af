"""Bad data and interrupted runs, through whole pipeline runs: named, and nothing poisoned.

Each case writes its data (2,000 taxi rows, 50 training steps), runs
`python -m pipeline run` (in this process, or as a subprocess where a
signal or a second simultaneous run is the point), and checks the one line
a user reads, what was trained and pushed, and what ML Metadata says.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.registry.store import Registry
from pipeline import definition
from pipeline.__main__ import main
from tests.conftest import REPO_ROOT, csv_columns, read_csv_rows, store_args, write_csv

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROWS = 2000
STEPS = ["--set", "trainer.train_steps=50", "--set", "trainer.eval_steps=5"]


def _call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _run(root: Path, data: Path, *extra: str) -> tuple[int, str, str]:
    return _call("run", "--set", f"data.root={data}", *store_args(root), *STEPS, *extra)


def _versions(root: Path) -> list[int]:
    registry = Registry(str(root / "registry"), "taxi")
    return [v.number for v in registry.complete_versions()]


def _lineage_runs(root: Path) -> list[dict]:
    code, out, err = _call("lineage", "runs", "--json", *store_args(root))
    assert code == 0, err
    return json.loads(out)["runs"]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return read_csv_rows(limit=ROWS)


def _write(folder: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    write_csv(folder / "data.csv", rows, columns or csv_columns())
    return folder


# -- values that would poison the statistics ---------------------------------------------------


def test_nan_and_inf_stop_at_the_gate_named_and_counted(tmp_path, rows):
    bad = [dict(r) for r in rows]
    for i, cell in ((3, "NaN"), (40, "nan"), (77, "NaN")):
        bad[i]["fare"] = cell
    bad[5]["trip_miles"] = "inf"
    for i in (8, 9, 10):
        bad[i]["pickup_latitude"] = "nan"
    data = _write(tmp_path / "data", bad)
    # A README beside the data is not read: the run gets as far as the gate.
    (data / "README.md").write_text("# how this extract was made\n")
    code, _, err = _run(tmp_path, data)
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 1, err
    line = failed[0]
    assert line.startswith("FAILED at anomalies_gate")

    def counted(feature: str, kind: str) -> int:
        found = re.findall(rf"feature '{feature}': (\d+) {kind}", line)
        found += re.findall(rf"feature '{feature}': \d+ \w+ and (\d+) {kind}", line)
        return sum(int(n) for n in found)

    assert counted("fare", "NaN") == 3
    assert counted("trip_miles", "inf") == 1
    assert counted("pickup_latitude", "NaN") == 3
    assert not (tmp_path / "pipeline_root" / "transform").exists()
    assert _versions(tmp_path) == []


def _eval_rows(root: Path, data: Path) -> set[tuple[str, ...]]:
    """The rows (as their column values) that CsvExampleGen puts in the eval split."""
    import tensorflow as tf
    from tfx import v1 as tfx

    from pipeline import definition
    from pipeline.config import load_config
    from pipeline.runners.connection import local_connection_config

    config = load_config(None, [f"data.root={data}", *store_args(root)[1::2]])
    example_gen = definition.make_example_gen(config)
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="split-probe",
            pipeline_root=str(root / "probe"),
            components=[example_gen],
            metadata_connection_config=local_connection_config(config),
        )
    )
    (split,) = list((root / "probe").glob("example_gen/examples/*/Split-eval"))
    keys = set()
    for record in tf.data.TFRecordDataset([str(p) for p in split.iterdir()], "GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        keys.add(
            (
                str(feature["trip_start_timestamp"].int64_list.value[0]),
                str(round(feature["fare"].float_list.value[0], 2)),
            )
        )
    return keys


def test_an_eval_split_of_one_class_says_auc_is_undefined(tmp_path, rows):
    # Which rows land in eval is TFX's hash of each row; ask TFX, then keep
    # only the big tippers among them (the rows themselves are not changed,
    # so each stays in its split).
    everything = _write(tmp_path / "all", rows)
    in_eval = _eval_rows(tmp_path, everything)

    def big_tipper(r: dict[str, str]) -> bool:
        fare, tips = float(r["fare"] or 0), float(r["tips"] or 0)
        return fare > 0 and tips > 0.2 * fare

    def in_eval_split(r: dict[str, str]) -> bool:
        return (r["trip_start_timestamp"], str(round(float(r["fare"]), 2))) in in_eval

    kept = [r for r in rows if not in_eval_split(r) or big_tipper(r)]
    assert any(in_eval_split(r) for r in kept) and not all(big_tipper(r) for r in kept)
    data = _write(tmp_path / "data", kept)
    code, out, err = _run(tmp_path, data)
    assert code == 0, err
    verdict = next(line for line in out.splitlines() if "BLESSED" in line)
    assert verdict.startswith("NOT BLESSED: the eval split holds one class only (all ")
    assert "AUC is undefined" in verdict and "0.0000" not in verdict
    assert _versions(tmp_path) == []


def test_a_byte_that_is_not_utf8_is_named_by_file_and_line(tmp_path, rows):
    data = _write(tmp_path / "data", rows)
    path = data / "data.csv"
    lines = path.read_bytes().split(b"\n")
    lines[1500] = (
        lines[1500].replace(b"Cash", b"Ca\xe9sh", 1)
        if b"Cash" in lines[1500]
        else (lines[1500] + b"\xe9")
    )
    path.write_bytes(b"\n".join(lines))
    code, _, err = _run(tmp_path, data)
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert code == 1 and len(failed) == 1, err
    assert failed[0].startswith(f"FAILED at example_gen: {path}, line 1501, byte ")
    assert "is not UTF-8" in failed[0]
    assert _versions(tmp_path) == []


# -- runs that behave, and must keep doing so --------------------------------------------------


def test_reordered_columns_run_and_push(tmp_path, rows):
    columns = csv_columns()
    data = _write(tmp_path / "data", rows, list(reversed(columns)))
    code, out, err = _run(tmp_path, data)
    assert code == 0, err
    assert "pushed: " in out and _versions(tmp_path) == [1]


def _cli(root: Path, data: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pipeline", "run", "--set", f"data.root={data}"]
    return subprocess.Popen(
        [*command, *store_args(root), *STEPS],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a test session started in the background
        # (`cmd &` without job control) would pass SIGINT on as ignored.
        preexec_fn=_sigint_by_default,
    )


def _sigint_by_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(process: subprocess.Popen, prefix: str, timeout: float = 600) -> list[str]:
    """Lines of the run's progress up to and including the one that starts with `prefix`."""
    seen = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if re.match(rf"^\[\s*\d+/\d+\] {prefix}\b", line):
            return seen
    raise AssertionError(f"no progress line for {prefix}: {seen}")


def test_two_runs_at_once_push_two_versions_and_each_reports_its_own(tmp_path, rows):
    data = _write(tmp_path / "data", rows)
    other = _write(tmp_path / "other", rows[: ROWS // 2])  # different data, different model
    first, second = _cli(tmp_path, data), _cli(tmp_path, other)
    outs = []
    for process in (first, second):
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err
        outs.append(out)
    assert sorted(_versions(tmp_path)) == [1, 2]
    registry = Registry(str(tmp_path / "registry"), "taxi")
    logs = set()
    for out in outs:
        pushed = re.search(r"^pushed: (.+)/(\d+)$", out, re.M)
        assert pushed, out
        manifest = registry.manifest(int(pushed.group(2)))
        auc = re.search(r"auc (\d\.\d{4})", out)
        assert auc and float(auc.group(1)) == pytest.approx(
            manifest["evaluation"]["metrics"]["auc"], abs=1e-4
        )
        progress = [line for line in out.splitlines() if line.startswith("[")]
        assert len(progress) == len(definition.NODE_IDS), out
        assert not any("running" in line for line in progress), out
        logs.add(re.search(r"full log: (\S+)", out).group(1))
    assert len(logs) == 2, "each run writes its own log file"


def test_ctrl_c_during_transform_is_one_line_and_the_rerun_resumes(tmp_path, rows):
    data = _write(tmp_path / "data", rows)
    process = _cli(tmp_path, data)
    _wait_for(process, "anomalies_gate")
    time.sleep(3)  # inside Transform
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at transform; rerun resumes"), err
    (run,) = _lineage_runs(tmp_path)
    assert run["status"] == "INTERRUPTED" and run["unfinished_nodes"] == ["transform"]
    code, out, err = _run(tmp_path, data)
    assert code == 0, err
    assert re.search(r"example_gen\s+cached", out), out
    assert _versions(tmp_path) == [1]


def test_a_runner_killed_during_training_shows_as_abandoned_and_the_rerun_resumes(tmp_path, rows):
    data = _write(tmp_path / "data", rows)
    process = _cli(tmp_path, data)
    _wait_for(process, "transform")
    time.sleep(2)  # inside the Trainer
    process.kill()
    process.communicate(timeout=60)
    (run,) = _lineage_runs(tmp_path)
    assert run["status"] == "ABANDONED" and run["unfinished_nodes"] == ["trainer"]
    assert run["runner"]["pid"] == process.pid
    code, out, err = _run(tmp_path, data)
    assert code == 0, err
    assert re.search(r"transform\s+cached", out), out
    assert _versions(tmp_path) == [1]
    code, text, _ = _call("lineage", "runs", *store_args(tmp_path))
    assert "ABANDONED at trainer" in text


def test_a_bad_set_value_names_set(tmp_path):
    code, _, err = _call("run", "--set", "trainer.train_steps=abc", *store_args(tmp_path))
    assert code == 2
    assert err.strip() == (
        "error: --set trainer.train_steps=abc: trainer.train_steps: expected an integer, "
        "got 'abc' (str)"
    )
