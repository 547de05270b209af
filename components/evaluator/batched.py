"""TFMA's evaluation of a binary label, computed a batch of eval examples at a time.

TFMA's metrics path is per example: it splits every batch of extracts (raw
features, transformed features, predictions) into one dict per example, fans
each out to its slices and hands it to every metric combiner, one Python call
per example, slice and combiner. At 100x the taxi data that was 174.7 s of a
366.8 s run (docs/benchmarks.md). Yet every combiner a binary evaluation here
needs is a sum over examples: the example count, TFMA's calibration histogram
(AUC, the mean label) and its confusion matrices at fixed thresholds (binary
accuracy, precision, recall). numpy sums a whole batch at once.

What stays TFMA's: the EvalConfig with TFMA's defaults; the computations TFMA
builds from it (`metric_specs.to_computations`); the accumulators' outputs
(each combiner's own `extract_output`); every derived metric (AUC's
summation, the rebinning, the ratios); the slice keys (TFMA's slicer, once per
distinct combination of slice-column values); the thresholds
(`metrics_validator.validate_metrics`); the writers (the files, their protos,
`eval_config.json`). The models are called through the same signatures on the
same serialized examples.

What is done here, and tested against TFMA's combiners (tests/test_batched_eval.py):
TFMA's conversion of each example to (label, prediction, weight) tuples with
fractional labels (`binary_tuples`), the histogram's bucket of each prediction
(`bucket_index`), and the sums (`_Sums`).

`plan` raises `Unsupported` for anything else (another combiner, such as the
multiclass confusion matrices; example weights; cross slices; confidence
intervals; a slice column the transform also outputs), and so does
`evaluate` on data it cannot read as TFMA would, before anything is
written; the executor then runs TFX's Evaluator (TFMA) instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from components import private_apis

# Eval examples per model call: a few MiB of serialized examples.
BATCH_SIZE = 8192
# Sparse histogram sums are merged once the unmerged parts outgrow this many
# rows (or the merged sums, if larger), so that memory follows the number of
# (slice, bucket) pairs seen, not the number of examples. A part row is 32
# bytes and the taxi model's batches give about 3,000 each: 1 << 20 let the
# parts grow by 12 bytes per eval example up to 32 MiB (2.7M examples),
# which the 1.5M-row runs showed as the Evaluator's memory rising with the
# data; at 1 << 18 they stop at 8 MiB, merged every 700,000 examples, in
# milliseconds (docs/benchmarks.md, "Goal 2").
_MERGE_ROWS = 1 << 18


class Unsupported(Exception):
    """The evaluation asks for something only TFMA's own path computes."""


@dataclasses.dataclass(frozen=True)
class _Counts:
    """One `_BinaryCountsCombiner`: TFMA's histogram and matrices for one model."""

    index: int  # among the plan's combiners
    combiner: Any
    model: str
    num_buckets: int
    left: float
    range: float
    thresholds: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class _ExampleCount:
    """One TFMA example-count combiner."""

    index: int
    combiner: Any
    model: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `evaluate` computes: TFMA's computations for one EvalConfig."""

    eval_config: Any
    combiners: tuple[_Counts | _ExampleCount, ...]
    derived: tuple[Any, ...]
    slice_specs: tuple[Any, ...]
    slice_columns: tuple[str, ...]


