"""TFLite variants of a pushed model, each measured against the SavedModel before it is kept.

A push with `registry.tflite` set converts the model's `serving_raw`
signature (raw feature tensors, the tf.Transform graph inside) into the
variants it names (`contracts.TFLITE_VARIANTS`):

- `fp32`: as trained;
- `fp16`: weights stored as float16 (computed in float32);
- `dynamic_int8`: weights stored as int8, activations float (dynamic range);
- `full_int8`: weights and activations int8, the activation ranges
  calibrated on eval rows (the representative dataset); inputs and outputs
  stay float32, int64 and string, and the string and hashing ops of the
  transform graph stay TensorFlow ops.

Nothing about a variant is assumed. Each one runs in `tf.lite.Interpreter`
on the same eval rows as the SavedModel's own signature, and the record
says how far its outputs are from the SavedModel's (the largest absolute
difference) and how much the model's metric moves: AUC for a binary
`probability` output, accuracy for multiclass `probabilities`, against the
label the model's `transform_features` signature computes. A variant
beyond the tolerance, or one that fails to convert or to run, is refused:
it is not stored, and the record says why.

The interpreter runs in a child process: a quantized kernel can abort the
process (TFLite checks its quantization parameters with `abort()`), and a
push must survive a bad variant. The transform graph's string ops run as
TensorFlow ops ("Select TF ops", `SELECT_TF_OPS`), which the full
TensorFlow pip's interpreter runs; an app needs the Flex delegate linked
in. The tables of tf.Transform's vocabularies are re-initialized from
constants before conversion (`private_apis.inline_table_vocabularies`).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from components import contracts, private_apis
from components.registry import warmup
from components.workload import ServingColumn

PUBLISHED = "published"
REFUSED = "refused"
# Calibration rows of full_int8, at most: the first of the measured rows.
CALIBRATION_ROWS = 100
# A child process that runs one variant; a hung kernel is killed after this.
RUN_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Tolerance:
    """How far a variant may be from the SavedModel and still be published.

    Attributes:
        max_abs_diff: The largest absolute difference allowed between any
            numeric output of the variant and the SavedModel's, on any row.
        max_metric_delta: The largest change of the metric (AUC or
            accuracy) allowed, either way.
    """

    max_abs_diff: float
    max_metric_delta: float


def variant_file(variant: str) -> str:
    """Where a variant lies in a version: `tflite/<variant>.tflite`."""
    return f"{contracts.TFLITE_DIR}/{variant}.tflite"


def _numpy_dtype(dtype: tf.DType) -> Any:
    return object if dtype == tf.string else dtype.as_numpy_dtype


@dataclass(frozen=True)
class EvalRows:
    """The eval rows every variant is measured on.

    Attributes:
        serialized: The rows as serialized tf.Examples (for the labels).
        inputs: The `serving_raw` inputs, one [rows] array per input.
    """

    serialized: list[bytes]
    inputs: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.serialized)

    def single_rows(self, count: int) -> Iterator[dict[str, np.ndarray]]:
        """The first `count` rows, one at a time, as the converter's calibration takes them."""
        for i in range(min(count, len(self))):
            yield {name: values[i : i + 1] for name, values in self.inputs.items()}


def eval_rows(
    serialized_examples: Iterable[bytes],
    columns: Sequence[ServingColumn],
    input_specs: dict[str, tf.TensorSpec],
    count: int,
) -> EvalRows:
    """Up to `count` eval rows as `serving_raw` inputs, empty cells filled as warmup fills them.

    A row with a multi-valued cell, which `serving_raw` cannot carry, is skipped.

    Raises:
        ValueError: No row could be used, or the signature's inputs are not
            the serving columns.
    """
    names = {c.name for c in columns}
    if names != set(input_specs):
        raise ValueError(
            f"the {contracts.TFLITE_SIGNATURE} inputs {sorted(input_specs)} are not the "
            f"serving columns {sorted(names)}"
        )
    kept: list[bytes] = []
    values: dict[str, list[object]] = {name: [] for name in input_specs}
    for serialized in serialized_examples:
        if len(kept) >= count:
            break
        row = warmup.raw_values(tf.train.Example.FromString(serialized), columns)
        if row is None:
            continue
        kept.append(serialized)
        for name in input_specs:
            values[name].append(row[name])
    if not kept:
        raise ValueError("no eval row with single-valued cells to measure TFLite variants on")
    return EvalRows(
        kept,
        {
            name: np.array(values[name], dtype=_numpy_dtype(spec.dtype))
            for name, spec in input_specs.items()
        },
    )


