"""RegistryPusher executor: warmup requests, manifest fields, publish, retention."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import tensorflow as tf
from absl import logging
from ml_metadata import metadata_store
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import contracts, mlmd
from components.evaluator.metrics import overall_metrics
from components.mlmd import connect
from components.registry import contract, tflite, warmup
from components.registry.store import Registry
from components.split_protos import split_records
from components.workload import ServingColumn

REGISTRY_URI = "registry_uri"
MODEL_NAME = "model_name"
KEEP_VERSIONS = "keep_versions"
WARMUP_REQUESTS = "warmup_requests"
PIPELINE_NAME = contracts.PIPELINE_PARAMETER
PIPELINE_RUN_ID = contracts.PIPELINE_RUN_ID
DATA_ROOT = "data_root"
METRIC = contracts.METRIC
MIN_VALUE = contracts.MIN_VALUE
MAX_DROP = contracts.MAX_DROP
METADATA_CONNECTION = contracts.METADATA_CONNECTION
# The serving_raw inputs with their types and fills, as JSON: warmup requests.
SERVING_COLUMNS = "serving_columns"
# The contract check: ops a custom model server registers beyond the stock
# ones (comma-separated), and whether signatures may differ from stable's.
EXTRA_OPS = "extra_ops"
ALLOW_SIGNATURE_CHANGE = "allow_signature_change"
# TFLite variants (comma-separated, empty: none), the eval rows they are
# measured on and the tolerances they must meet.
TFLITE = "tflite"
TFLITE_EVAL_ROWS = "tflite_eval_rows"
TFLITE_MAX_ABS_DIFF = "tflite_max_abs_diff"
TFLITE_MAX_METRIC_DELTA = "tflite_max_metric_delta"


def serving_columns_of(text: str) -> list[ServingColumn]:
    """The `serving_columns` parameter back as ServingColumns."""
    return [ServingColumn(**column) for column in json.loads(text)]


def eval_examples(examples: types.Artifact) -> Iterator[bytes]:
    """Serialized tf.Examples of the eval split, in file order.

    Raises:
        ValueError: The split has no files.
    """
    return split_records(examples.uri, contracts.EVAL_SPLIT)


def mlmd_id(store: metadata_store.MetadataStore, artifact: types.Artifact) -> int | None:
    """The ML Metadata id of an input artifact, looked up by its URI.

    By URI because orchestrators disagree on `artifact.id`: TFX's local runner
    passes the real id, the Kubeflow v2 entrypoint a hash of the runtime name.
    """
    return mlmd.artifact_id_by_uri(store, artifact.type_name, artifact.uri)


def check_contract(
    registry: Registry, saved_model: str, extra_ops: tuple[str, ...], allow_change: bool
) -> dict[str, Any]:
    """Refuses a model the server cannot load, or whose signatures differ from stable's.

    Returns:
        What was checked, for the manifest: the ops allowed, the version it
        was compared with (the one labelled stable, if any) and the
        signature changes it was allowed to make.

    Raises:
        ContractError: An op outside TF Serving's (and `extra_ops`), or a
            signature change without `allow_change`; nothing is published.
    """
    unknown = contract.unsupported_ops(saved_model, extra_ops)
    if unknown:
        raise contract.ContractError(
            f"{saved_model}: uses op(s) {', '.join(unknown)} that TF Serving 2.16 does not "
            "register (a custom op library, or tf.py_function, which needs Python); TF "
            "Serving would fail to load this version. Nothing was pushed. A model server "
            "built with these ops: list them in registry.extra_ops"
        )
    checked: dict[str, Any] = {
        "serving_ops": f"TF Serving 2.16 ({contract.OPS_FILE.name})",
        "extra_ops": list(extra_ops),
        "compared_with": None,
        "signature_changes": [],
    }
    stable = registry.labels().get(contracts.STABLE_LABEL)
    if stable is None:
        return checked
    stable_path = registry.version(stable).path
    try:
        stable_signatures = contract.signatures_of(stable_path)
    except (OSError, tf.errors.OpError) as error:
        raise contract.ContractError(
            f"version {stable} ({contracts.STABLE_LABEL}) at {stable_path} has no readable "
            f"saved_model.pb to compare signatures with ({error}); repair it "
            "(registry verify, registry rollback) or move the label. Nothing was pushed"
        ) from None
    changes = contract.signature_changes(stable_signatures, contract.signatures_of(saved_model))
    checked["compared_with"] = {"label": contracts.STABLE_LABEL, "version": stable}
    checked["signature_changes"] = changes
    if changes and not allow_change:
        raise contract.ContractError(
            f"the signatures differ from version {stable} ({contracts.STABLE_LABEL}), whose "
            f"clients would break: {'; '.join(changes)}. Nothing was pushed. If intended, "
            "set registry.allow_signature_change: true (the manifest records the change)"
        )
    return checked


class Executor(base_executor.BaseExecutor):
    """Publishes the blessed model; records where in the PushedModel artifact."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        if not model_utils.is_model_blessed(blessing):
            logging.info("model %s is not blessed; nothing pushed", model.uri)
            pushed.set_int_custom_property(contracts.PUSHED, 0)
            return
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        evaluation = artifact_utils.get_single_instance(input_dict["evaluation"])
        registry = Registry(exec_properties[REGISTRY_URI], exec_properties[MODEL_NAME])
        serving_dir = path_utils.serving_model_path(model.uri)
        checked = check_contract(
            registry,
            serving_dir,
            tuple(o for o in exec_properties[EXTRA_OPS].split(",") if o),
            bool(exec_properties[ALLOW_SIGNATURE_CHANGE]),
        )
        metadata = self._manifest_fields(model, blessing, examples, evaluation, exec_properties)
        metadata["contract"] = checked
        with tempfile.TemporaryDirectory() as scratch:
            warmup_file = os.path.join(scratch, "warmup")
            count = warmup.write(
                warmup_file,
                warmup.build_requests(
                    eval_examples(examples),
                    registry.model_name,
                    int(exec_properties[WARMUP_REQUESTS]),
                    serving_columns_of(exec_properties[SERVING_COLUMNS]),
                ),
            )
            metadata["warmup_requests"] = count
            extra_files = {warmup.WARMUP_FILE: warmup_file}
            variants = [v for v in str(exec_properties.get(TFLITE) or "").split(",") if v]
            if variants:
                files, record = tflite.build(
                    serving_dir,
                    eval_examples(examples),
                    serving_columns_of(exec_properties[SERVING_COLUMNS]),
                    variants,
                    int(exec_properties[TFLITE_EVAL_ROWS]),
                    tflite.Tolerance(
                        float(exec_properties[TFLITE_MAX_ABS_DIFF]),
                        float(exec_properties[TFLITE_MAX_METRIC_DELTA]),
                    ),
                    scratch,
                )
                extra_files.update(files)
                metadata[contracts.TFLITE_MANIFEST_KEY] = record
                for line in tflite.refusals(record):
                    logging.warning("TFLite variant not published: %s", line)
            version = registry.publish(serving_dir, metadata, extra_files)
        try:
            deleted: list[int] | None = registry.prune(int(exec_properties[KEEP_VERSIONS]))
        except Exception as e:  # the push itself succeeded: do not fail it over retention
            logging.warning("retention after pushing version %d failed: %s", version.number, e)
            deleted = None
        logging.info(
            "pushed version %d to %s; retention deleted %s", version.number, version.path, deleted
        )
        pushed.set_int_custom_property(contracts.PUSHED, 1)
        pushed.set_string_custom_property(contracts.PUSHED_DESTINATION, version.path)
        pushed.set_string_custom_property(contracts.PUSHED_VERSION, str(version.number))
        tf.io.gfile.makedirs(pushed.uri)
        with tf.io.gfile.GFile(os.path.join(pushed.uri, contracts.PUSH_RECORD), "w") as f:
            json.dump(
                {"version": version.number, "destination": version.path, "pruned": deleted},
                f,
                indent=2,
            )

    def _manifest_fields(
        self,
        model: types.Artifact,
        blessing: types.Artifact,
        examples: types.Artifact,
        evaluation: types.Artifact,
        props: dict[str, Any],
    ) -> dict[str, Any]:
        store = connect(props[METADATA_CONNECTION])
        metrics, baseline_metrics = overall_metrics(evaluation.uri)
        baseline_id = (
            blessing.get_int_custom_property(contracts.BASELINE_MODEL_MLMD_ID)
            if blessing.has_custom_property(contracts.BASELINE_MODEL_MLMD_ID)
            else None
        )
        return {
            "pipeline": {
                "name": props[PIPELINE_NAME],
                "run_id": mlmd.executor_run_id(props[PIPELINE_RUN_ID], self._context) or None,
            },
            "mlmd": {
                "model_id": mlmd_id(store, model),
                "blessing_id": mlmd_id(store, blessing),
                "examples_id": mlmd_id(store, examples),
                "evaluation_id": mlmd_id(store, evaluation),
                "baseline_model_id": baseline_id or None,
            },
            "source": {
                "model_uri": model.uri,
                "examples_uri": examples.uri,
                "data_root": props[DATA_ROOT],
            },
            "evaluation": {
                "metrics": metrics,
                "baseline_metrics": baseline_metrics,
                "thresholds": {
                    METRIC: props[METRIC],
                    MIN_VALUE: float(props[MIN_VALUE]),
                    MAX_DROP: float(props[MAX_DROP]),
                },
            },
        }
