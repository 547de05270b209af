"""Every private API the project relies on still exists in the installed dependencies.

components/private_apis.py is the one place that touches them; this test
fails on an upgrade that removed or renamed one, before a pipeline run would.
"""

from __future__ import annotations

import copy
import inspect
import pickle

import numpy as np
import pytest

from components import private_apis


def test_tensorflow_autograph_rules():
    from tensorflow.python.autograph.core import config as autograph_config

    assert isinstance(autograph_config.CONVERSION_RULES, tuple)
    assert callable(autograph_config.DoNotConvert)


def test_tfx_launcher_keeps_its_node_and_launch():
    launcher = private_apis.launcher_class()
    assert callable(launcher.launch)
    assert "pipeline_node" in inspect.signature(launcher.__init__).parameters
    assert "self._pipeline_node = pipeline_node" in inspect.getsource(launcher.__init__)


def test_tfx_generic_executor_builds_fn_args_the_way_we_call_it():
    from tfx.components.trainer import executor

    source = inspect.getsource(executor.GenericExecutor.Do)
    assert "self._log_startup(input_dict, output_dict, exec_properties)" in source
    assert "self._GetFnArgs(input_dict, output_dict, exec_properties)" in source


def test_tfx_kubeflow_v2_entrypoint_body():
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as entrypoint

    assert "_run_executor(args, beam_args)" in inspect.getsource(entrypoint.main)
    args, _beam_args = private_apis.kubeflow_v2_flags(
        ["prog", "--executor_class_path", "a.B", "--json_serialized_invocation_args", "{}"]
    )
    assert args.executor_class_path == "a.B"


def test_kfp_client_keeps_its_pipelines_api_and_url_prefix():
    from kfp.client import client

    source = inspect.getsource(client.Client.__init__)
    assert "self._pipelines_api" in source
    assert callable(client.Client._get_url_prefix)


def test_cpython_runs_atexit_handlers_on_request():
    import atexit

    assert callable(atexit._run_exitfuncs)


def test_tfx_kubeflow_v2_entrypoint_looks_titles_up_in_its_table():
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils

    assert "compiler_utils.TITLE_TO_CLASS_PATH" in inspect.getsource(utils._retrieve_class_path)
    private_apis.kubeflow_v2_artifact_class("system.HTML", "pipeline.report.component.HtmlPage")
    assert compiler_utils.TITLE_TO_CLASS_PATH["system.HTML"].endswith("HtmlPage")


def test_tensorflow_restored_resources_keep_their_initializers_as_attributes():
    from tensorflow.python.checkpoint import trackable_view
    from tensorflow.python.saved_model import save
    from tensorflow.python.trackable import resource

    assert callable(trackable_view.TrackableView.descendants)
    assert callable(resource.CapturableResource._initialize)
    assert callable(resource.CapturableResource._create_resource)
    # Saving re-traces the initializer the object holds now.
    assert 'obj, "_initialize").get_concrete_function()' in inspect.getsource(save)


def test_beam_executors_still_ask_dependency_utils_for_their_package():
    from tfx.dsl.components.base import base_beam_executor

    source = inspect.getsource(base_beam_executor.BaseBeamExecutor.__init__)
    assert "dependency_utils.make_beam_dependency_flags(" in source


def test_in_process_runners_build_no_tfx_package_and_others_still_do(monkeypatch):
    from tfx.utils import dependency_utils

    built: list[str] = []
    monkeypatch.setattr(
        dependency_utils,
        "build_ephemeral_package",
        lambda: built.append("sdist") or "/tmp/tfx.tar.gz",
    )
    monkeypatch.setattr(
        dependency_utils, "make_beam_dependency_flags", dependency_utils.make_beam_dependency_flags
    )
    private_apis.skip_in_process_beam_package()
    private_apis.skip_in_process_beam_package()  # idempotent: one wrapper, not two

    for args in (
        ["--runner=FnApiRunner", "--direct_running_mode=in_memory"],
        ["--runner=direct", "--direct_running_mode=multi_processing"],
        ["--direct_num_workers=1"],  # no runner named: Beam's DirectRunner
    ):
        assert dependency_utils.make_beam_dependency_flags(args) == args
    assert built == []

    remote = ["--runner=DataflowRunner", "--project=p", "--region=r"]
    assert dependency_utils.make_beam_dependency_flags(remote) == [
        *remote,
        "--extra_package=/tmp/tfx.tar.gz",
    ]
    assert built == ["sdist"]


def _unpatched_view_as():  # type: ignore[no-untyped-def]
    from apache_beam.options.pipeline_options import PipelineOptions

    view_as = PipelineOptions.view_as
    return getattr(view_as, "__wrapped__", view_as)


def test_beam_view_as_still_builds_a_view_that_shares_all_options():
    import inspect

    source = inspect.getsource(_unpatched_view_as())
    assert "view = cls(self._flags)" in source
    assert "view._all_options = self._all_options" in source


