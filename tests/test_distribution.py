"""TF_CONFIG, the strategy factory, per-worker input sharding, mixed precision, the worker entry."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components.contracts import LABEL_KEY
from components.errors import ConfigError
from components.model_package import ModelContext
from components.training import worker
from components.training.cluster import ClusterConfigError, parse_tf_config, worker_cluster
from components.training.data import decoder, make_dataset, parse_transformed
from components.training.local_workers import LocalWorkers, WorkerExit, gpu_assignment
from components.training.settings import TrainerSettings
from components.training.strategy import Accelerator, plan_strategy
from components.training.strategy import Kind as StrategyKind
from components.training.workers import WorkerFailedError, error_line, terminate_raises
from components.workload import FeatureSpec, LabelSpec, Workload
from models.declarative.model import build_model
from tests.conftest import fn_args_under, write_raw_examples, write_transformed_examples

TWO = json.dumps(
    {"cluster": {"worker": ["w0:2222", "w1:2222"]}, "task": {"type": "worker", "index": 1}}
)


# -- TF_CONFIG ----------------------------------------------------------------------


def test_no_tf_config_means_no_cluster():
    assert parse_tf_config(None) is None
    assert parse_tf_config("  ") is None
    assert parse_tf_config('{"cluster": {}, "task": {}}') is None


def test_workers_only_worker_0_is_chief():
    cluster = parse_tf_config(TWO)
    assert cluster is not None
    assert cluster.num_workers == 2 and cluster.task_index == 1 and not cluster.is_chief
    assert worker_cluster(["w0:1", "w1:1"], 0).is_chief


def test_with_a_chief_only_the_chief_is_chief():
    text = json.dumps(
        {
            "cluster": {"chief": ["c:1"], "worker": ["w0:1", "w1:1"]},
            "task": {"type": "worker", "index": 0},
        }
    )
    cluster = parse_tf_config(text)
    assert cluster is not None and cluster.num_workers == 3 and not cluster.is_chief


def test_generated_tf_config_round_trips_per_index():
    hosts = ["a:2222", "b:2222", "c:2222"]
    for index in range(3):
        generated = worker_cluster(hosts, index)
        assert parse_tf_config(generated.to_json()) == generated
        assert json.loads(generated.to_json()) == {
            "cluster": {"worker": hosts},
            "task": {"type": "worker", "index": index},
        }


@pytest.mark.parametrize(
    "text, message",
    [
        ("{cluster: ", "TF_CONFIG is not valid JSON"),
        ("[1]", "must be a JSON object"),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["p:1"]}, '
            '"task": {"type": "worker", "index": 0}}',
            r"task type\(s\) \['ps'\]; data-parallel training supports only",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}',
            "task type 'evaluator' is not in the cluster",
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
            r"task index 2 is out of range for 'worker' \(2 address",
        ),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}', "integer"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        (
            '{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}',
            "non-empty list",
        ),
        ('{"cluster": {"worker": ["a:1"]}}', "task must be"),
        (
            '{"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}',
            "2 chiefs",
        ),
    ],
)
def test_malformed_tf_config_is_named(text, message):
    with pytest.raises(ClusterConfigError, match=message):
        parse_tf_config(text)


def test_worker_cluster_rejects_an_out_of_range_index():
    with pytest.raises(ClusterConfigError, match="worker index 2 is out of range for 2"):
        worker_cluster(["a:1", "b:1"], 2)


# -- the strategy factory -------------------------------------------------------------


def test_strategy_table():
    cluster = parse_tf_config(TWO)
    cases = [
        ((None, "", 0), (StrategyKind.ONE_DEVICE, Accelerator.CPU, "/cpu:0", "")),
        ((None, "", 1), (StrategyKind.ONE_DEVICE, Accelerator.GPU, "/gpu:0", "")),
        ((None, "", 4), (StrategyKind.MIRRORED, Accelerator.GPU, "", "")),
        ((cluster, "", 0), (StrategyKind.MULTI_WORKER, Accelerator.CPU, "", "RING")),
        ((cluster, "", 8), (StrategyKind.MULTI_WORKER, Accelerator.GPU, "", "NCCL")),
        ((None, "local", 0), (StrategyKind.TPU, Accelerator.TPU, "", "")),
    ]
    for args, (kind, accelerator, device, collectives) in cases:
        plan = plan_strategy(*args)
        assert (plan.kind, plan.accelerator, plan.device, plan.collectives) == (
            kind,
            accelerator,
            device,
            collectives,
        ), args
    assert plan_strategy(None, "my-tpu", 0).tpu == "my-tpu"


def test_mixed_precision_policy_follows_the_accelerator():
    assert plan_strategy(None, "", 1).mixed_precision_policy == "mixed_float16"
    assert plan_strategy(None, "local", 0).mixed_precision_policy == "mixed_bfloat16"
    assert plan_strategy(None, "", 0).mixed_precision_policy == "mixed_bfloat16"


def test_a_tpu_with_a_multi_worker_cluster_is_refused():
    with pytest.raises(ValueError, match="a TPU slice trains as one worker"):
        plan_strategy(parse_tf_config(TWO), "local", 0)


# -- input sharding -------------------------------------------------------------------


def _rows(n: int) -> list[dict]:
    return [{"id_xf": float(i), "tokens_xf": [i, 0, 0], LABEL_KEY: i % 2} for i in range(n)]


SPEC = {
    "id_xf": tf.io.FixedLenFeature([], tf.float32),
    "tokens_xf": tf.io.FixedLenFeature([3], tf.int64),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}


def _ids(dataset: tf.data.Dataset, batches: int) -> list[int]:
    return [
        int(v) for features, _ in dataset.take(batches) for v in features["id_xf"].numpy().ravel()
    ]


def test_scalars_become_columns_and_vectors_keep_their_width(tmp_path):
    write_transformed_examples(_rows(4), str(tmp_path / "part-0.gz"))
    features, label = next(
        iter(make_dataset([str(tmp_path / "*.gz")], parse_transformed(SPEC), 4, shuffle=False))
    )
    assert features["id_xf"].shape == (4, 1) and features["tokens_xf"].shape == (4, 3)
    assert label.shape == (4, 1)


@pytest.mark.parametrize("files", [1, 4])
def test_shards_partition_the_data(tmp_path, files):
    # 40 rows over `files` files; 2 shards must together see each row exactly once.
    per_file = 40 // files
    for f in range(files):
        write_transformed_examples(
            _rows(40)[f * per_file : (f + 1) * per_file], str(tmp_path / f"part-{f}.gz")
        )
    pattern = [str(tmp_path / "part-*.gz")]
    seen = []
    for index in range(2):
        dataset = make_dataset(
            pattern,
            parse_transformed(SPEC),
            4,
            shuffle=True,
            seed=7,
            num_shards=2,
            shard_index=index,
        )
        assert (
            dataset.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.OFF
        )
        seen.append(_ids(dataset, 5))  # 5 batches of 4 = one pass over 20 rows
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(40))


def test_raw_examples_through_the_transform_graph_match_the_transformed_ones(
    tmp_path, transformed, taxi_rows
):
    # trainer.examples: raw against transformed, on the same 64 rows: the
    # transform graph run on each batch gives what Transform wrote out.
    import tensorflow_transform as tft

    transform_dir, rows = transformed
    tft_output = tft.TFTransformOutput(transform_dir)
    write_raw_examples(taxi_rows[:64], str(tmp_path / "raw.gz"))
    write_transformed_examples(rows[:64], str(tmp_path / "transformed.gz"))
    batches = {
        kind: next(
            iter(make_dataset([str(tmp_path / f"{kind}.gz")], decoder(tft_output, kind), 64, False))
        )
        for kind in ("raw", "transformed")
    }
    (raw_features, raw_label), (features, label) = batches["raw"], batches["transformed"]
    assert raw_features.keys() == features.keys() and len(features) > 10
    for name, values in features.items():
        assert raw_features[name].dtype == values.dtype, name
        assert raw_features[name].shape == values.shape, name
        np.testing.assert_allclose(raw_features[name].numpy(), values.numpy(), rtol=1e-6)
    assert raw_label.numpy().tolist() == label.numpy().tolist()
    assert 0 < label.numpy().sum() < 64


def test_an_unknown_trainer_examples_kind_is_named(transformed):
    import tensorflow_transform as tft

    with pytest.raises(ValueError, match=r"trainer\.examples must be raw or transformed"):
        decoder(tft.TFTransformOutput(transformed[0]), "parquet")


def test_shard_index_out_of_range(tmp_path):
    with pytest.raises(ValueError, match="shard_index 2 out of range for 2"):
        make_dataset(["x"], parse_transformed(SPEC), 4, shuffle=False, num_shards=2, shard_index=2)


# -- mixed precision and XLA ------------------------------------------------------------


class _Vocabularies:
    def vocabulary_size_by_name(self, name: str) -> int:
        return 5


def test_mixed_bfloat16_model_trains_with_float32_output():
    workload = Workload(
        label=LabelSpec(column="y"),
        features={
            "x": FeatureSpec(kind="numeric"),
            "c": FeatureSpec(kind="categorical"),
            "t": FeatureSpec(kind="text", max_tokens=3),
        },
    )
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(
            ModelContext(
                workload=workload,
                trainer=TrainerSettings(hidden_units=(4,), embedding_dim=2, jit_compile=True),
                tft_output=_Vocabularies(),
                num_classes=2,
                steps_per_execution=1,
                jit_compile=True,
            )
        )
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    assert model.get_layer("deep_0").compute_dtype == "bfloat16"
    assert model.get_layer("deep_0").dtype == "float32"  # weights stay float32
    batch = {
        "x_xf": tf.random.normal([8, 1]),
        "c_xf": tf.ones([8, 1], tf.int64),
        "t_xf": tf.constant([[2, 1, 0]] * 8, tf.int64),
    }
    labels = tf.constant(np.arange(8) % 2, shape=[8, 1])
    history = model.fit(batch, labels, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model(batch).dtype == tf.float32


# -- the worker entry and launch plumbing ----------------------------------------------------


def test_fn_args_round_trip():
    fn_args = fn_args_under("gs://bucket/root")
    loaded = worker.load_fn_args(worker.dump_fn_args(fn_args))
    for name in worker.FN_ARGS_FIELDS:
        assert getattr(loaded, name) == getattr(fn_args, name)
    with pytest.raises(ValueError, match="unknown fields \\['data_accessor'\\]"):
        worker.load_fn_args(json.dumps({"data_accessor": 1}))


SEEN: dict[str, str] = {}


def record_tf_config(fn_args) -> None:
    SEEN["tf_config"] = os.environ["TF_CONFIG"]
    SEEN["steps"] = fn_args.train_steps


def test_worker_derives_tf_config_from_its_completion_index(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    path = tmp_path / "fn_args.json"
    path.write_text(worker.dump_fn_args(tfx.components.FnArgs(train_steps=7)))
    hosts = "job-0.job.ns.svc:2222,job-1.job.ns.svc:2222"
    assert (
        worker.main(
            ["--fn-args", str(path), "--run-fn", f"{__name__}.record_tf_config", "--hosts", hosts]
        )
        == 0
    )
    assert SEEN["steps"] == 7
    cluster = parse_tf_config(SEEN["tf_config"])
    assert cluster is not None and cluster.task_index == 1
    assert cluster.cluster["worker"] == tuple(hosts.split(","))


def test_worker_without_an_index_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    with pytest.raises(SystemExit, match=r"needs this worker's index in \$JOB_COMPLETION_INDEX"):
        worker.main(["--fn-args", "x", "--run-fn", "a.b", "--hosts", "a:1,b:1"])


def test_run_fn_path_must_import():
    with pytest.raises(ValueError, match="has no function 'nope'"):
        worker.import_run_fn("components.training.run.nope")
    with pytest.raises(ValueError, match="not a dotted import path"):
        worker.import_run_fn("run_fn")


def test_worker_exit_describes_how_and_why():
    killed = WorkerExit(1, -signal.SIGKILL, ("INFO trainer epoch 1: auc 0.5",))
    assert killed.how == "was killed by SIGKILL"
    crashed = WorkerExit(
        0,
        1,
        (
            "Traceback (most recent call last):",
            '  File "x.py", line 1',
            "ValueError: no transformed example files match ['x']",
            "INFO shutting down",
        ),
    )
    assert crashed.how == "exited with code 1"
    assert crashed.error == "ValueError: no transformed example files match ['x']"
    assert error_line(()) == "(no output)"


def test_trainer_settings_decide_where_training_runs():
    assert not TrainerSettings().launches_workers
    assert TrainerSettings(workers=2).launches_workers
    assert not TrainerSettings(launcher="local", tpu="local").launches_workers
    assert TrainerSettings(launcher="indexed_job", tpu="local").launches_workers
    with pytest.raises(ConfigError, match=r"trainer.launcher must be one of .* got 'mpi'"):
        TrainerSettings.from_plain(json.dumps({"launcher": "mpi"}), 10, 2)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) trainer.kubernetes.gpu"):
        TrainerSettings.from_plain(json.dumps({"kubernetes": {"gpu": 1}}), 10, 2)


def test_trainer_settings_travel_without_their_step_counts():
    settings = TrainerSettings(workers=2, hidden_units=(3, 2), train_steps=77)
    plain = json.loads(settings.to_json())
    assert "train_steps" not in plain and "eval_steps" not in plain
    assert TrainerSettings.from_plain(plain, 77, 100) == settings


def test_xla_is_off_for_cpu_collectives_only():
    cluster = parse_tf_config(TWO)
    assert not plan_strategy(cluster, "", 0).supports_xla
    assert plan_strategy(cluster, "", 2).supports_xla
    assert plan_strategy(None, "", 0).supports_xla


def test_local_workers_get_their_own_gpus():
    assert gpu_assignment(2, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == ["0,1", "2,3"]
    assert gpu_assignment(2, {"CUDA_VISIBLE_DEVICES": "3,5"}) == ["3", "5"]
    assert gpu_assignment(3, {"CUDA_VISIBLE_DEVICES": "0,1"}) == ["", "", ""]
    assert gpu_assignment(2, {"CUDA_VISIBLE_DEVICES": ""}) is None
    assert gpu_assignment(2, {}) is None  # this machine has no GPU


def test_sigterm_becomes_an_error_so_launchers_clean_up():
    with pytest.raises(WorkerFailedError, match="terminated \\(SIGTERM\\)"), terminate_raises():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# Worker 0 catches SIGTERM and carries on, as TensorFlow's coordination agent
# makes a real worker do; worker 1 fails once worker 0 is in that state.
_PEER_THAT_CATCHES_SIGTERM = """
import json, os, signal, sys, time
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
scratch = sys.argv[1]
if index == 0:
    signal.signal(signal.SIGTERM, lambda *_: open(os.path.join(scratch, "sigterm"), "w").close())
    open(os.path.join(scratch, "ready"), "w").close()
    time.sleep(120)
    sys.exit(0)