def plan(eval_config: Any) -> Plan:
    """TFMA's computations for `eval_config` (with TFMA's defaults already applied).

    Raises:
        Unsupported: The config asks for something only TFMA computes; the
            message says what.
    """
    from tensorflow_model_analysis.metrics import metric_specs
    from tensorflow_model_analysis.slicer import slicer_lib

    from components.evaluator.binary_metrics import _BinaryCountsCombiner

    options = eval_config.options
    if eval_config.cross_slicing_specs:
        raise Unsupported("cross slicing specs")
    if options.compute_confidence_intervals.value:
        raise Unsupported("confidence intervals")
    if options.min_slice_size.value > 1:
        raise Unsupported("a minimum slice size")
    if not options.HasField("include_default_metrics") or options.include_default_metrics.value:
        raise Unsupported("the metrics compiled into the model")
    if any(spec.query_key for spec in eval_config.metrics_specs):
        raise Unsupported("a query key")
    for spec in eval_config.model_specs:
        if not spec.label_key or not spec.prediction_key:
            raise Unsupported(f"model {spec.name!r} has no single label key and prediction key")
        if spec.example_weight_key or spec.example_weight_keys:
            raise Unsupported("example weights")
        if spec.model_type not in ("tf_keras", "tf_generic"):
            raise Unsupported(f"model type {spec.model_type!r}")
        if any("@" in name for name in spec.preprocessing_function_names):
            raise Unsupported("TFMA preprocessing functions")
    columns: list[str] = []
    for spec in eval_config.slicing_specs:
        if spec.slice_keys_sql:
            raise Unsupported("SQL slices")
        for column in [*spec.feature_keys, *spec.feature_values]:
            if column not in columns:
                columns.append(column)
    slice_specs: list[Any] = []
    for spec in eval_config.slicing_specs or [None]:
        single = slicer_lib.SingleSliceSpec(spec=spec) if spec is not None else None
        single = single or slicer_lib.SingleSliceSpec()
        if single not in slice_specs:
            slice_specs.append(single)

    separated = private_apis.tfma_separate_computations(
        metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config)
    )
    if separated.cross_slice_computations or separated.ci_derived_computations:
        raise Unsupported("cross-slice or confidence-interval metrics")
    models = {spec.name for spec in eval_config.model_specs}
    combiners: list[_Counts | _ExampleCount] = []
    for index, computation in enumerate(separated.non_derived_computations):
        combiner = computation.combiner
        count = private_apis.tfma_example_count_settings(combiner)
        if count is not None:
            if count["output_name"] or any(k.sub_key is not None for k in count["keys"]):
                raise Unsupported("an example count per output or sub key")
            combiners.append(_ExampleCount(index, combiner, count["model_name"]))
            continue
        if not isinstance(combiner, _BinaryCountsCombiner) or computation.preprocessors:
            raise Unsupported(f"the metric combiner {type(combiner).__name__}")
        histogram = private_apis.tfma_histogram_settings(combiner.histogram)
        matrices = private_apis.tfma_matrices_settings(combiner.matrices)
        for settings in (histogram, matrices):
            if (
                settings["key"].output_name
                or settings["key"].sub_key is not None
                or settings["class_weights"]
                or settings["aggregation_type"] is not None
                or not settings["fractional_labels"]
            ):
                raise Unsupported(
                    "binary metrics per output, class, top k or without fractional labels"
                )
        if not histogram["prediction_based_bucketing"] or matrices["example_id_key"]:
            raise Unsupported("a label-bucketed histogram or example ids")
        if histogram["key"].model_name != matrices["key"].model_name:
            raise Unsupported("a histogram and matrices of two models in one combiner")
        combiners.append(
            _Counts(
                index,
                combiner,
                histogram["key"].model_name,
                histogram["num_buckets"],
                histogram["left"],
                histogram["range"],
                tuple(matrices["thresholds"]),
            )
        )
    for c in combiners:
        if c.model not in models:
            raise Unsupported(f"a metric of model {c.model!r}, which the config does not name")
    return Plan(
        eval_config=eval_config,
        combiners=tuple(combiners),
        derived=tuple(separated.derived_computations),
        slice_specs=tuple(slice_specs),
        slice_columns=tuple(columns),
    )


