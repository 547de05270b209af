"""Queries ML Metadata for the latest blessed model of a pipeline.

This replaces TFX's `Resolver` with the LatestBlessedModelStrategy, which
compiles to resolver executors that open-source Kubeflow Pipelines v2 cannot
run. It reads the same records: ModelBlessing artifacts that the Evaluator
marked `blessed`, and the model each one names in `current_model_id`.

It reads them as either orchestrator writes them. TFX's local runner stores
`blessed` and `current_model_id` as ints. Under Kubeflow v2, TFX's entrypoint
rewrites `current_model_id` to the model's runtime name, which the KFP
launcher sets to the model's ML Metadata id in decimal, and the launcher
records every number as a double.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

# TFX's local and Kubeflow v1 orchestrators name the pipeline context type
# `pipeline`; the Kubeflow v2 launcher writes `system.Pipeline`.
PIPELINE_CONTEXT_TYPES = ("pipeline", "system.Pipeline")
BLESSING_TYPES = ("ModelBlessing", "tfx.ModelBlessing")


@dataclass(frozen=True)
class Baseline:
    """A blessed model and the blessing that blessed it."""

    model_id: int
    model_uri: str
    blessing_id: int


def _pipeline_contexts(
    store: metadata_store.MetadataStore, pipeline_name: str
) -> list[metadata_store_pb2.Context]:
    contexts = []
    for type_name in PIPELINE_CONTEXT_TYPES:
        context = store.get_context_by_type_and_name(type_name, pipeline_name)
        if context is not None:
            contexts.append(context)
    return contexts


def _blessing_type_ids(store: metadata_store.MetadataStore) -> set[int]:
    ids = set()
    for artifact_type in store.get_artifact_types():
        if artifact_type.name in BLESSING_TYPES:
            ids.add(artifact_type.id)
    return ids


def _is_blessed(blessing: metadata_store_pb2.Artifact) -> bool:
    value = blessing.custom_properties["blessed"]
    return value.int_value == 1 or value.double_value == 1.0


def _model_id(blessing: metadata_store_pb2.Artifact) -> int:
    """The `current_model_id` of a blessing: an int, or digits in a string; 0 if neither."""
    value = blessing.custom_properties["current_model_id"]
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return value.int_value
    if kind == "double_value" and value.double_value.is_integer():
        return int(value.double_value)
    if kind == "string_value" and value.string_value.isdigit():
        return int(value.string_value)
    return 0


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
    blessing_types = _blessing_type_ids(store)
    if not blessing_types:
        return None
    blessings: list[metadata_store_pb2.Artifact] = []
    for context in _pipeline_contexts(store, pipeline_name):
        blessings.extend(
            a
            for a in store.get_artifacts_by_context(context.id)
            if a.type_id in blessing_types
            and _is_blessed(a)
            and a.state == metadata_store_pb2.Artifact.LIVE
        )
    blessings.sort(key=lambda a: (a.create_time_since_epoch, a.id), reverse=True)
    for blessing in blessings:
        model_id = _model_id(blessing)
        if not model_id or model_id in exclude_model_ids:
            continue
        models = store.get_artifacts_by_id([model_id])
        if (
            models
            and models[0].state == metadata_store_pb2.Artifact.LIVE
            and models[0].uri not in exclude_uris
        ):
            return Baseline(model_id=model_id, model_uri=models[0].uri, blessing_id=blessing.id)
    return None