while not os.path.exists(os.path.join(scratch, "ready")):
    time.sleep(0.05)
print("ValueError: worker 1 gives up")
sys.exit(3)
"""


def test_a_failed_attempts_peers_are_killed_not_asked_to_stop(tmp_path):
    workers = LocalWorkers(workers=2, max_restarts=0, log=lambda line: None)
    workers.attempt = 1
    failure = workers._run_attempt(
        [sys.executable, "-c", _PEER_THAT_CATCHES_SIGTERM, str(tmp_path)]
    )
    assert failure is not None and failure.index == 1 and failure.returncode == 3
    assert "worker 1 gives up" in failure.error
    assert workers.processes[0].returncode == -signal.SIGKILL
    # A SIGTERM would only have been caught: the worker was never sent one.
    assert not (tmp_path / "sigterm").exists()


def test_a_gpu_worker_without_gpus_says_the_image_lacks_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINER_EXPECTED_GPUS", "1")
    path = tmp_path / "fn_args.json"
    path.write_text(worker.dump_fn_args(tfx.components.FnArgs(train_steps=7)))
    with pytest.raises(SystemExit, match="requests 1 GPU\\(s\\) but TensorFlow sees 0"):
        worker.main(["--fn-args", str(path), "--run-fn", f"{__name__}.record_tf_config"])
