"""Real multi-worker training on localhost: MultiWorkerMirroredStrategy over gRPC.

Nothing is faked here: worker processes, TF_CONFIG, the collectives, the
BackupAndRestore checkpoints and the pipeline around them are all real.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.training.custom_config import trainer_custom_config as custom_config
from components.training.local_workers import LocalWorkers
from components.training.session import backup_dir
from components.training.settings import TrainerSettings
from components.training.workers import WorkerFailedError
from pipeline import definition
from pipeline.config import PipelineConfig, load_config
from pipeline.runners import local
from tests.conftest import (
    csv_columns,
    read_csv_rows,
    taxi_config,
    write_csv,
    write_raw_examples,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE_ROWS = 3000
STEPS = 300
GLOBAL_BATCH = 64


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multi_worker")
    write_csv(root / "data" / "data.csv", read_csv_rows()[:SAMPLE_ROWS], csv_columns())
    return root


def _config(workspace: Path, *overrides: str) -> PipelineConfig:
    return load_config(
        None,
        [
            f"data.root={workspace / 'data'}",
            f"run.pipeline_root={workspace / 'pipeline_root'}",
            f"metadata.sqlite_path={workspace / 'metadata.sqlite'}",
            f"registry.uri={workspace / 'registry'}",
            f"trainer.train_steps={STEPS}",
            "trainer.eval_steps=5",
            "evaluator.min_value=0.75",
            # Judge each run on its own: this compares two trainings, not releases.
            "evaluator.max_auc_drop=1.0",
            *overrides,
        ],
    )


def _trainer_outputs(config: PipelineConfig) -> tuple[str, str]:
    """(model, model_run) URIs of the newest Trainer execution."""
    from ml_metadata import metadata_store

    from components.mlmd import connection_config, latest_execution, output_artifacts
    from pipeline.config import to_dict

    store = metadata_store.MetadataStore(connection_config(to_dict(config)["metadata"]))
    execution = latest_execution(store, config.run.pipeline_name, definition.TRAINER)
    assert execution is not None
    assert execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
    outputs = output_artifacts(store, execution.id)
    return outputs["model"][0].uri, outputs["model_run"][0].uri


def _tree(folder: str) -> set[str]:
    """Relative paths under `folder`, with event file names reduced to their kind."""
    paths = set()
    for dirpath, _, files in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        paths.add(rel)
        for name in files:
            paths.add(os.path.join(rel, "events" if "tfevents" in name else name))
    return paths


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def two_workers(workspace: Path):
    config = _config(workspace, "trainer.workers=2", f"trainer.batch_size={GLOBAL_BATCH // 2}")
    # The launcher logs each worker's lines; keep them to check what ran.
    handler, root = _Lines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        summary = local.run(config)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return config, summary, _trainer_outputs(config), handler.lines


@pytest.fixture(scope="module")
def one_worker(workspace: Path, two_workers):
    config = _config(workspace, "trainer.workers=1", f"trainer.batch_size={GLOBAL_BATCH}")
    return config, local.run(config), _trainer_outputs(config)


def test_two_workers_train_a_blessed_pushed_model(two_workers):
    _, summary, _, lines = two_workers
    assert summary.blessed is True, summary.reasons
    assert summary.pushed_uri and tf.saved_model.contains_saved_model(summary.pushed_uri)
    text = "\n".join(lines)
    for index in (0, 1):
        assert (
            f"[worker {index}] INFO trainer strategy: MultiWorkerMirroredStrategy on CPU "
            "(2 replica(s) in sync), RING collectives" in text
        )
        assert f"[worker {index}] INFO trainer starts at step 0" in text


def test_auc_matches_one_worker_with_the_same_global_batch_and_steps(two_workers, one_worker):
    _, two, _, _ = two_workers
    _, one, _ = one_worker
    assert one.blessed is True, one.reasons
    assert abs(two.metrics["auc"] - one.metrics["auc"]) <= 0.02, (two.metrics, one.metrics)


def test_artifacts_are_those_of_a_single_worker_run(two_workers, one_worker):
    _, _, (two_model, two_run), _ = two_workers
    _, _, (one_model, one_run) = one_worker
    assert _tree(two_model) == _tree(one_model)
    assert _tree(two_run) == _tree(one_run)
    # Only the chief wrote summaries (one train and one validation event file)
    # and the backup is gone.
    events = [p for p in _tree(two_run) if p.endswith("events")]
    assert sorted(events) == ["train/events", "validation/events"]
    assert not os.path.exists(backup_dir(two_run))


# -- fault tolerance, with the launcher on tiny data -------------------------------------


def _fn_args(tmp_path: Path, transformed, rows, steps: int) -> tfx.components.FnArgs:
    """Raw examples of `rows`, read through the transform graph (trainer.examples: raw)."""
    transform_dir, _ = transformed
    data = str(tmp_path / "data-00000-of-00001.gz")
    write_raw_examples(rows, data)
    return tfx.components.FnArgs(
        train_files=[data],
        eval_files=[data],
        transform_output=transform_dir,
        serving_model_dir=str(tmp_path / "model" / "Format-Serving"),
        model_run_dir=str(tmp_path / "model_run"),
        train_steps=steps,
        eval_steps=2,
        custom_config=custom_config(
            taxi_config().model, TrainerSettings(batch_size=8, hidden_units=(8,), embedding_dim=2)
        ),
    )


def test_a_killed_worker_restarts_and_resumes_from_its_checkpoint(tmp_path, transformed, taxi_rows):
    # 10 epochs of 20 steps; a checkpoint is written after each epoch, and the
    # nine epochs left after the first one outlast the kill by seconds.
    epoch_steps = 20
    fn_args = _fn_args(tmp_path, transformed, taxi_rows, steps=10 * epoch_steps)
    lines: list[str] = []
    workers = LocalWorkers(workers=2, max_restarts=1, log=lines.append)
    errors: list[BaseException] = []

    def train() -> None:
        try:
            workers.run(fn_args, "components.training.run.run_fn")
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=train)
    thread.start()
    checkpoint = os.path.join(backup_dir(fn_args.model_run_dir), "chief", "checkpoint")
    deadline = time.monotonic() + 300
    while not os.path.exists(checkpoint):
        assert thread.is_alive() and time.monotonic() < deadline, (errors, lines[-20:])
        time.sleep(0.05)
    assert workers.attempt == 1
    victim = workers.processes[1]
    os.kill(victim.pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive() and not errors, (errors, lines[-30:])

    assert workers.attempt == 2
    restarts = [line for line in lines if "restarting all 2" in line]
    assert any("worker 1 was killed by SIGKILL" in line for line in restarts), restarts
    starts = [
        int(m.group(1)) for line in lines if (m := re.search(r"trainer starts at step (\d+)", line))
    ]
    # Attempt 1: both workers from 0. Attempt 2: both resume past a checkpoint.
    assert starts[:2] == [0, 0] and len(starts) == 4, lines
    assert min(starts[2:]) > 0 and starts[2] == starts[3] and starts[2] % epoch_steps == 0, starts
    assert tf.saved_model.contains_saved_model(fn_args.serving_model_dir)
    # Keras deleted the checkpoint once training completed.
    assert not glob.glob(os.path.join(backup_dir(fn_args.model_run_dir), "*", "*"))


def test_with_restarts_exhausted_the_trainer_fails_with_the_workers_error(
    tmp_path, transformed, taxi_rows
):
    fn_args = _fn_args(tmp_path, transformed, taxi_rows, steps=10)
    fn_args.train_files = [str(tmp_path / "missing" / "*.gz")]
    lines: list[str] = []
    workers = LocalWorkers(workers=2, max_restarts=1, log=lines.append)
    with pytest.raises(WorkerFailedError) as e:
        workers.run(fn_args, "components.training.run.run_fn")
    message = str(e.value)
    assert re.search(r"worker [01] exited with code 1 on attempt 2 of 2", message), message
    assert "trainer.max_restarts=1" in message
    assert "ValueError: no example files match" in message
    assert workers.attempt == 2
    assert not os.path.exists(fn_args.serving_model_dir)


class _Exited:
    def __init__(self, code: int | None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


def test_a_worker_killed_by_a_signal_is_named_before_the_peers_it_took_down():
    workers = LocalWorkers(workers=3, max_restarts=0, log=lambda line: None)
    workers.processes = [_Exited(1), _Exited(-9), _Exited(None)]  # type: ignore[list-item]
    assert workers._wait() == 1
    workers.processes = [_Exited(None), _Exited(2), _Exited(1)]  # type: ignore[list-item]
    assert workers._wait() == 1
