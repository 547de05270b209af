"""`BaselineLookup`: emits a reference to the pipeline's latest blessed model.

TFX artifacts cannot point at another artifact's files, and an output cannot
be left empty in a way both the local runner and Kubeflow v2 accept. So the
output is a small Model-typed *reference*: custom properties
`baseline_found`, `baseline_model_id`, `baseline_model_uri`,
`baseline_blessing_id` (`components.contracts.BASELINE_*`; the same in
`reference.json`).
`components.evaluator.Evaluator` resolves it before TFMA runs; with no
baseline it evaluates on the value thresholds alone.
"""

import json
import os

import tensorflow as tf
from tfx import v1 as tfx

from components import contracts
from components.baseline.lookup import find_latest_blessed_model
from components.mlmd import connect


@tfx.dsl.components.component
def BaselineLookup(
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    baseline: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Model],
    pipeline: tfx.dsl.components.Parameter[str],
    metadata_connection: tfx.dsl.components.Parameter[str],
) -> None:
    """Looks up the latest blessed model other than the candidate `model`.

    The candidate is an input so that the lookup re-runs (is not served from
    cache) whenever a new model is trained.

    Args:
        model: The candidate model, excluded from the lookup.
        baseline: Output reference to the baseline model.
        pipeline: Pipeline whose blessings count (not `pipeline_name`, which
            TFX's InteractiveContext reserves).
        metadata_connection: JSON description of the ML Metadata store, see
            `components.mlmd.connection_config`.
    """
    store = connect(metadata_connection)
    found = find_latest_blessed_model(
        store, pipeline, frozenset({model.id}), frozenset({model.uri})
    )
    model_id = found.model_id if found else 0
    model_uri = found.model_uri if found else ""
    blessing_id = found.blessing_id if found else 0
    baseline.set_int_custom_property(contracts.BASELINE_FOUND, int(found is not None))
    baseline.set_int_custom_property(contracts.BASELINE_MODEL_ID, model_id)
    baseline.set_string_custom_property(contracts.BASELINE_MODEL_URI, model_uri)
    baseline.set_int_custom_property(contracts.BASELINE_BLESSING_ID, blessing_id)
    reference = {
        contracts.BASELINE_FOUND: int(found is not None),
        contracts.BASELINE_MODEL_ID: model_id,
        contracts.BASELINE_MODEL_URI: model_uri,
        contracts.BASELINE_BLESSING_ID: blessing_id,
    }
    tf.io.gfile.makedirs(baseline.uri)
    with tf.io.gfile.GFile(os.path.join(baseline.uri, contracts.BASELINE_REFERENCE_FILE), "w") as f:
        json.dump(reference, f, indent=2)
