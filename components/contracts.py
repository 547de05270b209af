"""The names components, model packages and tools agree on, defined once.

Node ids, signature names and output keys, the transformed label's key,
and the property and output keys of the artifacts our components write.
Everything here is a plain string or a tuple of them: importing this module
imports no TensorFlow, TFX or ML Metadata, so the CLI's fast paths can use it.
"""

from __future__ import annotations

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
RUN_REPORT = "run_report"

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
    RUN_REPORT,
)

# Serving signatures of every exported model. All apply the transform graph.
SERVING_DEFAULT = "serving_default"  # serialized raw tf.Examples
SERVING_RAW = "serving_raw"  # one [batch] tensor per raw feature, by name
TRANSFORM_FEATURES = "transform_features"  # raw tf.Examples -> transformed features
SERVING_DEFAULT_INPUT = "examples"

# Output keys of the serving signatures, by task.
PROBABILITY = "probability"  # binary: P(positive class), [batch, 1]
PROBABILITIES = "probabilities"  # multiclass: one probability per class, [batch, K]
CLASSES = "classes"  # multiclass: the class names aligned with PROBABILITIES, [batch, K]

# What preprocessing_fn names the label it computes, and (multiclass) the
# tf.Transform vocabulary of class names, index = class id.
LABEL_KEY = "label_xf"
LABEL_VOCABULARY = "label_vocab"
# The multiclass label vocabulary has one OOV bucket: a class that only the
# eval split holds gets its id (one past the vocabulary) instead of -1, which
# would fail the loss; the model serves it under this name, with a
# probability near 0 since no training row has it.
LABEL_OOV_BUCKETS = 1
UNSEEN_CLASS = "(not in training)"
TRANSFORMED_SUFFIX = "_xf"


def transformed_name(raw_name: str) -> str:
    """The key a raw feature's transformed value has in the transformed examples."""
    return f"{raw_name}{TRANSFORMED_SUFFIX}"


def vocabulary_name(raw_name: str) -> str:
    """The tf.Transform vocabulary file of a categorical or text feature."""
    return f"{raw_name}_vocab"


# Output keys of the nodes, as ML Metadata events record them.
EXAMPLES = "examples"
STATISTICS = "statistics"
SCHEMA = "schema"
ANOMALIES = "anomalies"
TRANSFORM_GRAPH = "transform_graph"
TRANSFORMED_EXAMPLES = "transformed_examples"
MODEL = "model"
MODEL_RUN = "model_run"
BASELINE = "baseline"
EVALUATION = "evaluation"
BLESSING = "blessing"
PUSHED_MODEL = "pushed_model"
REPORT = "report"

# The file a Schema artifact holds: the SchemaImporter writes it, `skew` reads it.
SCHEMA_FILE = "schema.pbtxt"

# The report's artifact type: Kubeflow's own name for an HTML page, which
# its UI renders (pipeline/report/component.py).
HTML_ARTIFACT_TYPE = "system.HTML"

# BaselineLookup's reference artifact.
BASELINE_FOUND = "baseline_found"
BASELINE_MODEL_ID = "baseline_model_id"
BASELINE_MODEL_URI = "baseline_model_uri"
BASELINE_BLESSING_ID = "baseline_blessing_id"
BASELINE_REFERENCE_FILE = "reference.json"

# The Evaluator's overall-slice metrics as JSON, beside TFMA's files in the
# evaluation artifact: read without loading TFMA (lineage, the pusher).
METRICS_SUMMARY_FILE = "metrics_summary.json"

# The Evaluator's ModelBlessing, as TFX writes it.
BLESSED = "blessed"
CURRENT_MODEL_ID = "current_model_id"
# Where the blessing records the baseline's ML Metadata id. TFX writes it to
# `baseline_model_id`, which TFX's Kubeflow v2 entrypoint then maps through
# its table of *input* artifact ids; the looked-up baseline is not an input,
# and the entrypoint would fail with a KeyError after a successful
# evaluation. Under this name it is left alone, on every orchestrator.
BASELINE_MODEL_MLMD_ID = "baseline_model_mlmd_id"

# The RegistryPusher's PushedModel keeps TFX Pusher's property names, so
# tools that read TFX pushes read ours.
PUSHED = "pushed"
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
PUSH_RECORD = "push.json"

# The registry label of the version clients rely on: a push whose
# signatures differ from its version's is refused (components/registry/contract.py).
STABLE_LABEL = "stable"
# The label of the version a canary rollout tries on a share of the traffic.
CANARY_LABEL = "canary"

# TFLite variants a push may add under its version (registry.tflite), each
# converted from the `serving_raw` signature and measured against it
# (components/registry/tflite.py): as trained, float16 weights, int8 weights
# (dynamic range), and int8 weights and activations calibrated on eval rows.
TFLITE_VARIANTS = ("fp32", "fp16", "dynamic_int8", "full_int8")
TFLITE_SIGNATURE = SERVING_RAW
# The folder of a version that holds them (`tflite/<variant>.tflite`); TF
# Serving loads the SavedModel beside it and ignores it.
TFLITE_DIR = "tflite"
# The manifest's section on them: published or refused, and why.
TFLITE_MANIFEST_KEY = "tflite"

# Execution parameters more than one of our executors takes. Not
# `pipeline_name`: TFX reserves that execution property key.
PIPELINE_PARAMETER = "pipeline"
PIPELINE_RUN_ID = "pipeline_run_id"  # empty: the orchestrator's own (local runner)
METADATA_CONNECTION = "metadata_connection"

# Execution parameters that tools read back (lineage, the run summary).
TRAIN_STEPS = "train_steps"
EVAL_STEPS = "eval_steps"
METRIC = "metric"
MIN_VALUE = "min_value"
MAX_DROP = "max_drop"

# The metrics the blessing thresholds may gate, by task (as TFMA names them);
# the first is the default.
GATE_METRICS = {"binary": ("auc", "binary_accuracy"), "multiclass": ("accuracy",)}

# What ExampleGen reads under data.root: CSV files only, not a README beside them.
CSV_PATTERN = "*.csv"

SPLITS = ("train", "eval")
TRAIN_SPLIT, EVAL_SPLIT = SPLITS
