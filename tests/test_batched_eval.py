"""batched: TFMA's evaluation of a binary label, a batch at a time, equal to TFMA's own.

Three levels: the per-example conversion and bucketing against TFMA's
functions; the sums, derivations and diffs against TFMA's real evaluator
(`MetricsPlotsAndValidationsEvaluator` in Beam, after its slice-key
extractor) on the same labels and predictions; and the whole executor
against TFX's Evaluator executor on real models and tf.Examples, file by
file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from apache_beam.testing import util as beam_testing
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import calibration_histogram, metric_types, metric_util
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts
from tfx_bsl.coders import example_coder

from components import contracts
from components.evaluator import batched
from components.evaluator import executor as evaluator_executor
from components.evaluator.eval_config import EvalSpec, make_eval_config
from tests.conftest import read_csv_rows, train_on_raw, write_raw_examples

SLICE_BY = ("trip_start_hour", "payment_type")
IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _config(has_baseline: bool, slice_by=("hour", "company"), task="binary", metric="auc"):
    config = make_eval_config(EvalSpec(task, metric, slice_by), 0.6, 0.01)
    return tfma.utils.update_eval_config_with_defaults(
        config, has_baseline=has_baseline, rubber_stamp=True
    )


# -- the per-example conversion ------------------------------------------------


def _tfma_tuples(label, prediction) -> list[tuple[float, float, float]]:
    inputs = metric_types.StandardMetricInputs(
        labels=np.array([label]), predictions=np.array([prediction])
    )
    return [
        (float(lab), float(pred), float(weight))
        for lab, pred, weight in metric_util.to_label_prediction_example_weight(
            inputs, fractional_labels=True, flatten=True
        )
    ]


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64])
def test_tuples_are_tfmas_with_fractional_labels(dtype) -> None:
    rng = np.random.default_rng(3)
    if dtype is np.int64:
        labels = rng.integers(0, 2, 200).astype(dtype)
    else:
        labels = np.concatenate([rng.random(197), [0.0, 1.0, 0.5]]).astype(dtype)
    predictions = rng.random(200).astype(np.float32)
    negative, positive = batched.binary_tuples(labels, predictions, "label", "prediction")
    for i in range(len(labels)):
        ours = [(0.0, w) for w in [negative[i]] if w != 0] + [(1.0, w) for w in [positive[i]] if w]
        theirs = [(lab, w) for lab, _, w in _tfma_tuples(labels[i], predictions[i])]
        # The same weights to the bit, in TFMA's dtype arithmetic.
        assert ours == theirs, (i, labels[i])


def test_bucket_index_is_tfmas_on_every_edge() -> None:
    combiner = calibration_histogram.calibration_histogram()[0].combiner
    edges = np.arange(0, 10001) / 10000
    predictions = np.concatenate(
        [
            np.random.default_rng(5).random(5000),
            edges,
            np.nextafter(edges, -np.inf),
            np.nextafter(edges, np.inf),
            [-0.5, 1.5, -np.inf, np.inf, 0.5, 0.50001],
        ]
    )
    for dtype in (np.float32, np.float64):
        values = predictions.astype(dtype)
        ours = batched.bucket_index(values, 0.0, 1.0, 10000)
        theirs = [combiner._bucket_index(float(v)) for v in values]
        assert ours.tolist() == theirs


def test_labels_outside_0_1_and_nan_predictions_are_named() -> None:
    with pytest.raises(ValueError, match=r"label 'big_tipper' must be within \[0, 1\].*2"):
        batched.binary_tuples(np.array([0, 2]), np.array([0.1, 0.2]), "big_tipper", "probability")
    with pytest.raises(ValueError, match="prediction 'probability' is NaN"):
        batched.binary_tuples(np.array([0, 1]), np.array([0.1, np.nan]), "y", "probability")


# -- the sums, derivations and diffs, against TFMA's evaluator ------------------


def _rows(n: int, seed: int) -> list[dict]:
    """Slice columns with missing values, empty lists and a multi-valued bytes column."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row: dict = {}
        if i % 17:
            row["hour"] = [int(rng.integers(0, 5))] if i % 23 else []
        if i % 5 == 0:
            row["company"] = [b"a", b"b"] if i % 2 else [b"b"]
        elif i % 7:
            row["company"] = [b"c"]
        rows.append(row)
    return rows