def binary_tuples(
    labels: np.ndarray, predictions: np.ndarray, label_key: str, prediction_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """TFMA's (label, prediction, weight) tuples of each example, with fractional labels.

    `metric_util.to_label_prediction_example_weight` with fractional labels
    turns an example of label `l` (weight 1) into a tuple of label 0 and
    weight `1 * (1 - l)` and one of label 1 and weight `1 * l`, each only if
    its weight is not zero; the arithmetic is in the label's own dtype, then
    float64, as there.

    Returns:
        (weight of the label-0 tuple, weight of the label-1 tuple) per
        example, float64; 0 where TFMA yields no such tuple.

    Raises:
        ValueError: A label outside [0, 1] or a prediction that is NaN (TFMA
            fails on both), naming the key and the value.
    """
    outside = ~((labels >= 0) & (labels <= 1))
    if outside.any():
        raise ValueError(
            f"label {label_key!r} must be within [0, 1] for a binary evaluation; "
            f"found {labels[outside][0]!r}"
        )
    if np.isnan(predictions).any():
        raise ValueError(f"prediction {prediction_key!r} is NaN for some eval examples")
    ones = np.ones(labels.shape, dtype=np.float64)
    return ones * (1 - labels), ones * labels


def bucket_index(
    predictions: np.ndarray, left: float, range_: float, num_buckets: int
) -> np.ndarray:
    """TFMA's calibration-histogram bucket of each prediction (`_bucket_index`), vectorised.

    Bucket 0 holds predictions below `left`, `num_buckets + 1` those at or
    above `left + range_`; the rest are truncated, as `int()` truncates.
    """
    index = (predictions.astype(np.float64) - left) / range_ * num_buckets + 1
    buckets = np.zeros(index.shape, dtype=np.int64)
    inside = (index >= 0) & (index < num_buckets + 1)
    buckets[inside] = index[inside].astype(np.int64)
    buckets[index >= num_buckets + 1] = num_buckets + 1
    return buckets


class _Sums:
    """Float64 sums per integer key, kept sparse: parts are merged as they grow."""

    def __init__(self, width: int) -> None:
        self._keys = np.zeros(0, dtype=np.int64)
        self._values = np.zeros((width, 0), dtype=np.float64)
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._part_rows = 0

    def add(self, keys: np.ndarray, values: Sequence[np.ndarray]) -> None:
        unique, inverse = np.unique(keys, return_inverse=True)
        sums = np.stack([np.bincount(inverse, weights=v, minlength=len(unique)) for v in values])
        self._parts.append((unique, sums))
        self._part_rows += len(unique)
        if self._part_rows > max(_MERGE_ROWS, len(self._keys)):
            self._merge()

    def _merge(self) -> None:
        if not self._parts:
            return
        keys = np.concatenate([self._keys, *(k for k, _ in self._parts)])
        values = np.concatenate([self._values, *(v for _, v in self._parts)], axis=1)
        self._keys, inverse = np.unique(keys, return_inverse=True)
        self._values = np.stack(
            [np.bincount(inverse, weights=row, minlength=len(self._keys)) for row in values]
        )
        self._parts, self._part_rows = [], 0

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted keys, sums: one row per value) of everything added."""
        self._merge()
        return self._keys, self._values


class _Grown:
    """Dense float64 sums per slice id, growing as slices appear."""

    def __init__(self, rows: int) -> None:
        self.values = np.zeros((rows, 0), dtype=np.float64)

    def add(self, slices: np.ndarray, weights: Sequence[np.ndarray], count: int) -> None:
        if count > self.values.shape[1]:
            self.values = np.pad(self.values, ((0, 0), (0, count - self.values.shape[1])))
        for row, w in enumerate(weights):
            self.values[row] += np.bincount(slices, weights=w, minlength=count)


class _SliceIndex:
    """Slice keys, by TFMA's slicer, of each distinct combination of slice-column values."""

    def __init__(self, specs: Sequence[Any], columns: Sequence[str]) -> None:
        self._specs = list(specs)
        self._columns = list(columns)
        self.keys: list[tuple[Any, ...]] = []
        self._ids: dict[tuple[Any, ...], int] = {}
        self._of_group: dict[tuple[Any, ...], list[int]] = {}

    def _slice_ids(self, group: tuple[Any, ...], dtypes: Sequence[Any]) -> list[int]:
        from tensorflow_model_analysis.slicer import slicer_lib

        ids = self._of_group.get(group)
        if ids is not None:
            return ids
        features = {
            column: np.asarray(values, dtype=dtype)
            for column, values, dtype in zip(self._columns, group, dtypes, strict=True)
            if values is not None
        }
        ids = []
        # A set, as TFMA's slice-key extractor keeps each slice once per example.
        for key in sorted(
            set(slicer_lib.get_slices_for_features_dicts([], features, self._specs)), key=repr
        ):
            if key not in self._ids:
                self._ids[key] = len(self.keys)
                self.keys.append(key)
            ids.append(self._ids[key])
        self._of_group[group] = ids
        return ids

    def pairs(self, record_batch: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(example index, slice id) of every slice each example of a batch falls in."""
        names = record_batch.schema.names
        codes = []
        uniques: list[list[Any]] = []
        dtypes: list[Any] = []
        for column in self._columns:
            if column in names:
                code, values, dtype = _per_example_codes(
                    record_batch.column(names.index(column)), column
                )
            else:
                code, values, dtype = np.zeros(size, dtype=np.int64), [None], None
            codes.append(code)
            uniques.append(values)
            dtypes.append(dtype)
        if codes:
            groups, example_group = np.unique(np.stack(codes), axis=1, return_inverse=True)
            combos = groups.T.tolist()
        else:
            combos, example_group = [[]], np.zeros(size, dtype=np.int64)
        table = [
            self._slice_ids(tuple(uniques[r][code] for r, code in enumerate(combo)), dtypes)
            for combo in combos
        ]
        width = max((len(ids) for ids in table), default=0)
        padded = np.full((len(table), width), -1, dtype=np.int64)
        for g, ids in enumerate(table):
            padded[g, : len(ids)] = ids
        per_example = padded[example_group.reshape(-1)]
        examples, position = np.nonzero(per_example >= 0)
        return examples, per_example[examples, position]


def _per_example_codes(column: Any, name: str) -> tuple[np.ndarray, list[Any], Any]:
    """Each example's values of one slice column, as a code into a list of distinct values.

    Returns:
        (per example: its code; by code: None when the example has no value,
        else the tuple of its values; the values' numpy dtype as TFMA's
        features extractor has them).

    Raises:
        Unsupported: Not a column of numbers or bytes, or NaN values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise Unsupported(f"slice column {name!r} of type {column.type}")
    flat = column.flatten()
    if pa.types.is_binary(flat.type) or pa.types.is_large_binary(flat.type):
        values = flat.to_numpy(zero_copy_only=False).astype(object)
    elif pa.types.is_integer(flat.type) or pa.types.is_floating(flat.type):
        values = flat.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "f" and np.isnan(values).any():
            raise Unsupported(f"NaN values in slice column {name!r}")
    else:
        raise Unsupported(f"slice column {name!r} of type {column.type}")
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    if lengths.max(initial=0) <= 1:
        # One value or none per example, the usual case: coded without a Python loop.
        distinct, inverse = np.unique(values, return_inverse=True)
        codes = np.full(len(column), len(distinct), dtype=np.int64)
        codes[lengths == 1] = inverse.reshape(-1)
        return codes, [(v,) for v in distinct.tolist()] + [None], values.dtype
    ends = np.cumsum(lengths)
    listed = values.tolist()
    seen: dict[Any, int] = {}
    codes = np.empty(len(column), dtype=np.int64)
    for i, (end, length) in enumerate(zip(ends.tolist(), lengths.tolist(), strict=True)):
        group = tuple(listed[end - length : end]) if length else None
        codes[i] = seen.setdefault(group, len(seen))
    return codes, list(seen), values.dtype


class _Model:
    """One model's prediction and label signatures, as TFMA calls them."""

    def __init__(self, spec: Any, path: str) -> None:
        import tensorflow as tf

        self.spec = spec
        loaded = tf.saved_model.load(path)
        self._loaded = loaded  # the signatures hold only weak references to it
        name = spec.signature_name or "serving_default"
        self.predict = _serialized_examples_signature(loaded, name, path)
        self.preprocess = [
            _serialized_examples_signature(loaded, fn, path)
            for fn in spec.preprocessing_function_names
        ]
        self.transformed_keys: set[str] = set()
        for fn in self.preprocess:
            self.transformed_keys |= set(fn.structured_outputs)
        # TFMA merges the functions' outputs in order: the last one with the label gives it.
        labelled = [fn for fn in self.preprocess if spec.label_key in fn.structured_outputs]
        if not labelled:
            raise Unsupported(f"label {spec.label_key!r} is not an output of the preprocessing")
        self._label_fn = labelled[-1]
        if spec.prediction_key not in self.predict.structured_outputs:
            raise Unsupported(f"prediction {spec.prediction_key!r} is not an output of {name}")

    def labels_and_predictions(self, examples: Any) -> tuple[np.ndarray, np.ndarray]:
        """One batch's labels and predictions, calling only the signatures that give them."""
        label = self._label_fn(examples)[self.spec.label_key]
        prediction = self.predict(examples)[self.spec.prediction_key]
        return (
            _one_per_example(label, self.spec.label_key),
            _one_per_example(prediction, self.spec.prediction_key),
        )


def _serialized_examples_signature(loaded: Any, name: str, path: str) -> Any:
    import tensorflow as tf

    signature = loaded.signatures.get(name)
    if signature is None:
        raise Unsupported(f"{path} has no signature {name!r}")
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1 or next(iter(inputs.values())).dtype != tf.string:
        raise Unsupported(f"signature {name!r} does not take one tensor of serialized examples")
    input_name = next(iter(inputs))

    def call(examples: Any) -> Any:
        return signature(**{input_name: examples})

    call.structured_outputs = signature.structured_outputs  # type: ignore[attr-defined]
    call.input_name = input_name  # type: ignore[attr-defined]
    return call


def _one_per_example(tensor: Any, key: str) -> np.ndarray:
    import tensorflow as tf

    if not isinstance(tensor, tf.Tensor):
        raise Unsupported(f"{key!r} is not a dense tensor")
    values = tensor.numpy()
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise Unsupported(f"{key!r} is not one number per example (shape {tensor.shape})")
    return values


def _batches(files: Sequence[str], batch_size: int) -> Iterator[np.ndarray]:
    import tensorflow as tf

    for compression, group in _by_compression(files):
        dataset = tf.data.TFRecordDataset(group, compression_type=compression)
        for batch in dataset.batch(batch_size).prefetch(2):
            yield batch.numpy()


def _by_compression(files: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Files grouped by the compression Beam's AUTO reads them with (by suffix, as TFMA does)."""
    from apache_beam.io.filesystem import CompressionTypes

    readable = {
        CompressionTypes.UNCOMPRESSED: "",
        CompressionTypes.GZIP: "GZIP",
        # Beam's DEFLATE is zlib's stream with its header: TensorFlow's ZLIB.
        CompressionTypes.DEFLATE: "ZLIB",
    }
    groups: dict[str, list[str]] = {}
    for path in files:
        kind = CompressionTypes.detect_compression_type(path)
        if kind not in readable:
            raise Unsupported(f"{kind} compression of {path}")
        groups.setdefault(readable[kind], []).append(path)
    return list(groups.items())


class Accumulation:
    """The sums of TFMA's combiners of one plan, per slice, fed a batch at a time."""

    def __init__(self, eval_plan: Plan) -> None:
        self._plan = eval_plan
        self._specs = {spec.name: spec for spec in eval_plan.eval_config.model_specs}
        self._slices = _SliceIndex(eval_plan.slice_specs, eval_plan.slice_columns)
        self._counts: dict[int, _Grown] = {}
        self._histograms: dict[int, _Sums] = {}
        self._matrices: dict[int, _Grown] = {}
        for c in eval_plan.combiners:
            if isinstance(c, _ExampleCount):
                self._counts[c.index] = _Grown(1)
            else:
                self._histograms[c.index] = _Sums(3)
                self._matrices[c.index] = _Grown(4 * len(c.thresholds))

    def add(self, record_batch: Any, outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Adds a batch of eval examples.

        Args:
            record_batch: Their raw features (the slice columns), as tfx_bsl
                decodes tf.Examples.
            outputs: (labels, predictions), one number per example each, by
                model name.

        Raises:
            ValueError: A label outside [0, 1] or a NaN prediction.
            Unsupported: A slice column's values need TFMA's own path.
        """
        examples, slice_ids = self._slices.pairs(record_batch, record_batch.num_rows)
        count = len(self._slices.keys)
        converted = {}
        for name, (labels, predictions) in outputs.items():
            spec = self._specs[name]
            negative, positive = binary_tuples(
                labels, predictions, spec.label_key, spec.prediction_key
            )
            converted[name] = (predictions.astype(np.float64), negative, positive)
        for c in self._plan.combiners:
            if isinstance(c, _ExampleCount):
                self._counts[c.index].add(slice_ids, [np.ones(len(slice_ids))], count)
                continue
            p, negative, positive = converted[c.model]
            buckets = bucket_index(p, c.left, c.range, c.num_buckets)
            # A tuple of label 1 adds its weight to the labels, one of label 0
            # adds 0 * weight; both add prediction * weight and the weight.
            self._histograms[c.index].add(
                slice_ids * (c.num_buckets + 2) + buckets[examples],
                [
                    positive[examples],
                    (p * negative + p * positive)[examples],
                    (negative + positive)[examples],
                ],
            )
            weights = []
            for threshold in c.thresholds:
                above = p > threshold
                # TFMA's order: tp, tn, fp, fn.
                weights += [
                    np.where(above, positive, 0.0)[examples],
                    np.where(above, 0.0, negative)[examples],
                    np.where(above, negative, 0.0)[examples],
                    np.where(above, 0.0, positive)[examples],
                ]
            self._matrices[c.index].add(slice_ids, weights, count)

    def results(self) -> list[tuple[tuple[Any, ...], dict[Any, Any]]]:
        """Every slice's metrics, plots and attributions, as TFMA's evaluator outputs them.

        Each combiner's output is its own `extract_output` of the sums; then
        TFMA's derived metrics, its diffs against the baseline, and private
        metrics removed. Overall slice first, then by key.
        """
        from tensorflow_model_analysis.metrics import calibration_histogram

        is_private, _ = private_apis.tfma_metric_predicates()
        histograms = {index: sums.totals() for index, sums in self._histograms.items()}
        specs = self._plan.eval_config.model_specs
        baseline = next((spec.name for spec in specs if spec.is_baseline), None)
        results = []
        for s, slice_key in enumerate(self._slices.keys):
            metrics: dict[Any, Any] = {}
            for c in self._plan.combiners:
                if isinstance(c, _ExampleCount):
                    # TFMA's accumulator: 0.0 plus a numpy sum per example.
                    value = np.float64(_column(self._counts[c.index].values, s)[0])
                    metrics.update(c.combiner.extract_output(value))
                    continue
                keys, sums = histograms[c.index]
                width = c.num_buckets + 2
                lo, hi = np.searchsorted(keys, [s * width, (s + 1) * width])
                histogram = {
                    bucket: calibration_histogram.Bucket(bucket, labels, predictions, examples)
                    for bucket, labels, predictions, examples in zip(
                        (keys[lo:hi] - s * width).tolist(),
                        *(row[lo:hi].tolist() for row in sums),
                        strict=True,
                    )
                }
                counts = _column(self._matrices[c.index].values, s).tolist()
                matrices = private_apis.tfma_matrices_accumulator(
                    {t: tuple(counts[4 * i : 4 * i + 4]) for i, t in enumerate(c.thresholds)}
                )
                metrics.update(c.combiner.extract_output((histogram, matrices)))
            for derived in self._plan.derived:
                metrics.update(derived.result(metrics))
            metrics.update(_diffs(metrics, baseline))
            results.append((slice_key, {k: v for k, v in metrics.items() if not is_private(k)}))
        return sorted(results, key=lambda r: (len(r[0]), repr(r[0])))


def _column(values: np.ndarray, s: int) -> np.ndarray:
    return values[:, s] if s < values.shape[1] else np.zeros(values.shape[0])


def evaluate(
    eval_plan: Plan, model_paths: dict[str, str], files: Sequence[str], batch_size: int = BATCH_SIZE
) -> list[tuple[tuple[Any, ...], dict[Any, Any]]]:
    """Every slice's metrics, plots and attributions, as TFMA's evaluator outputs them.

    Args:
        eval_plan: From `plan`.
        model_paths: SavedModel folder of each model spec, by model name.
        files: The eval examples (TFRecords of serialized tf.Examples).
        batch_size: Examples per model call.

    Returns:
        (slice key, {MetricKey, PlotKey or AttributionsKey: value}) per
        slice (`Accumulation.results`).

    Raises:
        Unsupported: The models or the data need TFMA's own path.
        ValueError: Data TFMA fails on too (a label outside [0, 1]).
    """
    import tensorflow as tf
    from tensorflow_model_analysis.utils import model_util
    from tfx_bsl.coders import example_coder

    config = eval_plan.eval_config
    models = {spec.name: _Model(spec, model_paths[spec.name]) for spec in config.model_specs}
    for model in models.values():
        shared = set(eval_plan.slice_columns) & model.transformed_keys
        if shared:
            # TFMA slices on a transformed feature of that name first.
            raise Unsupported(f"slice column(s) {sorted(shared)} are also transformed features")
    accumulation = Accumulation(eval_plan)
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    for serialized in _batches(files, batch_size):
        record_batch = decoder.DecodeBatch(serialized.tolist())
        for model in models.values():
            for signature in (model.predict, *model.preprocess):
                if model_util.find_input_name_in_features(
                    set(record_batch.schema.names), signature.input_name
                ):
                    # TFMA would feed that feature to the signature instead.
                    raise Unsupported(
                        f"a raw feature is named like the input of {model.spec.name!r}"
                    )
        tensor = tf.constant(serialized)
        outputs = {name: model.labels_and_predictions(tensor) for name, model in models.items()}
        for name, arrays in outputs.items():
            if any(len(a) != len(serialized) for a in arrays):
                raise Unsupported(f"model {name!r} does not give one label and prediction each")
        accumulation.add(record_batch, outputs)
    return accumulation.results()


def _diffs(metrics: dict[Any, Any], baseline: str | None) -> dict[Any, Any]:
    """TFMA's diff metrics: candidate minus baseline, for every number both have."""
    if not baseline:
        return {}
    is_private, is_diffable = private_apis.tfma_metric_predicates()
    result = {}
    for key, value in metrics.items():
        if is_private(key) or key.is_diff or key.model_name == baseline:
            continue
        other = key.make_baseline_key(baseline)
        if other in metrics and is_diffable(value):
            result[key.make_diff_key()] = value - metrics[other]
    return result


def write(
    pipeline: Any,
    results: Sequence[tuple[tuple[Any, ...], dict[Any, Any]]],
    eval_config: Any,
    eval_shared_model: Any,
    output_uri: str,
) -> None:
    """Adds to `pipeline` the writing of `results` by TFMA's own writers.

    The metrics, plots and attributions are split by key type and the
    thresholds checked per slice as TFMA's evaluator does
    (`_filter_by_key_type`, `metrics_validator.validate_metrics`); the
    writers are those `ExtractEvaluateAndWriteResults` uses by default.
    """
    import apache_beam as beam
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types

    def of_kind(kind: str) -> list[tuple[tuple[Any, ...], dict[Any, Any]]]:
        def wanted(key: Any) -> bool:
            if isinstance(key, metric_types.PlotKey):
                return kind == constants.PLOTS_KEY
            if isinstance(key, metric_types.AttributionsKey):
                return kind == constants.ATTRIBUTIONS_KEY
            return kind == constants.METRICS_KEY

        return [(s, {k: v for k, v in values.items() if wanted(k)}) for s, values in results]

    metrics = of_kind(constants.METRICS_KEY)
    evaluation = {
        constants.METRICS_KEY: pipeline | "Metrics" >> beam.Create(metrics),
        constants.PLOTS_KEY: pipeline | "Plots" >> beam.Create(of_kind(constants.PLOTS_KEY)),
        constants.ATTRIBUTIONS_KEY: pipeline
        | "Attributions" >> beam.Create(of_kind(constants.ATTRIBUTIONS_KEY)),
        constants.VALIDATIONS_KEY: pipeline
        | "Validations"
        >> beam.Create([metrics_validator.validate_metrics(m, eval_config) for m in metrics]),
    }
    writers = tfma.default_writers(
        output_path=output_uri, eval_shared_model=eval_shared_model, eval_config=eval_config
    )
    _ = evaluation | "WriteResults" >> tfma.WriteResults(writers=writers)
