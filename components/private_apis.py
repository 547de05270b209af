"""The private APIs of our dependencies that we rely on, one small function each.

Nothing else in the project touches a private attribute of TensorFlow, TFX, Beam,
the kfp SDK, TFMA or TFDV: each use is a function here that says why we need it
and what to check when that dependency is upgraded, so an upgrade breaks in one
named place. tests/test_private_apis.py checks that every one still exists in the
installed versions (TensorFlow 2.16, TFX 1.16, Beam 2.74, kfp 2.5, TFDV 1.16.1).

| function                   | dependency | private API                                  |
|----------------------------|------------|----------------------------------------------|
| `skip_tf_keras`            | TensorFlow | `autograph.core.config.CONVERSION_RULES`     |
| `launcher_class`           | TFX        | `portable.launcher.Launcher` (not in tfx.v1) |
| `launched_node`            | TFX        | `Launcher._pipeline_node`                    |
| `trainer_fn_args`          | TFX        | `GenericExecutor._log_startup, _GetFnArgs`   |
| `kubeflow_v2_flags`        | TFX        | `kubeflow_v2_run_executor._parse_flags`      |
| `run_kubeflow_v2_executor` | TFX        | `kubeflow_v2_run_executor._run_executor`     |
| `kubeflow_v2_artifact_class` | TFX      | `compiler_utils.TITLE_TO_CLASS_PATH` (table) |
| `kfp_create_pipeline`      | kfp        | `Client._pipelines_api`                      |
| `kfp_ui_url`               | kfp        | `Client._get_url_prefix`                     |
| `run_atexit_handlers`      | CPython    | `atexit._run_exitfuncs`                      |
| `inline_table_vocabularies` | TensorFlow | `TrackableView`, `RestoredResource._initialize` |
| `skip_in_process_beam_package` | TFX   | `dependency_utils.make_beam_dependency_flags` (patched) |
| `reuse_beam_option_views`  | Beam       | `PipelineOptions.view_as` (patched), `_all_options` |
| `cache_beam_dofn_specs`    | Beam       | `userstate.get_dofn_specs` (patched)           |
| `tfx_example_partition`    | TFX        | `base_example_gen_executor._PartitionFn`       |
| `tfma_separate_computations` | TFMA     | `_filter_and_separate_computations` (evaluator) |
| `tfma_metric_predicates`   | TFMA       | `_is_private_metrics`, `_is_metric_diffable`   |
| `tfma_eval_config_for_models` | TFMA    | `model_eval_lib._update_eval_config_with_defaults` |
| `tfma_example_count_settings` | TFMA    | `_ExampleCountCombiner` and its attributes     |
| `tfma_histogram_settings`  | TFMA       | `_CalibrationHistogramCombiner`'s attributes   |
| `tfma_matrices_settings`   | TFMA       | `_BinaryConfusionMatrixCombiner`'s attributes  |
| `tfma_matrices_accumulator` | TFMA      | `aggregates.binary_confusion_matrices._ThresholdEntry` |
| `tfdv_combiner_stats_fn`   | TFDV       | `stats_impl._CombinerStatsGeneratorsCombineFn` |
| `tfdv_top_k_settings`      | TFDV       | `_ComputeTopKUniquesStats`'s attributes        |
| `tfdv_top_k_tuples`        | TFDV       | `top_k_uniques_stats_generator._to_topk_tuples` |

Imports happen inside the functions: the CLI's light paths import this
module without loading TensorFlow or TFX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfx.proto.orchestration import pipeline_pb2


def skip_tf_keras() -> None:
    """Keeps AutoGraph from converting tf-keras' own code (idempotent).

    AutoGraph leaves the `keras` package alone (it is on TensorFlow's
    DoNotConvert list), but TF 2.16 ships Keras 2 as `tf_keras`, which is not
    on the list. Every tf.function that calls into it, such as Keras' train
    step and our serving signatures, then re-converts large parts of tf_keras
    from source: here that cost about 20 s before the first training step of
    every run, and more again at export. Adding `tf_keras` to the list
    restores how Keras 2 ran inside TensorFlow up to 2.15.

    On a TensorFlow upgrade check that `tensorflow/python/autograph/core/
    config.py` still defines `CONVERSION_RULES` and `DoNotConvert`, and
    whether tf_keras joined its list (then this can go).
    """
    from tensorflow.python.autograph.core import config as autograph_config

    rules = autograph_config.CONVERSION_RULES
    if any(
        isinstance(rule, autograph_config.DoNotConvert) and rule.matches("tf_keras")
        for rule in rules
    ):
        return
    autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert("tf_keras"), *rules)


def launcher_class() -> Any:
    """TFX's portable `Launcher`, whose `launch` the local runner calls once per node.

    `pipeline.progress` wraps its `launch` for the length of a run, because
    TFX's LocalDagRunner has no callback API. `tfx.v1` does not export it.

    On a TFX upgrade check that `tfx/orchestration/portable/launcher.py`
    still defines `Launcher.launch()` and that `local_dag_runner.py` still
    calls it per node.
    """
    from tfx.orchestration.portable import launcher

    return launcher.Launcher


def launched_node(launcher: Any) -> pipeline_pb2.PipelineNode:
    """The pipeline node a TFX portable `Launcher` runs: its `_pipeline_node`.

    `pipeline.progress` wraps `Launcher.launch` and must then tell which
    node of which run the launcher runs. The node's IR holds both: its id,
    and its contexts, which the runner has resolved for this run (the
    `pipeline_run` context's name is the run id), so ML Metadata can be read
    for this run alone.

    On a TFX upgrade check, in `tfx/orchestration/portable/launcher.py`, that
    `Launcher.__init__` still keeps its `pipeline_node` argument as
    `self._pipeline_node`, and in `tfx/orchestration/local/local_dag_runner.py`
    that the pipeline-run-id runtime parameter is still substituted into the
    IR before the launchers are built (tests/test_mlmd.py runs a real
    LocalDagRunner through this).

    Args:
        launcher: A `tfx.orchestration.portable.launcher.Launcher`.

    Returns:
        Its `PipelineNode` proto.
    """
    return launcher._pipeline_node


def trainer_fn_args(
    executor: Any,
    input_dict: dict[str, list[Any]],
    output_dict: dict[str, list[Any]],
    exec_properties: dict[str, Any],
) -> Any:
    """The FnArgs TFX's GenericExecutor would hand `run_fn`, after its start-up log.

    Our Trainer executor hands the same FnArgs to launched workers instead of
    calling `run_fn` itself, so every worker trains on exactly what TFX would
    have given it in-process.

    On a TFX upgrade check that `tfx/components/trainer/executor.py`'s
    `GenericExecutor.Do` still calls `self._log_startup(...)` and
    `self._GetFnArgs(...)` with these arguments before `run_fn`.
    """
    executor._log_startup(input_dict, output_dict, exec_properties)
    return executor._GetFnArgs(input_dict, output_dict, exec_properties)


def kubeflow_v2_flags(argv: list[str]) -> Any:
    """Parses the container arguments the way TFX's Kubeflow v2 entrypoint does.

    On a TFX upgrade check `tfx/orchestration/kubeflow/v2/container/
    kubeflow_v2_run_executor.py` for `_parse_flags` and the flags it defines.
    """
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    return kubeflow_v2_run_executor._parse_flags(argv)


def run_kubeflow_v2_executor(args: Any, beam_args: list[str]) -> None:
    """Runs an executor as TFX's Kubeflow v2 entrypoint does, after our input-type repair.

    TFX offers no public entry besides its `main()`, which would parse the
    arguments again without the repair (pipeline/kubeflow/entrypoint.py).

    On a TFX upgrade check that `_run_executor(args, beam_args)` is still
    the body of that module's `main`.
    """
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    kubeflow_v2_run_executor._run_executor(args, beam_args)


def kubeflow_v2_artifact_class(title: str, class_path: str) -> None:
    """Tells TFX's Kubeflow v2 entrypoint which class a schema title stands for.

    The entrypoint imports a custom artifact's class from its schema title
    (`kubeflow_v2_entrypoint_utils._retrieve_class_path`), looking in
    `TITLE_TO_CLASS_PATH` first. A `system.*` title, the type the Kubeflow
    UI renders, is no import path, so it is entered in that table here.

    On a TFX upgrade check that `_retrieve_class_path` still looks the title
    up in `compiler_utils.TITLE_TO_CLASS_PATH` before importing it.
    """
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    compiler_utils.TITLE_TO_CLASS_PATH[title] = class_path


def kfp_create_pipeline(client: Any, body: Any) -> Any:
    """Creates an empty pipeline (no version yet) through the KFP REST API.

    kfp 2.5's `Client` only creates a pipeline together with its first
    version from a file; `submit` creates the pipeline first so that every
    upload is a version of it.

    On a kfp upgrade check that `kfp/client/client.py` still keeps the
    generated `PipelineServiceApi` as `self._pipelines_api`.
    """
    return client._pipelines_api.create_pipeline(body=body)


def kfp_ui_url(client: Any) -> str:
    """The KFP UI's base URL, for links to runs.

    On a kfp upgrade check `Client._get_url_prefix` in `kfp/client/client.py`.
    """
    return str(client._get_url_prefix())


def run_atexit_handlers() -> None:
    """Runs the registered atexit handlers now, as interpreter shutdown would.

    `components.process` leaves with `os._exit` to skip tensorflow-io's
    crashing C++ teardown, and `os._exit` skips atexit too; the handlers
    (Beam's, TensorFlow's, logging's) still get to run first. On a Python
    upgrade: `atexit._run_exitfuncs` is CPython's, present since 3.0.
    """
    import atexit

    atexit._run_exitfuncs()


# Beam runners that run every bundle in this machine's own Python environment:
# nothing they start installs a staged package, so there is nothing to build.
IN_PROCESS_BEAM_RUNNERS = frozenset(
    {"directrunner", "fnapirunner", "bundlebaseddirectrunner", "switchingdirectrunner"}
)


def skip_in_process_beam_package() -> None:
    """Stops TFX building a throwaway sdist of itself for Beam runners that never stage one.

    Every TFX Beam executor (ExampleGen, StatisticsGen, Transform, the
    Evaluator) calls `dependency_utils.make_beam_dependency_flags` when it
    starts. Unless the Beam args already name a package or container, that
    copies the whole installed `tfx` tree and runs `setup.py sdist` on it
    (about 1.4 s of a 2-core machine per component) so that remote workers
    (Dataflow, Flink, Spark) can install TFX. The in-process runners
    (FnApiRunner and the DirectRunner's modes, including multi_processing,
    whose workers are this interpreter's subprocesses) never install it.
    After this call the function returns the args unchanged for those
    runners, and builds the package as before for every other runner.
    Idempotent.

    On a TFX upgrade check that `tfx/dsl/components/base/base_beam_executor.py`
    still calls `dependency_utils.make_beam_dependency_flags(args)` through
    the module attribute, and what the function returns.
    """
    from tfx.utils import dependency_utils

    build = dependency_utils.make_beam_dependency_flags
    if getattr(build, "skips_in_process", False):
        return

    def make_beam_dependency_flags(beam_pipeline_args: list[str]) -> list[str]:
        if beam_runner(beam_pipeline_args) in IN_PROCESS_BEAM_RUNNERS:
            return list(beam_pipeline_args)
        return build(beam_pipeline_args)

    make_beam_dependency_flags.skips_in_process = True  # type: ignore[attr-defined]
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags


def reuse_beam_option_views() -> None:
    """Makes `PipelineOptions.view_as` return one view per options object and class.

    Beam calls `options.view_as(TypeOptions)` on every `apply` and type
    check while a pipeline is built, and each call builds an argparse parser
    and parses the flags again: about 2.8 s of CPU in a small pipeline run
    here (tf.Transform's analyzers apply hundreds of transforms). A view
    holds nothing of its own: reads and writes go to the `_all_options`
    dict it shares with the object it came from, and its parsed flags
    depend only on the class and `_flags`. So the first view of a class is
    kept for that object (weakly: it goes with the object) and returned
    again while `_flags` is unchanged. Idempotent.

    On a Beam upgrade check that `view_as` still builds `cls(self._flags)`
    and shares `_all_options` with it.
    """
    import weakref

    from apache_beam.options.pipeline_options import PipelineOptions

    build = PipelineOptions.view_as
    if getattr(build, "reuses_views", False):
        return

    # Kept beside the objects, not in them: Beam deep-copies and pickles
    # options through their __dict__ (and __getstate__ calls view_as).
    views_of: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()

    def view_as(self: Any, cls: Any) -> Any:
        flags = self._flags
        key = (cls, None if flags is None else tuple(flags))
        views = views_of.get(self)
        if views is None:
            views = views_of[self] = {}
        view = views.get(key)
        if view is None or view._all_options is not self._all_options:
            view = views[key] = build(self, cls)
        return view

    view_as.reuses_views = True  # type: ignore[attr-defined]
    view_as.__wrapped__ = build  # type: ignore[attr-defined]
    PipelineOptions.view_as = view_as


def cache_beam_dofn_specs() -> None:
    """Makes Beam's `userstate.get_dofn_specs` answer once per DoFn class and methods.

    Beam asks whether a DoFn uses state or timers when a ParDo is built, when
    the pipeline is translated, and again for every DoFn of every bundle it
    runs (the in-process runner builds a bundle processor per bundle).
    Each answer walks `dir(dofn)` and calls `inspect.signature` on every
    method: 2.4 s of CPU in a run of the taxi default here, about a tenth of
    it. The answer depends only on the methods' signatures (their
    `DoFn.StateParam` and `DoFn.TimerParam` defaults), so it is kept per
    DoFn class and the functions behind its bound methods (an instance's own
    method attributes included), and a copy handed out each time. A DoFn
    whose bound method `m` has an `_inspect_m` beside it (Beam's runtime
    type-check wrapper; a Map or FlatMap of a bound method) answers for
    itself every time: Beam reads that method's parameters from the
    instance. A Map or FlatMap of a plain function has no bound `process`,
    and is answered per class like any other (it used to be answered every
    time: 2.3 s of a 1x run's Transform, docs/benchmarks.md). Errors
    (duplicate parameters) are raised again on every call. Idempotent.

    On a Beam upgrade check that `apache_beam/transforms/userstate.py`'s
    `get_dofn_specs` still reads only the bound methods' defaults, and that
    its callers reach it through the module attribute.
    """
    import types

    from apache_beam.transforms import userstate

    compute = userstate.get_dofn_specs
    if getattr(compute, "cached", False):
        return
    answers: dict[Any, tuple[Any, Any]] = {}

    def get_dofn_specs(dofn: Any) -> tuple[set[Any], set[Any]]:
        methods = []
        for name in dir(dofn):
            value = getattr(dofn, name, None)
            if isinstance(value, types.MethodType):
                if hasattr(dofn, f"_inspect_{name}"):
                    # Beam reads this method's parameters from
                    # `_inspect_<method>()` (`core.get_function_arguments`):
                    # a type-checking wrapper forwards it to the DoFn it
                    # wraps, a Map of a bound method to that method. The
                    # answer is the instance's, not the class's.
                    return compute(dofn)
                methods.append((name, value.__func__))
        key = (type(dofn), tuple(methods))
        try:
            answer = answers.get(key)
        except TypeError:  # an unhashable method object
            return compute(dofn)
        if answer is None:
            answer = answers[key] = compute(dofn)
        return set(answer[0]), set(answer[1])

    get_dofn_specs.cached = True  # type: ignore[attr-defined]
    get_dofn_specs.answers = answers  # type: ignore[attr-defined]
    get_dofn_specs.__wrapped__ = compute  # type: ignore[attr-defined]
    userstate.get_dofn_specs = get_dofn_specs


def tfx_example_partition() -> Any:
    """TFX's ExampleGen partition function: which output split a record goes to.

    Our ExampleGen executor writes the splits itself on in-process runners
    and must put every record where TFX's `GenerateExamplesByBeam` would:
    `_PartitionFn(record, num_partitions, buckets, split_config)` hashes the
    record's bytes (or its partition feature) into the cumulative hash
    buckets.

    On a TFX upgrade check `_PartitionFn` and `_GeneratePartitionKey` in
    `tfx/components/example_gen/base_example_gen_executor.py`, and that
    `GenerateExamplesByBeam` still splits with it.
    """
    from tfx.components.example_gen import base_example_gen_executor

    return base_example_gen_executor._PartitionFn


def beam_runner(beam_pipeline_args: list[str]) -> str:
    """The runner class Beam args pick, lower-cased (`directrunner` when none is named).

    Beam itself takes `--runner=direct`, `DirectRunner` or a dotted path alike.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(flags=beam_pipeline_args).view_as(StandardOptions).runner
    name = (runner or "DirectRunner").rsplit(".", 1)[-1].lower()
    return name if name.endswith("runner") else name + "runner"


def inline_table_vocabularies(loaded: Any) -> int:
    """Makes the hash tables of a loaded SavedModel initialize from constants, not files.

    tf.Transform's vocabularies are tables filled from asset files
    (`InitializeTableFromTextFileV2`). The TFLite converter (TF 2.16) keeps
    the lookups but drops such an initializer, so the converted model fails
    with "hashtable need to be initialized before using"; tables filled from
    constants (`LookupTableImportV2`) convert into TFLite's own initializer
    subgraph. This reads each table's contents from the loaded model and
    replaces its restored initializer with one that imports them, so that
    re-saving `loaded` writes a SavedModel the converter can take.

    A table restored twice (the transform layer reached by two paths) has
    an initializer that fills the first copy; its contents are read from
    the handle the initializer captures.

    On a TensorFlow upgrade check that `tensorflow/python/checkpoint/
    trackable_view.py` still has `TrackableView.descendants`, that
    `RestoredResource` (`python/trackable/resource.py`) still keeps its
    restored `_create_resource` and `_initialize` functions as attributes
    that saving re-traces, and whether the converter now freezes text-file
    initializers itself (then this can go).

    Returns:
        How many tables were changed.
    """
    import tensorflow as tf
    from tensorflow.python.checkpoint import trackable_view

    def nodes(function: Any) -> list[Any]:
        found = []
        for concrete in function.concrete_functions:
            graph = concrete.graph.as_graph_def()
            found += [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
        return found

    def importer(resource: Any, keys: Any, values: Any) -> Any:
        @tf.function(input_signature=[])
        def _initialize() -> Any:
            tf.raw_ops.LookupTableImportV2(
                table_handle=resource.resource_handle,
                keys=tf.constant(keys),
                values=tf.constant(values),
            )
            return tf.constant(1)

        return _initialize

    changed = 0
    for resource in trackable_view.TrackableView(loaded).descendants():
        initialize = getattr(resource, "_initialize", None)
        if not isinstance(resource, tf.saved_model.experimental.TrackableResource) or not (
            initialize is not None
            and any(n.op == "InitializeTableFromTextFileV2" for n in nodes(initialize))
        ):
            continue
        tables = [n for n in nodes(resource._create_resource) if n.op == "HashTableV2"]
        if len(tables) != 1:
            continue
        filled = [
            t
            for concrete in initialize.concrete_functions
            for t in concrete.captured_inputs
            if t.dtype == tf.resource
        ]
        keys, values = tf.raw_ops.LookupTableExportV2(
            table_handle=filled[0] if filled else resource.resource_handle,
            Tkeys=tf.dtypes.as_dtype(tables[0].attr["key_dtype"].type),
            Tvalues=tf.dtypes.as_dtype(tables[0].attr["value_dtype"].type),
        )
        resource._initialize = importer(resource, keys.numpy(), values.numpy())
        changed += 1
    return changed


def tfma_separate_computations(computations: Any) -> Any:
    """TFMA's split of metric computations into combiners and what derives from them.

    The batched evaluator (`components.evaluator.batched`) runs the same
    combiners and derivations as TFMA's evaluator, in the same order, with
    the same duplicates dropped; this is the function that decides them.

    On a TFMA upgrade check `_filter_and_separate_computations` in
    `tensorflow_model_analysis/evaluators/metrics_plots_and_validations_evaluator.py`
    and the four fields it returns.
    """
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator

    return metrics_plots_and_validations_evaluator._filter_and_separate_computations(computations)


def tfma_metric_predicates() -> tuple[Any, Any]:
    """TFMA's evaluator's rules: (is this metric key private, can this value be diffed).

    The batched evaluator drops the private metrics and diffs a candidate's
    metrics against the baseline's by the same rules as TFMA's evaluator.

    On a TFMA upgrade check `_is_private_metrics` and `_is_metric_diffable`
    in `tensorflow_model_analysis/evaluators/metrics_plots_and_validations_evaluator.py`,
    and that `_AddDerivedCrossSliceAndDiffMetrics` still uses them.
    """
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator

    return (
        metrics_plots_and_validations_evaluator._is_private_metrics,
        metrics_plots_and_validations_evaluator._is_metric_diffable,
    )


def tfma_eval_config_for_models(eval_config: Any, eval_shared_models: Any) -> Any:
    """The EvalConfig TFMA's `ExtractEvaluateAndWriteResults` evaluates and writes.

    It fills the config's defaults once more from the models (the baseline,
    rubber stamping) before anything runs; the batched evaluator evaluates
    and writes that same config.

    On a TFMA upgrade check `_update_eval_config_with_defaults` in
    `tensorflow_model_analysis/api/model_eval_lib.py` and that
    `ExtractEvaluateAndWriteResults` still calls it.
    """
    from tensorflow_model_analysis.api import model_eval_lib

    return model_eval_lib._update_eval_config_with_defaults(eval_config, eval_shared_models)


def tfma_example_count_settings(combiner: Any) -> dict[str, Any] | None:
    """What a TFMA example-count combiner counts; None for any other combiner.

    On a TFMA upgrade check `_ExampleCountCombiner.__init__` in
    `tensorflow_model_analysis/metrics/example_count.py`.
    """
    from tensorflow_model_analysis.metrics import example_count

    if type(combiner) is not example_count._ExampleCountCombiner:
        return None
    return {
        "model_name": combiner._model_name,
        "output_name": combiner._output_name,
        "keys": list(combiner._keys),
        "example_weighted": combiner._example_weighted,
    }


def tfma_histogram_settings(combiner: Any) -> dict[str, Any]:
    """The settings of a TFMA calibration-histogram combiner.

    On a TFMA upgrade check `_CalibrationHistogramCombiner.__init__` and
    `_bucket_index` in `tensorflow_model_analysis/metrics/calibration_histogram.py`.
    """
    from tensorflow_model_analysis.metrics import calibration_histogram

    if type(combiner) is not calibration_histogram._CalibrationHistogramCombiner:
        raise TypeError(f"not TFMA's calibration histogram combiner: {type(combiner).__name__}")
    return {
        "key": combiner._key,
        "num_buckets": combiner._num_buckets,
        "left": combiner._left,
        "range": combiner._range,
        "prediction_based_bucketing": combiner._prediction_based_bucketing,
        "fractional_labels": combiner._fractional_labels,
        "class_weights": combiner._class_weights,
        "aggregation_type": combiner._aggregation_type,
        "example_weighted": combiner._example_weighted,
    }


def tfma_matrices_settings(combiner: Any) -> dict[str, Any]:
    """The settings of a TFMA binary-confusion-matrices combiner (matrices at given thresholds).

    On a TFMA upgrade check `_BinaryConfusionMatrixCombiner.__init__` in
    `tensorflow_model_analysis/metrics/binary_confusion_matrices.py` and
    `BinaryConfusionMatrices.__init__` in
    `tensorflow_model_analysis/contrib/aggregates/binary_confusion_matrices.py`.
    """
    from tensorflow_model_analysis.metrics import binary_confusion_matrices

    if type(combiner) is not binary_confusion_matrices._BinaryConfusionMatrixCombiner:
        raise TypeError(f"not TFMA's binary confusion matrix combiner: {type(combiner).__name__}")
    return {
        "key": combiner._key,
        "thresholds": list(combiner._binary_confusion_matrices._thresholds),
        "fractional_labels": combiner._enable_fractional_labels,
        "example_id_key": combiner._example_id_key,
        "class_weights": combiner._class_weights,
        "aggregation_type": combiner._aggregation_type,
        "example_weighted": combiner._example_weighted,
    }


def tfma_matrices_accumulator(counts: dict[float, tuple[float, float, float, float]]) -> Any:
    """A TFMA binary-confusion-matrices accumulator holding these (tp, tn, fp, fn) per threshold.

    No example ids: the batched evaluator supports matrices without them.

    On a TFMA upgrade check `_ThresholdEntry` and `MatrixAccumulator` in
    `tensorflow_model_analysis/contrib/aggregates/binary_confusion_matrices.py`.
    """
    from tensorflow_model_analysis.contrib.aggregates import binary_confusion_matrices as bcm

    return {
        threshold: bcm._ThresholdEntry(
            bcm.Matrix(tp=tp, tn=tn, fp=fp, fn=fn),
            tp_examples=[],
            tn_examples=[],
            fp_examples=[],
            fn_examples=[],
        )
        for threshold, (tp, tn, fp, fn) in counts.items()
    }


def tfdv_combiner_stats_fn(generators: list[Any], desired_batch_size: int | None) -> Any:
    """TFDV's CombineFn over its combiner generators, as `GenerateStatistics` builds it.

    Our StatisticsGen executor drives it outside Beam (create, add a record
    batch at a time, compact, extract), so the combiners batch, merge and
    finish exactly as in TFDV's Beam transform.

    On a TFDV upgrade check `_CombinerStatsGeneratorsCombineFn` and how
    `GenerateSlicedStatisticsImpl.expand` builds it in
    `tensorflow_data_validation/statistics/stats_impl.py`.
    """
    from tensorflow_data_validation.statistics import stats_impl

    return stats_impl._CombinerStatsGeneratorsCombineFn(generators, desired_batch_size)


def tfdv_top_k_settings(generator: Any) -> dict[str, Any]:
    """The settings of TFDV's exact top-k and uniques generator (`TopKUniquesStatsGenerator`).

    On a TFDV upgrade check `_ComputeTopKUniquesStats.__init__` and `expand`
    in `tensorflow_data_validation/statistics/generators/
    top_k_uniques_stats_generator.py`, and that the generator keeps it as
    its `ptransform`.
    """
    transform = generator.ptransform
    return {
        "bytes_features": transform._bytes_features,
        "categorical_numeric_types": transform._categorical_numeric_types,
        "example_weight_map": transform._example_weight_map,
        "num_top_values": transform._num_top_values,
        "frequency_threshold": transform._frequency_threshold,
        "weighted_frequency_threshold": transform._weighted_frequency_threshold,
        "num_rank_histogram_buckets": transform._num_rank_histogram_buckets,
    }


def tfdv_top_k_tuples(
    sliced_batch: tuple[Any, Any],
    bytes_features: Any,
    categorical_numeric_types: Any,
    example_weight_map: Any,
) -> Any:
    """TFDV's ((slice, feature steps, value), (count, weight)) pairs of one record batch.

    The features and values TFDV's exact top-k counts, as its Beam
    transform's first step yields them.

    On a TFDV upgrade check `_to_topk_tuples` in
    `tensorflow_data_validation/statistics/generators/top_k_uniques_stats_generator.py`.
    """
    from tensorflow_data_validation.statistics.generators import top_k_uniques_stats_generator

    return top_k_uniques_stats_generator._to_topk_tuples(
        sliced_batch,
        bytes_features=bytes_features,
        categorical_numeric_types=categorical_numeric_types,
        example_weight_map=example_weight_map,
    )