def _example(row: dict) -> bytes:
    feature = {}
    for name, values in row.items():
        if name == "hour":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _outputs(n: int, seed: int, fractional: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n).astype(np.float32) if fractional else rng.integers(0, 2, n)
    predictions = rng.random(n).astype(np.float32)
    # The histogram's edges, the 0.5 threshold and outside [0, 1].
    predictions[:6] = [0.0, 1.0, -0.5, 1.5, 0.5, np.float32(0.50001)]
    return labels, predictions


def _tfma_extract(row: dict, outputs: dict, i: int) -> dict:
    features = {
        name: np.array(values, dtype=np.int64 if name == "hour" else object)
        for name, values in row.items()
    }
    labels = {name: np.array([o[0][i]]) for name, o in outputs.items()}
    predictions = {name: {"probability": np.array([o[1][i]])} for name, o in outputs.items()}
    if list(outputs) == [""]:
        return {
            constants.FEATURES_KEY: features,
            constants.LABELS_KEY: labels[""],
            constants.PREDICTIONS_KEY: predictions[""],
        }
    return {
        constants.FEATURES_KEY: features,
        constants.LABELS_KEY: labels,
        constants.PREDICTIONS_KEY: predictions,
    }


def _comparable(results) -> dict:
    return {
        slice_key: {key: value for key, value in metrics.items()}
        for slice_key, metrics in results
        if metrics
    }


@pytest.mark.parametrize(
    "has_baseline, fractional",
    [(False, False), (True, False), (True, True)],
)
def test_sums_derivations_and_diffs_are_tfmas_evaluator(has_baseline, fractional) -> None:
    n = 1500
    config = _config(has_baseline)
    names = [spec.name for spec in config.model_specs]
    rows = _rows(n, 11)
    outputs = {name: _outputs(n, 20 + k, fractional) for k, name in enumerate(names)}

    accumulation = batched.Accumulation(batched.plan(config))
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    for start in range(0, n, 600):  # three batches, the last one short
        stop = min(start + 600, n)
        record_batch = decoder.DecodeBatch([_example(r) for r in rows[start:stop]])
        accumulation.add(
            record_batch,
            {name: (o[0][start:stop], o[1][start:stop]) for name, o in outputs.items()},
        )
    ours = _comparable(accumulation.results())
    assert () in ours and (("company", "a"),) in ours and (("hour", 0),) in ours

    def matches(theirs) -> None:
        theirs = _comparable(theirs)
        assert ours.keys() == theirs.keys()
        for slice_key, metrics in theirs.items():
            assert ours[slice_key].keys() == metrics.keys(), slice_key
            for key, value in metrics.items():
                if isinstance(value, float) and math.isnan(value):
                    assert math.isnan(ours[slice_key][key]), (slice_key, key)
                elif fractional:
                    # Sums of fractional weights, added in another order.
                    assert math.isclose(ours[slice_key][key], value, rel_tol=1e-9, abs_tol=1e-12)
                else:
                    assert ours[slice_key][key] == value, (slice_key, key)

    extracts = [_tfma_extract(row, outputs, i) for i, row in enumerate(rows)]
    with beam.Pipeline(argv=IN_MEMORY) as pipeline:
        evaluation = (
            pipeline
            | beam.Create(extracts, reshuffle=False)
            | "Slices" >> tfma.extractors.SliceKeyExtractor(eval_config=config).ptransform
            | "Evaluate"
            >> tfma.evaluators.MetricsPlotsAndValidationsEvaluator(eval_config=config).ptransform
        )
        beam_testing.assert_that(evaluation[constants.METRICS_KEY], matches)


def test_a_slice_of_one_class_reads_as_tfma_reads_it() -> None:
    config = _config(False, slice_by=("hour",))
    accumulation = batched.Accumulation(batched.plan(config))
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    rows = [{"hour": [h]} for h in (1, 1, 2, 2)]
    labels, predictions = np.array([1, 1, 0, 1]), np.array([0.9, 0.2, 0.3, 0.6], np.float32)
    accumulation.add(decoder.DecodeBatch([_example(r) for r in rows]), {"": (labels, predictions)})
    by_slice = {k: {m.name: v for m, v in ms.items()} for k, ms in accumulation.results()}
    assert by_slice[(("hour", 1),)]["mean_label"] == 1.0
    assert by_slice[(("hour", 1),)]["example_count"] == 2.0
    assert by_slice[()]["binary_accuracy"] == 0.75


# -- what only TFMA computes ----------------------------------------------------


def test_a_multiclass_evaluation_is_left_to_tfma() -> None:
    with pytest.raises(batched.Unsupported, match=r"MultiClass|combiner"):
        batched.plan(_config(False, task="multiclass", metric="accuracy"))


