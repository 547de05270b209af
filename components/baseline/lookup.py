"""Queries ML Metadata for the latest blessed model of a pipeline.

This replaces TFX's `Resolver` with the LatestBlessedModelStrategy, which
compiles to resolver executors that open-source Kubeflow Pipelines v2 cannot
run. It reads the same records: ModelBlessing artifacts that the Evaluator
marked `blessed`, and the model each one names in `current_model_id`, as
either orchestrator writes them (`components.mlmd` reads both dialects).
"""

from __future__ import annotations

from dataclasses import dataclass

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import mlmd


@dataclass(frozen=True)
class Baseline:
    """A blessed model and the blessing that blessed it."""

    model_id: int
    model_uri: str
    blessing_id: int


def find_latest_blessed_model(
    store: metadata_store.MetadataStore,
    pipeline_name: str,
    exclude_model_ids: frozenset[int] = frozenset(),
    exclude_uris: frozenset[str] = frozenset(),
) -> Baseline | None:
    """Returns the newest blessed model of `pipeline_name`, or None.

    Args:
        store: The ML Metadata store the pipeline writes to.
        pipeline_name: Only blessings recorded in this pipeline's context count.
        exclude_model_ids: Models never to return (the candidate itself).
        exclude_uris: Models never to return, by URI. Under Kubeflow v2 an
            executor does not see its inputs' ML Metadata ids, only their
            URIs, which are unique per artifact too.

    Returns:
        The model of the most recently created positive blessing, skipping
        blessings whose model is excluded or no longer live.
    """
    blessing_types = mlmd.artifact_type_ids(store, mlmd.MODEL_BLESSING_TYPE)
    if not blessing_types:
        return None
    blessings = [
        a
        for context in mlmd.pipeline_contexts(store, pipeline_name)
        for a in store.get_artifacts_by_context(context.id)
        if a.type_id in blessing_types
        and a.state == metadata_store_pb2.Artifact.LIVE
        and mlmd.is_blessed(a)
    ]
    blessings.sort(key=lambda a: (a.create_time_since_epoch, a.id), reverse=True)
    for blessing in blessings:
        model_id = mlmd.blessing_model_id(blessing)
        if model_id is None or model_id in exclude_model_ids:
            continue
        models = store.get_artifacts_by_id([model_id])
        if (
            models
            and models[0].state == metadata_store_pb2.Artifact.LIVE
            and models[0].uri not in exclude_uris
        ):
            return Baseline(model_id=model_id, model_uri=models[0].uri, blessing_id=blessing.id)
    return None
