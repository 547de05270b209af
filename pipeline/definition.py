"""`create_pipeline(config)`: the one definition of the DAG.

The local runner and the Kubeflow compiler both call it; nothing here reads
globals, the environment or the clock. It reads one file, the curated schema,
whose text becomes part of the pipeline.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components import contracts, model_package
from components.baseline.component import BaselineLookup
from components.contracts import (
    ANOMALIES_GATE,
    BASELINE_LOOKUP,
    EVALUATOR,
    EXAMPLE_GEN,
    EXAMPLE_VALIDATOR,
    NODE_IDS,
    PUSHER,
    RUN_REPORT,
    SCHEMA_IMPORTER,
    STATISTICS_GEN,
    TRAINER,
    TRANSFORM,
)
from components.evaluator.component import Evaluator
from components.evaluator.eval_config import EvalSpec
from components.example_gen.component import CsvExampleGen
from components.gate.component import AnomaliesGate
from components.pusher.component import RegistryPusher
from components.schema_importer.component import SchemaImporter
from components.schema_io import parse_schema, read_schema
from components.statistics_gen.component import StatisticsGen
from components.trainer.component import Trainer
from components.training.custom_config import trainer_custom_config
from components.training.settings import TRANSFORMED
from components.workload import check_against_schema, schema_dtypes, serving_columns
from pipeline.config import PipelineConfig
from pipeline.report.component import RunReport

RUN_FN = "components.training.run.run_fn"

__all__ = [
    "ANOMALIES_GATE",
    "BASELINE_LOOKUP",
    "EVALUATOR",
    "EXAMPLE_GEN",
    "EXAMPLE_VALIDATOR",
    "NODE_IDS",
    "PUSHER",
    "RUN_REPORT",
    "SCHEMA_IMPORTER",
    "STATISTICS_GEN",
    "TRAINER",
    "TRANSFORM",
    "create_pipeline",
]

# What each run may set without recompiling (Kubeflow runtime parameters),
# with the config key that gives the compiled default.
DATA_ROOT = "data_root"
TRAIN_STEPS = contracts.TRAIN_STEPS
EVAL_STEPS = contracts.EVAL_STEPS
MIN_VALUE = contracts.MIN_VALUE
MAX_DROP = contracts.MAX_DROP
# Kubeflow's driver replaces a parameter that is exactly this with the run's id.
KFP_RUN_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
RUNTIME_PARAMETERS = {
    DATA_ROOT: "data.root",
    TRAIN_STEPS: "trainer.train_steps",
    EVAL_STEPS: "trainer.eval_steps",
    MIN_VALUE: "evaluator.min_value",
    MAX_DROP: "evaluator.max_drop",
}


def runtime_parameter_defaults(config: PipelineConfig) -> dict[str, Any]:
    """The runtime parameters' values under `config`, by parameter name."""
    values: dict[str, Any] = {}
    for name, key in RUNTIME_PARAMETERS.items():
        section, field = key.split(".")
        values[name] = getattr(getattr(config, section), field)
    return values


def _parameters(config: PipelineConfig, runtime: bool) -> dict[str, Any]:
    values = runtime_parameter_defaults(config)
    if not runtime:
        return values
    return {
        name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=type(value), default=value)
        for name, value in values.items()
    }


def metadata_spec_json(config: PipelineConfig) -> str:
    """The ML Metadata store description handed to components (no secrets)."""
    return json.dumps(asdict(config.metadata), sort_keys=True)


def read_schema_text(path: str) -> str:
    """Reads and checks the curated schema; the pipeline embeds its text.

    Raises:
        ConfigError: The file is missing or is not a valid Schema proto.
    """
    return read_schema(path)[0]


def serving_columns_json(config: PipelineConfig, schema_text: str) -> str:
    """The serving_raw inputs (name, type, fill) as JSON, checked against the schema.

    Raises:
        ConfigError: A configured column is not in the schema or does not suit its type.
    """
    schema = parse_schema(schema_text)
    check_against_schema(config.model, schema)
    return json.dumps([asdict(c) for c in serving_columns(config.model, schema_dtypes(schema))])