def test_confidence_intervals_and_cross_slices_are_left_to_tfma() -> None:
    config = _config(False)
    config.options.compute_confidence_intervals.value = True
    with pytest.raises(batched.Unsupported, match="confidence intervals"):
        batched.plan(config)
    config = _config(False)
    config.cross_slicing_specs.add().baseline_spec.CopyFrom(tfma.SlicingSpec())
    with pytest.raises(batched.Unsupported, match="cross slicing"):
        batched.plan(config)


def test_example_weights_are_left_to_tfma() -> None:
    config = _config(False)
    config.model_specs[0].example_weight_key = "w"
    with pytest.raises(batched.Unsupported, match="example weights"):
        batched.plan(config)


# -- the executor, against TFX's Evaluator executor -----------------------------


@pytest.fixture(scope="module")
def eval_inputs(
    tmp_path_factory: pytest.TempPathFactory, trained_model: str, transformed, taxi_rows
):
    """Raw eval tf.Examples (real taxi rows) and two real models: candidate and baseline."""
    from components.training.settings import TrainerSettings

    root = tmp_path_factory.mktemp("batched_eval")
    split = root / "examples" / "Split-eval"
    split.mkdir(parents=True)
    write_raw_examples(
        read_csv_rows(limit=1200)[200:], str(split / "data_tfrecord-00000-of-00001.gz")
    )
    candidate = root / "models" / "candidate"
    shutil.copytree(trained_model, candidate / "Format-Serving")
    # A second, different model: 5 steps of a smaller network.
    baseline = root / "models" / "baseline"
    train_on_raw(
        taxi_rows,
        transformed[0],
        root,
        str(baseline / "Format-Serving"),
        train_steps=5,
        eval_steps=1,
        settings=TrainerSettings(batch_size=16, hidden_units=(4,), embedding_dim=2),
    )
    return root, candidate, baseline