def prepare(saved_model: str, target: str) -> str:
    """Re-saves the signature to convert, its vocabulary tables filled from constants.

    Returns:
        `target`, a SavedModel with only `contracts.TFLITE_SIGNATURE`.
    """
    loaded = tf.saved_model.load(saved_model)
    private_apis.inline_table_vocabularies(loaded)
    tf.saved_model.save(
        loaded,
        target,
        signatures={contracts.TFLITE_SIGNATURE: loaded.signatures[contracts.TFLITE_SIGNATURE]},
    )
    return target


def convert(
    prepared: str,
    variant: str,
    representative: Callable[[], Iterator[dict[str, np.ndarray]]],
) -> bytes:
    """Converts the prepared SavedModel's signature into one variant.

    Raises:
        ValueError: An unknown variant.
        Exception: Whatever the converter raises for a graph it cannot convert.
    """
    if variant not in contracts.TFLITE_VARIANTS:
        raise ValueError(
            f"unknown TFLite variant {variant!r} (variants: {', '.join(contracts.TFLITE_VARIANTS)})"
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(
        prepared, signature_keys=[contracts.TFLITE_SIGNATURE]
    )
    # String parsing, hashing and bucketizing in the transform graph have no
    # TFLite builtin: without SELECT_TF_OPS the conversion fails on them.
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    if variant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "full_int8":
        converter.representative_dataset = representative
        builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    converter.target_spec.supported_ops = [builtins, tf.lite.OpsSet.SELECT_TF_OPS]
    return bytes(converter.convert())


def run_variant(model_file: str, inputs: dict[str, np.ndarray], scratch: str) -> dict[str, Any]:
    """Runs a .tflite file's signature in `tf.lite.Interpreter`, in a child process.

    Returns:
        Output name -> array.

    Raises:
        RuntimeError: The interpreter failed, aborted or hung; the message
            says how, with the end of its stderr.
    """
    feed, results = os.path.join(scratch, "inputs.npz"), os.path.join(scratch, "outputs.npz")
    np.savez(feed, **inputs)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__, model_file, feed, results],
            capture_output=True,
            text=True,
            env=env,
            timeout=RUN_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"tf.lite.Interpreter did not finish in {RUN_TIMEOUT_SECONDS} s"
        ) from None
    if done.returncode != 0:
        how = (
            f"was killed by {signal.Signals(-done.returncode).name}"
            if done.returncode < 0
            else f"exited with {done.returncode}"
        )
        said = [
            line.strip()
            for line in done.stderr.splitlines()
            if line.strip() and not line.startswith("INFO:") and "Warning" not in line
        ][-3:]
        raise RuntimeError(
            f"tf.lite.Interpreter {how} running it: {' | '.join(said) or 'no message'}"
        )
    with np.load(results, allow_pickle=True) as loaded:
        return {name: loaded[name] for name in loaded.files}