def test_beam_option_views_are_reused_and_read_and_write_as_before(monkeypatch):
    from apache_beam.options.pipeline_options import (
        DirectOptions,
        PipelineOptions,
        StandardOptions,
        TypeOptions,
    )

    original = _unpatched_view_as()
    monkeypatch.setattr(PipelineOptions, "view_as", original)
    flags = ["--runner=FnApiRunner", "--direct_num_workers=2", "--no_pipeline_type_check"]
    classes = (StandardOptions, DirectOptions, TypeOptions)
    expected = {cls: original(PipelineOptions(flags), cls).get_all_options() for cls in classes}
    private_apis.reuse_beam_option_views()
    private_apis.reuse_beam_option_views()  # idempotent: one wrapper, not two
    assert PipelineOptions.view_as.__wrapped__ is original

    options = PipelineOptions(flags)
    for cls, values in expected.items():
        view = options.view_as(cls)
        assert isinstance(view, cls) and options.view_as(cls) is view
        assert view.get_all_options() == values
    assert options.view_as(TypeOptions).pipeline_type_check is False
    assert options.view_as(DirectOptions).direct_num_workers == 2
    # A write through one view is what every view and the object read.
    options.view_as(DirectOptions).direct_num_workers = 5
    assert options.view_as(DirectOptions).direct_num_workers == 5
    assert options.get_all_options()["direct_num_workers"] == 5
    # Another object, or other flags, get views of their own.
    other = PipelineOptions(["--direct_num_workers=3"])
    assert other.view_as(DirectOptions) is not options.view_as(DirectOptions)
    assert other.view_as(DirectOptions).direct_num_workers == 3
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    # Copied and pickled as Beam does (Pipeline deep-copies its options;
    # __getstate__ itself calls view_as): the same values, nothing extra.
    for copied in (copy.deepcopy(options), pickle.loads(pickle.dumps(options))):
        assert vars(copied).keys() == vars(PipelineOptions(flags)).keys()
        assert copied.get_all_options() == options.get_all_options()
        assert copied.view_as(DirectOptions).direct_num_workers == 5
        assert copied.view_as(DirectOptions) is copied.view_as(DirectOptions)


def test_tfma_computations_combiners_and_accumulators_are_read_as_the_batched_eval_reads_them():
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.metrics import metric_specs

    from components.evaluator.eval_config import EvalSpec, make_eval_config

    config = tfma.utils.update_eval_config_with_defaults(
        make_eval_config(EvalSpec("binary", "auc", ()), 0.5, 0.1), rubber_stamp=True
    )
    shared = tfma.default_eval_shared_model(
        eval_saved_model_path="/nonexistent", model_name="", eval_config=config
    )
    assert private_apis.tfma_eval_config_for_models(config, shared) == config
    separated = private_apis.tfma_separate_computations(
        metric_specs.to_computations(config.metrics_specs, eval_config=config)
    )
    count, counts = (c.combiner for c in separated.non_derived_computations)
    assert [k.name for c in separated.derived_computations for k in c.keys][-1] == "mean_label"
    assert not separated.cross_slice_computations and not separated.ci_derived_computations

    settings = private_apis.tfma_example_count_settings(count)
    assert settings is not None and settings["model_name"] == "" and not settings["output_name"]
    assert [k.name for k in settings["keys"]] == ["example_count"]
    assert private_apis.tfma_example_count_settings(counts) is None

    histogram = private_apis.tfma_histogram_settings(counts.histogram)
    assert (histogram["num_buckets"], histogram["left"], histogram["range"]) == (10000, 0.0, 1.0)
    assert histogram["fractional_labels"] and histogram["prediction_based_bucketing"]
    assert histogram["class_weights"] is None and histogram["aggregation_type"] is None
    matrices = private_apis.tfma_matrices_settings(counts.matrices)
    assert matrices["thresholds"] == [0.5] and matrices["fractional_labels"]
    assert matrices["example_id_key"] is None

    is_private, is_diffable = private_apis.tfma_metric_predicates()
    key = separated.derived_computations[0].keys[0]
    assert is_private(key) and key.name.startswith("_binary_confusion_matrices")
    assert not is_private(separated.derived_computations[1].keys[0])  # auc
    assert is_diffable(0.5) and is_diffable(np.float64(2)) and not is_diffable("text")

    accumulator = private_apis.tfma_matrices_accumulator({0.5: (1.0, 2.0, 3.0, 4.0)})
    (output,) = counts.matrices.extract_output(accumulator).values()
    assert output[0.5].matrix == (1.0, 2.0, 3.0, 4.0) and output[0.5].tp_examples == []