def _run_executor(
    root: Path, out: Path, model: Path, baseline: Path | None, batched_calls: list | None, **spec
):
    """Runs our Evaluator executor; with `batched_calls` None, as TFX's alone (TFMA)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    candidate = standard_artifacts.Model()
    candidate.uri, candidate.id = str(model), 11
    inputs = {"examples": [examples], "model": [candidate]}
    if baseline is not None:
        reference = standard_artifacts.Model()
        reference.uri = str(out / "reference")
        reference.set_int_custom_property(contracts.BASELINE_FOUND, 1)
        reference.set_int_custom_property(contracts.BASELINE_MODEL_ID, 7)
        reference.set_string_custom_property(contracts.BASELINE_MODEL_URI, str(baseline))
        inputs["baseline_model"] = [reference]
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(out / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(out / "blessing")
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)
    executor = evaluator_executor.Executor(
        base_beam_executor.BaseBeamExecutor.Context(
            beam_pipeline_args=IN_MEMORY, tmp_dir=str(out / "tmp")
        )
    )
    if batched_calls is None:
        executor._evaluate_batched = lambda *args: False  # type: ignore[method-assign]
    executor.Do(
        inputs,
        {"evaluation": [evaluation], "blessing": [blessing]},
        {"eval_spec": EvalSpec("binary", "auc", SLICE_BY).to_json(), **spec},
    )
    return evaluation.uri, blessing


def _loaded(uri: str) -> dict:
    metrics = {}
    for per_slice in tfma.load_metrics(uri):
        for kv in per_slice.metric_keys_and_values:
            metrics[per_slice.slice_key.SerializeToString(), kv.key.SerializeToString()] = kv.value
    return metrics


@pytest.mark.parametrize(
    "with_baseline, min_value, blessed",
    [(False, 0.5, True), (True, 0.99, False)],
)
def test_the_executor_writes_what_tfx_evaluator_writes(
    eval_inputs, tmp_path, monkeypatch, with_baseline, min_value, blessed
) -> None:
    root, candidate, baseline = eval_inputs
    thresholds = {"min_value": min_value, "max_drop": 0.0}
    calls: list = []
    evaluate = batched.evaluate
    monkeypatch.setattr(batched, "evaluate", lambda *a, **k: calls.append(1) or evaluate(*a, **k))
    runs = {}
    for name, batched_calls in (("tfma", None), ("batched", calls)):
        runs[name] = _run_executor(
            root,
            tmp_path / name,
            candidate,
            baseline if with_baseline else None,
            batched_calls,
            **thresholds,
        )
    assert calls == [1], "the batched path did not run"
    (ours_uri, ours_blessing), (theirs_uri, theirs_blessing) = runs["batched"], runs["tfma"]

    assert sorted(os.listdir(ours_uri)) == sorted(os.listdir(theirs_uri))
    ours, theirs = _loaded(ours_uri), _loaded(theirs_uri)
    assert ours.keys() == theirs.keys()
    assert len(ours) > 20 * (3 if with_baseline else 1)
    for key, value in theirs.items():
        # TFMA predicts in batches whose size varies; a Keras model's float32
        # outputs can differ in the last bit with the batch size.
        a, b = ours[key].double_value.value, value.double_value.value
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    plots = [
        sorted(p.SerializeToString() for p in tfma.load_plots(u)) for u in (ours_uri, theirs_uri)
    ]
    assert plots[0] == plots[1]
    validations = [tfma.load_validation_result(u) for u in (ours_uri, theirs_uri)]
    assert validations[0] == validations[1]
    assert validations[0].validation_ok is blessed
    configs = [json.loads(Path(u, "eval_config.json").read_text()) for u in (ours_uri, theirs_uri)]
    assert configs[0] == configs[1]
    assert os.listdir(ours_blessing.uri) == ["BLESSED" if blessed else "NOT_BLESSED"]
    assert os.listdir(ours_blessing.uri) == os.listdir(theirs_blessing.uri)
    assert (
        ours_blessing.mlmd_artifact.custom_properties
        == theirs_blessing.mlmd_artifact.custom_properties
    )


def test_a_distributed_runner_keeps_tfmas_path(tmp_path, monkeypatch) -> None:
    executor = evaluator_executor.Executor(
        base_beam_executor.BaseBeamExecutor.Context(
            beam_pipeline_args=["--runner=DataflowRunner"], tmp_dir=str(tmp_path)
        )
    )
    monkeypatch.setattr(batched, "evaluate", lambda *a, **k: pytest.fail("batched path ran"))
    assert not executor._evaluate_batched({}, {}, {})


def test_an_eval_split_without_files_fails_as_tfx_fails(eval_inputs, tmp_path) -> None:
    _, candidate, _ = eval_inputs
    empty = tmp_path / "empty"
    (empty / "examples" / "Split-eval").mkdir(parents=True)
    with pytest.raises(OSError, match="No files found based on the file pattern"):
        _run_executor(empty, tmp_path / "out", candidate, None, [], min_value=0.5, max_drop=0.0)


def test_files_are_read_with_the_compression_beam_detects() -> None:
    groups = dict(batched._by_compression(["a.gz", "b.GZ", "c", "d.deflate", "e.tfrecord"]))
    assert groups == {"GZIP": ["a.gz", "b.GZ"], "": ["c", "e.tfrecord"], "ZLIB": ["d.deflate"]}
    with pytest.raises(batched.Unsupported, match=r"compression of f\.zstd"):
        batched._by_compression(["f.zstd"])


def test_a_slice_column_the_transform_outputs_is_left_to_tfma(eval_inputs, tmp_path) -> None:
    root, candidate, _ = eval_inputs
    config = make_eval_config(EvalSpec("binary", "auc", ("fare_xf",)), 0.5, 0.0)
    config = tfma.utils.update_eval_config_with_defaults(config, rubber_stamp=True)
    files = [str(p) for p in (root / "examples" / "Split-eval").iterdir()]
    paths = {"": str(candidate / "Format-Serving")}
    with pytest.raises(batched.Unsupported, match="transformed features"):
        batched.evaluate(batched.plan(config), paths, files)


def test_histogram_sums_stay_bounded_and_merge_to_the_same_totals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The unmerged parts never pass the merge bound, and merging changes no total."""
    monkeypatch.setattr(batched, "_MERGE_ROWS", 5000)
    rng = np.random.default_rng(7)
    sums = batched._Sums(2)
    expected: dict[int, list[float]] = {}
    most = 0
    for _ in range(60):
        keys = rng.integers(0, 3000, size=1000)
        values = [rng.integers(0, 4, size=1000).astype(float), np.ones(1000)]
        sums.add(keys, values)
        most = max(most, sums._part_rows)
        for key, a, b in zip(keys.tolist(), *values, strict=True):
            total = expected.setdefault(key, [0.0, 0.0])
            total[0] += a
            total[1] += b
    keys, totals = sums.totals()
    assert 0 < most <= 5000 + 1000  # one batch's unique keys past the bound, then merged
    assert keys.tolist() == sorted(expected)
    assert totals.tolist() == [[expected[k][i] for k in sorted(expected)] for i in range(2)]