def _run_in_this_process(model_file: str, feed: str, results: str) -> None:
    """The child's side of `run_variant`."""
    with np.load(feed, allow_pickle=True) as loaded:
        inputs = {name: loaded[name] for name in loaded.files}
    interpreter = tf.lite.Interpreter(model_path=model_file)
    outputs = interpreter.get_signature_runner(contracts.TFLITE_SIGNATURE)(**inputs)
    np.savez(results, **outputs)


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of scores for 0/1 labels (ties count half); None with a single class."""
    positive = labels.astype(np.float64).reshape(-1) > 0.5
    scores = scores.astype(np.float64).reshape(-1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ordered = np.sort(scores)
    ranks = (
        np.searchsorted(ordered, scores, "left") + np.searchsorted(ordered, scores, "right") + 1
    ) / 2.0
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metric_of(outputs: dict[str, Any], labels: np.ndarray | None) -> tuple[str, float | None]:
    """The model's metric on the rows: (name, value), by the output the task gives.

    Binary (`probability`): AUC; multiclass (`probabilities`): accuracy of
    the most probable class. The value is None without labels (or with one
    class, for AUC); the name is empty for an output of neither kind.
    """
    if contracts.PROBABILITY in outputs:
        if labels is None:
            return "auc", None
        return "auc", auc(labels, np.asarray(outputs[contracts.PROBABILITY]))
    if contracts.PROBABILITIES in outputs:
        if labels is None:
            return "accuracy", None
        predicted = np.argmax(np.asarray(outputs[contracts.PROBABILITIES]), axis=-1)
        return "accuracy", float(np.mean(predicted == labels.reshape(-1).astype(np.int64)))
    return "", None


def labels_of(loaded: Any, rows: EvalRows) -> np.ndarray | None:
    """The label the model's transform graph computes for each row; None if it has none."""
    transform = loaded.signatures.get(contracts.TRANSFORM_FEATURES)
    if transform is None:
        return None
    transformed = transform(
        **{contracts.SERVING_DEFAULT_INPUT: tf.constant(rows.serialized, dtype=tf.string)}
    )
    label = transformed.get(contracts.LABEL_KEY)
    if label is None:
        return None
    if isinstance(label, tf.SparseTensor):
        label = tf.sparse.to_dense(label)
    return np.asarray(label).reshape(len(rows), -1)[:, 0]


def compare(reference: dict[str, Any], outputs: dict[str, Any]) -> tuple[float, list[str]]:
    """The largest absolute difference over the numeric outputs, and what else disagrees.

    Returns:
        (max abs difference, problems): a missing output, a different shape,
        a non-finite value, or a string output that differs.
    """
    problems: list[str] = []
    largest = 0.0
    for name, want in reference.items():
        want = np.asarray(want)
        got = outputs.get(name)
        if got is None:
            problems.append(f"has no output {name!r} (it has {sorted(outputs)})")
            continue
        got = np.asarray(got)
        if got.shape != want.shape:
            problems.append(f"output {name!r} has shape {got.shape}, the SavedModel's {want.shape}")
        elif want.dtype.kind in "OSU":
            if not np.array_equal(got.astype(bytes), want.astype(bytes)):
                problems.append(f"output {name!r} holds other strings than the SavedModel's")
        elif not np.all(np.isfinite(got)):
            problems.append(f"output {name!r} has non-finite values")
        else:
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            largest = max(largest, float(diff.max(initial=0.0)))
    return largest, problems


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