def make_example_gen(config: PipelineConfig, input_base: Any = None) -> CsvExampleGen:
    """CsvExampleGen over `input_base` (default `data.root`), split train/eval by hash.

    TFX's component with our executor (`components.example_gen`): the same
    examples in the same splits, read a batch of rows at a time.
    """
    split = tfx.proto.SplitConfig(
        splits=[
            tfx.proto.SplitConfig.Split(
                name=contracts.TRAIN_SPLIT, hash_buckets=config.data.train_buckets
            ),
            tfx.proto.SplitConfig.Split(
                name=contracts.EVAL_SPLIT, hash_buckets=config.data.eval_buckets
            ),
        ]
    )
    return CsvExampleGen(
        input_base=config.data.root if input_base is None else input_base,
        # CSV files only: a README or a notes file beside them is not data.
        input_config=tfx.proto.Input(
            splits=[tfx.proto.Input.Split(name="single_split", pattern=contracts.CSV_PATTERN)]
        ),
        output_config=tfx.proto.Output(split_config=split),
    ).with_id(EXAMPLE_GEN)


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    runtime_parameters: bool = False,
) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline.

    Args:
        config: The validated configuration.
        metadata_connection_config: The store the local runner records in;
            None for orchestrators that bring their own (Kubeflow).
        runtime_parameters: Make the RUNTIME_PARAMETERS settable per run
            (Kubeflow), with the config's values as defaults. The local
            runner takes plain values.

    Returns:
        ExampleGen -> statistics, schema, validation and the anomalies gate ->
        Transform -> Trainer -> baseline lookup -> Evaluator -> Pusher ->
        the run's report page.
    """
    params = _parameters(config, runtime_parameters)
    example_gen = make_example_gen(config, params[DATA_ROOT])

    schema_text = read_schema_text(config.data.schema_file)
    columns = serving_columns_json(config, schema_text)
    schema_importer = SchemaImporter(schema_text=schema_text).with_id(SCHEMA_IMPORTER)

    # With the schema, StatisticsGen counts the values of integer columns the
    # schema calls categorical (an integer label's classes among them). Our
    # executor computes TFDV's statistics without Beam on in-process runners
    # (components/statistics_gen).
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs[contracts.EXAMPLES],
        schema=schema_importer.outputs[contracts.SCHEMA],
    ).with_id(STATISTICS_GEN)

    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs[contracts.STATISTICS],
        schema=schema_importer.outputs[contracts.SCHEMA],
    ).with_id(EXAMPLE_VALIDATOR)

    anomalies_gate = AnomaliesGate(
        anomalies=example_validator.outputs[contracts.ANOMALIES],
        examples=example_gen.outputs[contracts.EXAMPLES],
        label_columns=",".join(config.model.label.columns),
    ).with_id(ANOMALIES_GATE)

    # The Trainer reads ExampleGen's examples through the transform graph
    # unless trainer.examples asks for them transformed beforehand: writing
    # every example out transformed took Transform from 8.7 s to 19.0 s at
    # 150,000 rows, for a Trainer that reads 128,000 of them once
    # (docs/benchmarks.md).
    materialize = config.trainer.examples == TRANSFORMED
    transform = tfx.components.Transform(
        examples=example_gen.outputs[contracts.EXAMPLES],
        schema=schema_importer.outputs[contracts.SCHEMA],
        preprocessing_fn=model_package.preprocessing_fn_path(config.model),
        custom_config=model_package.custom_config(config.model),
        # StatisticsGen has already described the raw data, and nothing reads
        # statistics of the transformed features: computing both again cost
        # about 2 s a run.
        disable_statistics=True,
        # Tracing the preprocessing_fn as a TF1 graph takes 4-5 s less than a
        # tf.function (13.7 s against 18.3 s on the taxi CSV). The TFLite
        # converter needs the TF2 form: it cannot initialise a TF1 graph's
        # vocabulary tables (docs/benchmarks.md).
        force_tf_compat_v1=not config.registry.tflite,
        materialize=materialize,
    ).with_id(TRANSFORM)
    # The gate has no output Transform consumes; this edge is what keeps
    # anything from being transformed, trained or pushed after an anomaly.
    transform.add_upstream_node(anomalies_gate)

    trainer = Trainer(
        run_fn=RUN_FN,
        examples=(
            transform.outputs[contracts.TRANSFORMED_EXAMPLES]
            if materialize
            else example_gen.outputs[contracts.EXAMPLES]
        ),
        transform_graph=transform.outputs[contracts.TRANSFORM_GRAPH],
        schema=schema_importer.outputs[contracts.SCHEMA],
        train_steps=params[TRAIN_STEPS],
        eval_steps=params[EVAL_STEPS],
        custom_config=trainer_custom_config(config.model, config.trainer),
    ).with_id(TRAINER)

    baseline_lookup = BaselineLookup(
        model=trainer.outputs[contracts.MODEL],
        pipeline=config.run.pipeline_name,
        metadata_connection=metadata_spec_json(config),
    ).with_id(BASELINE_LOOKUP)

    evaluator = Evaluator(
        examples=example_gen.outputs[contracts.EXAMPLES],
        model=trainer.outputs[contracts.MODEL],
        baseline_model=baseline_lookup.outputs[contracts.BASELINE],
        eval_spec=EvalSpec(
            config.model.task, config.evaluator.metric, config.model.slice_by
        ).to_json(),
        min_value=params[MIN_VALUE],
        max_drop=params[MAX_DROP],
    ).with_id(EVALUATOR)

    pusher = RegistryPusher(
        model=trainer.outputs[contracts.MODEL],
        model_blessing=evaluator.outputs[contracts.BLESSING],
        examples=example_gen.outputs[contracts.EXAMPLES],
        evaluation=evaluator.outputs[contracts.EVALUATION],
        registry_uri=config.registry.uri,
        model_name=config.registry.model_name,
        keep_versions=config.registry.keep_versions,
        warmup_requests=config.registry.warmup_requests,
        pipeline=config.run.pipeline_name,
        # Empty: the local runner hands the run id to the executor itself.
        pipeline_run_id=KFP_RUN_ID_PLACEHOLDER if runtime_parameters else "",
        data_root=params[DATA_ROOT],
        metric=config.evaluator.metric,
        min_value=params[MIN_VALUE],
        max_drop=params[MAX_DROP],
        serving_columns=columns,
        metadata_connection=metadata_spec_json(config),
        extra_ops=config.registry.extra_ops,
        allow_signature_change=config.registry.allow_signature_change,
        tflite=config.registry.tflite,
        tflite_eval_rows=config.registry.tflite_eval_rows,
        tflite_max_abs_diff=config.registry.tflite_max_abs_diff,
        tflite_max_metric_delta=config.registry.tflite_max_metric_delta,
    ).with_id(PUSHER)

    run_report = RunReport(
        pushed_model=pusher.outputs[contracts.PUSHED_MODEL],
        pipeline=config.run.pipeline_name,
        pipeline_run_id=KFP_RUN_ID_PLACEHOLDER if runtime_parameters else "",
        metric=config.evaluator.metric,
        min_value=params[MIN_VALUE],
        max_drop=params[MAX_DROP],
        slice_by=config.model.slice_by,
        metadata_connection=metadata_spec_json(config),
    ).with_id(RUN_REPORT)

    return tfx.dsl.Pipeline(
        pipeline_name=config.run.pipeline_name,
        pipeline_root=config.run.pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_importer,
            example_validator,
            anomalies_gate,
            transform,
            trainer,
            baseline_lookup,
            evaluator,
            pusher,
            run_report,
        ],
        enable_cache=config.run.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam.args),
    )
