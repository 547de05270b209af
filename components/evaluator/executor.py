"""Evaluator executor: task and thresholds to EvalConfig, baseline reference to model, then TFMA.

On Beam's in-process runners a binary evaluation is computed a batch of eval
examples at a time (`components.evaluator.batched`): TFMA's computations,
derivations, thresholds and writers, the same files and blessing as TFX's
Evaluator executor, without TFMA's per-example Python path. Anything that
path does not compute (a multiclass label, a distributed runner) runs TFX's
Evaluator executor unchanged. Either way the overall metrics are then
written once more as JSON (`metrics.write_summary`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, json_utils, path_utils, proto_utils

from components import contracts, private_apis
from components.evaluator import batched, metrics
from components.evaluator.eval_config import EvalSpec, make_eval_config

BASELINE_KEY = "baseline_model"
EVAL_SPEC = "eval_spec"
MIN_VALUE = contracts.MIN_VALUE
MAX_DROP = contracts.MAX_DROP


def resolve_baseline(reference: types.Artifact) -> standard_artifacts.Model | None:
    """Turns a BaselineLookup reference into the baseline Model it names.

    Returns:
        A Model artifact with the baseline's id and URI, or None when the
        lookup found no blessed model.

    Raises:
        ValueError: The reference says found but names no model.
    """
    if not reference.get_int_custom_property(contracts.BASELINE_FOUND):
        return None
    model_id = reference.get_int_custom_property(contracts.BASELINE_MODEL_ID)
    uri = reference.get_string_custom_property(contracts.BASELINE_MODEL_URI)
    if not model_id or not uri:
        raise ValueError(
            f"baseline reference {reference.uri} says found but has model id {model_id!r} "
            f"and uri {uri!r}"
        )
    model = standard_artifacts.Model()
    model.id = model_id
    model.uri = uri
    return model


def thresholds_to_eval_config(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """Replaces `eval_spec`, `min_value` and `max_drop` with TFX's `eval_config` JSON.

    Raises:
        ValueError: A threshold is missing or outside [0, 1], or the spec is bad.
    """
    props = dict(exec_properties)
    spec = EvalSpec.from_json(props.pop(EVAL_SPEC))
    values = {}
    for key in (MIN_VALUE, MAX_DROP):
        value = props.pop(key, None)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"Evaluator: {key} must be a number in [0, 1], got {value!r}")
        values[key] = float(value)
    props[standard_component_specs.EVAL_CONFIG_KEY] = proto_utils.proto_to_json(
        make_eval_config(spec, values[MIN_VALUE], values[MAX_DROP])
    )
    return props


def _move_baseline_id(blessing: types.Artifact) -> None:
    key = constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    if blessing.has_custom_property(key):
        blessing.set_int_custom_property(
            contracts.BASELINE_MODEL_MLMD_ID, blessing.get_int_custom_property(key)
        )
        del blessing.mlmd_artifact.custom_properties[key]


class Executor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor with the thresholds and baseline resolved first.

    `_evaluate_batched` takes the steps of TFX's `Do` one by one (the config's
    defaults, the models, the splits, the blessing) with the evaluation
    itself done by `batched`; tests/test_batched_eval.py runs both on the
    same models and data and compares every file and property.
    """

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        inputs = dict(input_dict)
        references = inputs.pop(BASELINE_KEY, [])
        if len(references) > 1:
            raise ValueError(f"expected at most one baseline reference, got {len(references)}")
        baseline = resolve_baseline(references[0]) if references else None
        if baseline is not None:
            inputs[BASELINE_KEY] = [baseline]
        properties = thresholds_to_eval_config(exec_properties)
        if not self._evaluate_batched(inputs, output_dict, properties):
            super().Do(inputs, output_dict, properties)
        for blessing in output_dict.get(standard_component_specs.BLESSING_KEY, []):
            _move_baseline_id(blessing)
        for evaluation in output_dict.get(standard_component_specs.EVALUATION_KEY, []):
            metrics.write_summary(evaluation.uri)

    def _evaluate_batched(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> bool:
        """TFX's Evaluator `Do`, the evaluation done by `batched`; False where that does not apply.

        Nothing is written before `batched` has computed every slice, so a
        False leaves the outputs as they were for TFX's `Do`.
        """
        import tensorflow_model_analysis as tfma

        runner = private_apis.beam_runner(self._beam_pipeline_args or [])
        if runner not in private_apis.IN_PROCESS_BEAM_RUNNERS:
            logging.info("Evaluator: TFMA's own path, for the %s Beam runner", runner)
            return False
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        if any(
            examples_utils.get_payload_format(e) != example_gen_pb2.FORMAT_TF_EXAMPLE
            for e in examples
        ):
            logging.info("Evaluator: TFMA's own path, for examples that are not tf.Examples")
            return False
        baseline = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY)
        eval_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.EVAL_CONFIG_KEY], tfma.EvalConfig()
        )
        # As TFX's Do: change thresholds are dropped when there is no baseline.
        eval_config = tfma.utils.update_eval_config_with_defaults(
            eval_config, has_baseline=bool(baseline), rubber_stamp=True
        )
        tfma.utils.verify_eval_config(eval_config)
        run_validation = bool(
            tfma.metrics.metric_thresholds_from_metrics_specs(
                eval_config.metrics_specs, eval_config=eval_config
            )
        )
        paths, shared_models = {}, []
        for spec in eval_config.model_specs:
            artifact = artifact_utils.get_single_instance(
                baseline if spec.is_baseline else input_dict[standard_component_specs.MODEL_KEY]
            )
            paths[spec.name] = path_utils.serving_model_path(
                artifact.uri, path_utils.is_old_model_artifact(artifact)
            )
            shared_models.append(
                tfma.default_eval_shared_model(
                    eval_saved_model_path=paths[spec.name],
                    model_name=spec.name,
                    eval_config=eval_config,
                    add_metrics_callbacks=None,
                )
            )
        shared = shared_models[0] if len(shared_models) == 1 else shared_models
        # As TFMA's ExtractEvaluateAndWriteResults, which TFX's Do calls.
        eval_config = private_apis.tfma_eval_config_for_models(eval_config, shared)
        splits = json_utils.loads(
            exec_properties.get(standard_component_specs.EXAMPLE_SPLITS_KEY, "null")
        ) or [contracts.EVAL_SPLIT]
        files = []
        for split in splits:
            for uri in artifact_utils.get_split_uris(examples, split):
                pattern = io_utils.all_files_pattern(uri)
                found = fileio.glob(pattern)
                if not found:
                    # TFX's Do fails here too (Beam's ReadFromTFRecord validates).
                    raise OSError(f"No files found based on the file pattern {pattern}")
                files += sorted(found)
        try:
            results = batched.evaluate(batched.plan(eval_config), paths, files)
        except batched.Unsupported as unsupported:
            logging.info("Evaluator: TFMA's own path, for %s", unsupported)
            return False
        output_uri = artifact_utils.get_single_uri(
            output_dict[standard_component_specs.EVALUATION_KEY]
        )
        with self._make_beam_pipeline() as pipeline:
            batched.write(pipeline, results, eval_config, shared, output_uri)
        logging.info("Evaluation complete (batched). Results written to %s.", output_uri)
        if run_validation:
            _bless(
                input_dict, output_dict, exec_properties, tfma.load_validation_result(output_uri)
            )
        else:
            logging.info("No threshold configured, will not validate model.")
        return True


def _bless(
    input_dict: dict[str, list[types.Artifact]],
    output_dict: dict[str, list[types.Artifact]],
    exec_properties: dict[str, Any],
    validation_result: Any,
) -> None:
    """The blessing artifact and file, as TFX's Evaluator `Do` writes them after TFMA."""
    model = input_dict[standard_component_specs.MODEL_KEY]
    blessing = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.BLESSING_KEY]
    )
    blessing.set_string_custom_property(
        constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, artifact_utils.get_single_uri(model)
    )
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model[0].id)
    baseline = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY)
    if baseline:
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline[0].uri
        )
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline[0].id
        )
    if "current_component_id" in exec_properties:
        blessing.set_string_custom_property("component_id", exec_properties["current_component_id"])
    blessed = validation_result.validation_ok
    io_utils.write_string_file(
        os.path.join(
            blessing.uri,
            constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME,
        ),
        "",
    )
    blessing.set_int_custom_property(
        constants.ARTIFACT_PROPERTY_BLESSED_KEY,
        constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE,
    )