def build(
    saved_model: str,
    serialized_examples: Iterable[bytes],
    columns: Sequence[ServingColumn],
    variants: Sequence[str],
    rows: int,
    tolerance: Tolerance,
    scratch: str,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Converts, measures and judges each variant.

    Args:
        saved_model: The SavedModel being pushed.
        serialized_examples: Eval tf.Examples, as ExampleGen writes them.
        columns: The serving_raw inputs, typed, with their fills.
        variants: Names from `contracts.TFLITE_VARIANTS`.
        rows: How many eval rows to measure on.
        tolerance: What a published variant may differ by.
        scratch: A folder for the converted files; the published ones stay there.

    Returns:
        (files, record): the published variants' files (version-relative
        path -> file under `scratch`, for `Registry.publish`), and the
        manifest section: the signature, rows, tolerance and one entry per
        variant (status, reason, size, sha256, max_abs_diff, metric).
    """
    record: dict[str, Any] = {
        "signature": contracts.TFLITE_SIGNATURE,
        "tolerance": {
            "max_abs_diff": tolerance.max_abs_diff,
            "max_metric_delta": tolerance.max_metric_delta,
        },
        "variants": {},
    }
    entries: dict[str, dict[str, Any]] = record["variants"]
    files: dict[str, str] = {}
    try:
        loaded = tf.saved_model.load(saved_model)
        signature = loaded.signatures[contracts.TFLITE_SIGNATURE]
        measured = eval_rows(
            serialized_examples, columns, signature.structured_input_signature[1], rows
        )
        reference = {
            k: v.numpy()
            for k, v in signature(**{k: tf.constant(v) for k, v in measured.inputs.items()}).items()
        }
        labels = labels_of(loaded, measured)
        metric, reference_metric = metric_of(reference, labels)
        prepared = prepare(saved_model, os.path.join(scratch, "prepared"))
    except Exception as e:  # the push goes on without variants; the manifest says why
        reason = f"could not prepare the SavedModel for conversion: {type(e).__name__}: {e}"
        for variant in variants:
            entries[variant] = {"status": REFUSED, "reason": reason}
        return files, record
    record["rows"] = len(measured)
    record["metric"] = {"name": metric, "savedmodel": _rounded(reference_metric)}
    for variant in variants:
        entry: dict[str, Any] = {"status": REFUSED, "reason": None, "rows": len(measured)}
        entries[variant] = entry
        path = os.path.join(scratch, f"{variant}.tflite")
        try:
            content = convert(prepared, variant, lambda: measured.single_rows(CALIBRATION_ROWS))
        except Exception as e:  # a converter failure refuses this variant only
            entry["reason"] = f"conversion failed: {type(e).__name__}: {str(e).strip()[-500:]}"
            continue
        with open(path, "wb") as f:
            f.write(content)
        entry["size"] = len(content)
        entry["sha256"] = hashlib.sha256(content).hexdigest()
        try:
            with tempfile.TemporaryDirectory(dir=scratch) as run_dir:
                outputs = run_variant(path, measured.inputs, run_dir)
        except RuntimeError as e:
            entry["reason"] = str(e)
            continue
        diff, problems = compare(reference, outputs)
        entry["max_abs_diff"] = _rounded(diff)
        _, value = metric_of(outputs, labels)
        delta = None if value is None or reference_metric is None else value - reference_metric
        entry["metric"] = _rounded(value)
        entry["metric_delta"] = _rounded(delta)
        reasons = list(problems)
        if diff > tolerance.max_abs_diff:
            reasons.append(
                f"max |tflite - savedmodel| {diff:.4g} on {len(measured)} eval rows is above "
                f"registry.tflite_max_abs_diff {tolerance.max_abs_diff:g}"
            )
        if delta is not None and abs(delta) > tolerance.max_metric_delta:
            reasons.append(
                f"{metric} moves by {delta:+.4g} ({reference_metric:.4f} -> {value:.4f}), more "
                f"than registry.tflite_max_metric_delta {tolerance.max_metric_delta:g}"
            )
        if reasons:
            entry["reason"] = "; ".join(reasons)
            continue
        entry["status"] = PUBLISHED
        entry["file"] = variant_file(variant)
        files[variant_file(variant)] = path
    return files, record


def refusals(section: dict[str, Any] | None) -> list[str]:
    """One line per refused variant of a manifest's `tflite` section: `variant: reason`."""
    variants = (section or {}).get("variants", {})
    return [
        f"{name}: {entry.get('reason')}"
        for name, entry in variants.items()
        if entry.get("status") != PUBLISHED
    ]


if __name__ == "__main__":
    _run_in_this_process(*sys.argv[1:4])
