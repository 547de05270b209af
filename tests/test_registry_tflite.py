"""TFLite variants of a push: converted, run in tf.lite.Interpreter, measured, refused or kept."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from components import contracts
from components.errors import ConfigError
from components.registry import tflite
from components.registry.store import Registry
from pipeline.config import RegistryConfig
from pipeline.serving.columns import columns_for
from tests.conftest import load_schema, read_csv_rows, taxi_config, to_tf_example

COLUMNS = columns_for(taxi_config())
ROWS = 120
# Loose enough for the tiny fixture model's fp16 weights; the measured
# figures are asserted against what the interpreter gives here.
LOOSE = tflite.Tolerance(max_abs_diff=0.2, max_metric_delta=0.2)
# What must agree to within float32 rounding on any model.
AS_TRAINED = ("fp32",)


@pytest.fixture(scope="module")
def raw_examples() -> list[bytes]:
    """Raw tf.Examples as CsvExampleGen writes them, label columns and empty cells included."""
    schema = load_schema()
    return [to_tf_example(row, schema) for row in read_csv_rows(limit=ROWS)]


@pytest.fixture(scope="module")
def built(
    trained_model: str, raw_examples: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], dict[str, Any]]:
    """Every variant of the trained fixture model, built once for the module."""
    scratch = str(tmp_path_factory.mktemp("tflite"))
    return tflite.build(
        trained_model,
        raw_examples,
        COLUMNS,
        contracts.TFLITE_VARIANTS,
        ROWS,
        LOOSE,
        scratch,
    )


def _savedmodel_outputs(model_dir: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    signature = tf.saved_model.load(model_dir).signatures[contracts.TFLITE_SIGNATURE]
    outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    return outputs[contracts.PROBABILITY].numpy()


def _inputs(model_dir: str, raw_examples: list[bytes]) -> dict[str, np.ndarray]:
    signature = tf.saved_model.load(model_dir).signatures[contracts.TFLITE_SIGNATURE]
    specs = signature.structured_input_signature[1]
    return tflite.eval_rows(raw_examples, COLUMNS, specs, ROWS).inputs


def test_the_record_names_every_variant_with_its_measurements(built):
    files, record = built
    assert record["signature"] == contracts.TFLITE_SIGNATURE
    assert record["rows"] == ROWS
    assert record["metric"]["name"] == "auc"
    assert 0.0 <= record["metric"]["savedmodel"] <= 1.0
    assert set(record["variants"]) == set(contracts.TFLITE_VARIANTS)
    for name, entry in record["variants"].items():
        assert entry["status"] in (tflite.PUBLISHED, tflite.REFUSED), name
        if entry["status"] == tflite.PUBLISHED:
            assert entry["reason"] is None
            assert entry["max_abs_diff"] <= LOOSE.max_abs_diff
            assert abs(entry["metric_delta"]) <= LOOSE.max_metric_delta
            assert files[entry["file"]]
        else:
            assert entry["reason"], name
            assert tflite.variant_file(name) not in files


def test_fp32_fp16_and_dynamic_int8_convert_run_and_agree(built, trained_model, raw_examples):
    files, record = built
    inputs = _inputs(trained_model, raw_examples)
    reference = _savedmodel_outputs(trained_model, inputs)
    for name in ("fp32", "fp16", "dynamic_int8"):
        entry = record["variants"][name]
        assert entry["status"] == tflite.PUBLISHED, entry
        # Measured again here, in this process: the record is not taken on trust.
        runner = tf.lite.Interpreter(model_path=files[entry["file"]]).get_signature_runner(
            contracts.TFLITE_SIGNATURE
        )
        got = runner(**inputs)[contracts.PROBABILITY]
        assert got.shape == reference.shape == (ROWS, 1)
        diff = float(np.max(np.abs(got - reference)))
        assert diff == pytest.approx(entry["max_abs_diff"], rel=1e-3, abs=1e-9)
    for name in AS_TRAINED:
        assert record["variants"][name]["max_abs_diff"] < 1e-5
        assert record["variants"][name]["metric_delta"] == pytest.approx(0.0, abs=1e-6)


def test_full_int8_is_calibrated_and_measured_or_refused_with_the_reason(built):
    entry = built[1]["variants"]["full_int8"]
    # Converted either way: it has a size and checksum even when refused.
    assert entry["size"] > 0 and len(entry["sha256"]) == 64
    if entry["status"] == tflite.REFUSED:
        # TFLite's quantized kernels abort() on scales they cannot use: the
        # child process dies, the push does not.
        assert "tf.lite.Interpreter" in entry["reason"] or "registry.tflite" in entry["reason"]


def test_a_variant_beyond_the_tolerance_is_refused_and_not_stored(
    trained_model, raw_examples, tmp_path
):
    files, record = tflite.build(
        trained_model,
        raw_examples,
        COLUMNS,
        ["dynamic_int8"],
        ROWS,
        tflite.Tolerance(max_abs_diff=0.0, max_metric_delta=0.0),
        str(tmp_path),
    )
    entry = record["variants"]["dynamic_int8"]
    assert files == {}
    assert entry["status"] == tflite.REFUSED
    assert entry["max_abs_diff"] > 0.0
    assert "registry.tflite_max_abs_diff 0" in entry["reason"]
    assert tflite.refusals(record) == [f"dynamic_int8: {entry['reason']}"]


def test_a_model_without_the_signature_is_refused_not_crashed(raw_examples, tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None])])
    model = str(tmp_path / "model")
    tf.saved_model.save(module, model, signatures={"other": module.f})
    files, record = tflite.build(
        model, raw_examples, COLUMNS, ["fp32"], 10, LOOSE, str(tmp_path / "scratch")
    )
    assert files == {}
    assert record["variants"]["fp32"]["status"] == tflite.REFUSED
    assert "could not prepare" in record["variants"]["fp32"]["reason"]


def test_published_variants_are_in_the_version_with_matching_checksums(
    built, trained_model, tmp_path
):
    files, record = built
    registry = Registry(str(tmp_path / "registry"), "taxi")
    version = registry.publish(trained_model, {contracts.TFLITE_MANIFEST_KEY: record}, files)
    assert registry.verify(version.number) == []
    manifest = registry.manifest(version.number)
    listed = manifest["files"]
    stored = sorted(
        str(p.relative_to(version.path)) for p in Path(version.path, contracts.TFLITE_DIR).iterdir()
    )
    published = {
        name: entry
        for name, entry in manifest[contracts.TFLITE_MANIFEST_KEY]["variants"].items()
        if entry["status"] == tflite.PUBLISHED
    }
    assert stored == sorted(tflite.variant_file(name) for name in published)
    for entry in published.values():
        content = Path(version.path, entry["file"]).read_bytes()
        assert entry["size"] == len(content) == listed[entry["file"]]["size"]
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
        assert listed[entry["file"]]["sha256"] == entry["sha256"]
    # TF Serving still loads the SavedModel beside them.
    assert tf.saved_model.contains_saved_model(version.path)


def test_auc_counts_ties_half_and_is_undefined_for_one_class():
    labels = np.array([0, 0, 1, 1])
    assert tflite.auc(labels, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert tflite.auc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert tflite.auc(np.array([1, 1]), np.array([0.2, 0.9])) is None


def test_the_metric_follows_the_output_the_task_gives():
    labels = np.array([0, 2, 1])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    name, value = tflite.metric_of({contracts.PROBABILITIES: probabilities}, labels)
    assert (name, value) == ("accuracy", pytest.approx(2 / 3))
    assert tflite.metric_of({contracts.PROBABILITY: np.array([[0.3]])}, None) == ("auc", None)


def test_compare_names_string_shape_and_non_finite_disagreements():
    reference = {"p": np.array([[0.5], [0.25]]), "classes": np.array([[b"a"], [b"b"]])}
    diff, problems = tflite.compare(
        reference, {"p": np.array([[0.5], [0.5]]), "classes": np.array([[b"a"], [b"c"]])}
    )
    assert diff == pytest.approx(0.25)
    assert problems == ["output 'classes' holds other strings than the SavedModel's"]
    _, problems = tflite.compare(reference, {"p": np.array([[np.nan], [0.5]])})
    assert problems == [
        "output 'p' has non-finite values",
        "has no output 'classes' (it has ['p'])",
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tflite": ("int4",)}, "registry.tflite must list distinct variants"),
        ({"tflite": ("fp16", "fp16")}, "registry.tflite must list distinct variants"),
        ({"tflite_eval_rows": 0}, "registry.tflite_eval_rows"),
        ({"tflite_max_abs_diff": -1.0}, "registry.tflite_max_abs_diff"),
    ],
)
def test_the_config_refuses_bad_tflite_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        RegistryConfig(**settings).validate()


def test_tflite_is_off_by_default():
    assert RegistryConfig().tflite == ()
