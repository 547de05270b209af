"""`schema infer`: a draft schema inferred from the data, for a human to curate.

The pipeline itself never infers its schema: it imports the curated one, so
that a drift in the data fails validation instead of silently becoming the
new normal.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from tfx import v1 as tfx

from components import beam_setup, contracts, mlmd
from components.statistics_gen.component import StatisticsGen
from pipeline.config import PipelineConfig
from pipeline.definition import STATISTICS_GEN, make_example_gen
from pipeline.runners.connection import local_connection_config

SCHEMA_GEN = "schema_gen"


def infer_schema(config: PipelineConfig, output: str) -> str:
    """Runs ExampleGen, StatisticsGen and SchemaGen and copies the draft schema.

    Args:
        config: Data, roots and metadata come from here; the run is recorded
            under the pipeline name `<run.pipeline_name>-schema-infer`.
        output: Where to write the draft schema (text proto).

    Returns:
        The path written.
    """
    name = f"{config.run.pipeline_name}-schema-infer"
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, pipeline_name=name))
    example_gen = make_example_gen(config)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"]).with_id(STATISTICS_GEN)
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True
    ).with_id(SCHEMA_GEN)
    connection = local_connection_config(config)
    beam_setup.prepare()
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name=name,
            pipeline_root=os.path.join(config.run.pipeline_root, "schema-infer"),
            components=[example_gen, statistics_gen, schema_gen],
            enable_cache=config.run.enable_cache,
            metadata_connection_config=connection,
            beam_pipeline_args=list(config.beam.args),
        )
    )
    store = mlmd.open_store(connection)
    execution = mlmd.latest_execution(store, name, SCHEMA_GEN)
    if execution is None:
        raise RuntimeError(f"SchemaGen left no execution in ML Metadata for pipeline {name}")
    schema_dir = mlmd.output_artifacts(store, execution.id)[contracts.SCHEMA][0].uri
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tf.io.gfile.copy(os.path.join(schema_dir, "schema.pbtxt"), output, overwrite=True)
    return output