def test_beam_dofn_specs_are_answered_once_per_class_and_methods():
    import apache_beam as beam
    from apache_beam.transforms import userstate
    from apache_beam.transforms.userstate import BagStateSpec, TimerSpec

    bag = BagStateSpec("bag", beam.coders.VarIntCoder())
    timer = TimerSpec("timer", beam.TimeDomain.WATERMARK)
    state, timer_param = beam.DoFn.StateParam(bag), beam.DoFn.TimerParam(timer)

    class Stateful(beam.DoFn):
        def process(self, element, state=state):
            yield element

        @userstate.on_timer(timer)
        def fire(self, t=timer_param):
            yield 0

    class Plain(beam.DoFn):
        def process(self, element):
            yield element

    class Twice(beam.DoFn):
        def process(self, element, a=state, b=state):
            yield element

    private_apis.cache_beam_dofn_specs()
    private_apis.cache_beam_dofn_specs()  # idempotent: one wrapper, not two
    cached = userstate.get_dofn_specs
    uncached = cached.__wrapped__
    assert not getattr(uncached, "cached", False)
    answers = cached.answers
    before = len(answers)
    for fn in (Stateful(), Stateful(), Plain(), Plain()):
        assert cached(fn) == uncached(fn)
    assert len(answers) == before + 2  # one per class, not per instance
    assert cached(Stateful()) == ({bag}, {timer})
    assert cached(Plain()) == (set(), set())
    assert userstate.is_stateful_dofn(Stateful()) and not userstate.is_stateful_dofn(Plain())
    # A copy each time: a caller that changes its sets changes nothing cached.
    cached(Stateful())[0].clear()
    assert cached(Stateful())[0] == {bag}
    # An instance's own method attribute is part of the key.
    other = Plain()
    other.extra = Stateful().process
    assert cached(other)[0] == {bag}
    assert cached(Plain())[0] == set()
    # Errors are raised every time, never cached.
    for _ in range(2):
        with pytest.raises(ValueError, match="duplicate"):
            cached(Twice())
    # Beam's runtime checks wrap every DoFn in one class that forwards
    # `_inspect_process` to the DoFn inside: each answers for its own.
    from apache_beam.typehints.typecheck import OutputCheckWrapperDoFn

    for fn in (Stateful(), Plain(), Stateful(), Plain()):
        wrapped = OutputCheckWrapperDoFn(fn, "label")
        assert cached(wrapped) == uncached(wrapped)
    # (The wrapper forwards process, not the timer callback: Beam's answer.)
    assert cached(OutputCheckWrapperDoFn(Stateful(), "label")) == ({bag}, set())
    assert cached(OutputCheckWrapperDoFn(Plain(), "label")) == (set(), set())
    # A Map of a function (Beam's CallableWrapperDoFn has `_inspect_process`,
    # but its `process` is the function, not a bound method): one answer
    # for the class. A Map of a bound method: each instance answers, from
    # the method it wraps.
    from apache_beam.transforms.core import CallableWrapperDoFn

    assert cached(CallableWrapperDoFn(len)) == (set(), set())
    key = next(k for k in answers if k[0] is CallableWrapperDoFn)
    before = len(answers)  # (a Beam pipeline run earlier in this process may have made it)
    for fn in (len, lambda x: [x], len):
        mapped = CallableWrapperDoFn(fn)
        assert cached(mapped) == uncached(mapped) == (set(), set())
    assert len(answers) == before and answers[key] == (set(), set())
    for method in (Stateful().process, Plain().process, Stateful().process):
        mapped = CallableWrapperDoFn(method)
        assert cached(mapped) == uncached(mapped)
    assert cached(CallableWrapperDoFn(Stateful().process)) == ({bag}, set())
    assert cached(CallableWrapperDoFn(Plain().process)) == (set(), set())
    assert len(answers) == before


def test_tfdv_generators_are_driven_as_its_beam_transform_drives_them():
    import pyarrow as pa
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format
    from tensorflow_data_validation.statistics import stats_impl
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(
        'feature { name: "c" type: BYTES } feature { name: "n" type: INT }', schema_pb2.Schema()
    )
    generators = stats_impl.get_generators(tfdv.StatsOptions(schema=schema, num_top_values=3))
    combiners = [g for g in generators if isinstance(g, tfdv.CombinerStatsGenerator)]
    (top_k,) = [g for g in generators if isinstance(g, tfdv.TransformStatsGenerator)]

    settings = private_apis.tfdv_top_k_settings(top_k)
    assert settings["num_top_values"] == 3 and settings["num_rank_histogram_buckets"] == 1000
    assert settings["frequency_threshold"] == 1 and settings["weighted_frequency_threshold"] == 1.0
    assert not settings["bytes_features"] and not settings["categorical_numeric_types"]
    assert not settings["example_weight_map"].all_weight_features()

    batch = pa.RecordBatch.from_arrays(
        [pa.array([[b"a"], [b"b"], [b"a"]]), pa.array([[1], [2], None])], ["c", "n"]
    )
    tuples = private_apis.tfdv_top_k_tuples(
        ("slice", batch),
        settings["bytes_features"],
        settings["categorical_numeric_types"],
        settings["example_weight_map"],
    )
    assert sorted(tuples) == [(("slice", ("c",), b"a"), (2, 1)), (("slice", ("c",), b"b"), (1, 1))]

    combine = private_apis.tfdv_combiner_stats_fn(combiners, None)
    combine.setup()
    accumulator = combine.add_input(combine.create_accumulator(), batch)
    result = combine.extract_output(combine.compact(accumulator))
    assert result.num_examples == 3
    assert sorted(f.path.step[0] for f in result.features) == ["c", "n"]
