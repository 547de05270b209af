"""`create_pipeline(config)`: the one definition of the DAG.

The local runner and the Kubeflow compiler both call it; nothing here reads
globals, the environment or the clock. It reads one file, the curated schema,
whose text becomes part of the pipeline.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.baseline.component import BaselineLookup
from components.evaluator.component import Evaluator
from components.gate.component import AnomaliesGate
from components.pusher.component import RegistryPusher
from components.schema_importer.component import SchemaImporter, parse_schema
from components.trainer.component import Trainer
from components.trainer.launch import KubernetesWorkers, LaunchConfig
from pipeline.config import PipelineConfig

PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "components.train.run_fn"

# Node ids, stable across versions: ML Metadata contexts, caching and the
# compiled Kubeflow tasks are keyed by them.
EXAMPLE_GEN = "example_gen"
STATISTICS_GEN = "statistics_gen"
SCHEMA_IMPORTER = "schema_importer"
EXAMPLE_VALIDATOR = "example_validator"
ANOMALIES_GATE = "anomalies_gate"
TRANSFORM = "transform"
TRAINER = "trainer"
BASELINE_LOOKUP = "baseline_lookup"
EVALUATOR = "evaluator"
PUSHER = "pusher"

NODE_IDS = (
    EXAMPLE_GEN,
    SCHEMA_IMPORTER,
    STATISTICS_GEN,
    EXAMPLE_VALIDATOR,
    ANOMALIES_GATE,
    TRANSFORM,
    TRAINER,
    BASELINE_LOOKUP,
    EVALUATOR,
    PUSHER,
)


# What each run may set without recompiling (Kubeflow runtime parameters),
# with the config key that gives the compiled default.
DATA_ROOT = "data_root"
TRAIN_STEPS = "train_steps"
EVAL_STEPS = "eval_steps"
MIN_AUC = "min_auc"
MAX_AUC_DROP = "max_auc_drop"
# Kubeflow's driver replaces a parameter that is exactly this with the run's id.
KFP_RUN_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
RUNTIME_PARAMETERS = {
    DATA_ROOT: "data.root",
    TRAIN_STEPS: "trainer.train_steps",
    EVAL_STEPS: "trainer.eval_steps",
    MIN_AUC: "evaluator.min_auc",
    MAX_AUC_DROP: "evaluator.max_auc_drop",
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
        ValueError: The file is missing or is not a valid Schema proto.
    """
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(
            f"cannot read the curated schema data.schema_file={path}: {e.strerror}"
        ) from e
    parse_schema(text, source=f"data.schema_file={path}")
    return text


def launch_config(config: PipelineConfig) -> LaunchConfig:
    """Where the Trainer runs its workers: `trainer.workers/launcher/...` of the config."""
    trainer = config.trainer
    pods = trainer.kubernetes
    return LaunchConfig(
        workers=trainer.workers,
        launcher=trainer.launcher,
        max_restarts=trainer.max_restarts,
        tpu=trainer.tpu,
        kubernetes=KubernetesWorkers(
            image=pods.image,
            namespace=pods.namespace,
            service_account=pods.service_account,
            port=pods.port,
            cpu_request=pods.resources.cpu_request,
            cpu_limit=pods.resources.cpu_limit,
            memory_request_gb=pods.resources.memory_request_gb,
            memory_limit_gb=pods.resources.memory_limit_gb,
            accelerator_count=pods.resources.accelerator_count,
            accelerator_type=pods.resources.accelerator_type,
            node_selector=dict(pods.node_selector),
        ),
    )


def make_example_gen(
    config: PipelineConfig, input_base: Any = None
) -> tfx.components.CsvExampleGen:
    """CsvExampleGen over `input_base` (default `data.root`), split train/eval by hash."""
    split = tfx.proto.SplitConfig(
        splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=config.data.train_buckets),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=config.data.eval_buckets),
        ]
    )
    return tfx.components.CsvExampleGen(
        input_base=config.data.root if input_base is None else input_base,
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
        Transform -> Trainer -> baseline lookup -> Evaluator -> Pusher.
    """
    params = _parameters(config, runtime_parameters)
    example_gen = make_example_gen(config, params[DATA_ROOT])

    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(
        STATISTICS_GEN
    )

    schema_importer = SchemaImporter(schema_text=read_schema_text(config.data.schema_file)).with_id(
        SCHEMA_IMPORTER
    )

    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"],
    ).with_id(EXAMPLE_VALIDATOR)

    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"]).with_id(
        ANOMALIES_GATE
    )

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_importer.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
    ).with_id(TRANSFORM)
    # The gate has no output Transform consumes; this edge is what keeps
    # anything from being transformed, trained or pushed after an anomaly.
    transform.add_upstream_node(anomalies_gate)

    trainer = Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_importer.outputs["schema"],
        train_steps=params[TRAIN_STEPS],
        eval_steps=params[EVAL_STEPS],
        custom_config={
            "batch_size": config.trainer.batch_size,
            "learning_rate": config.trainer.learning_rate,
            "hidden_units": list(config.trainer.hidden_units),
            "embedding_dim": config.trainer.embedding_dim,
            "seed": config.trainer.seed,
            "mixed_precision": config.trainer.mixed_precision,
            "jit_compile": config.trainer.jit_compile,
            "tpu": config.trainer.tpu,
        },
        launch=launch_config(config),
    ).with_id(TRAINER)

    baseline_lookup = BaselineLookup(
        model=trainer.outputs["model"],
        pipeline=config.run.pipeline_name,
        metadata_connection=metadata_spec_json(config),
    ).with_id(BASELINE_LOOKUP)

    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_lookup.outputs["baseline"],
        min_auc=params[MIN_AUC],
        max_auc_drop=params[MAX_AUC_DROP],
    ).with_id(EVALUATOR)

    pusher = RegistryPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        evaluation=evaluator.outputs["evaluation"],
        registry_uri=config.registry.uri,
        model_name=config.registry.model_name,
        keep_versions=config.registry.keep_versions,
        warmup_requests=config.registry.warmup_requests,
        pipeline=config.run.pipeline_name,
        # Empty: the local runner hands the run id to the executor itself.
        pipeline_run_id=KFP_RUN_ID_PLACEHOLDER if runtime_parameters else "",
        data_root=params[DATA_ROOT],
        min_auc=params[MIN_AUC],
        max_auc_drop=params[MAX_AUC_DROP],
        metadata_connection=metadata_spec_json(config),
    ).with_id(PUSHER)

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
        ],
        enable_cache=config.run.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam.args),
    )
