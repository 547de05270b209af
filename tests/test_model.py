"""The Keras model, run_fn and the exported serving signatures."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from components.features import FEATURES, LABEL, Kind, serving_columns
from components.model import ModelParams, build_model
from components.signatures import OUTPUT_KEY, SERVING_DEFAULT, SERVING_RAW, TRANSFORM_FEATURES
from components.train import Schedule, TrainingParams
from tests.conftest import load_schema, to_instance, to_tf_example

SIZES = {f.name: 7 for f in FEATURES if f.is_categorical}


def test_model_inputs_follow_the_feature_registry():
    model = build_model(SIZES, ModelParams(hidden_units=(4,), embedding_dim=2))
    assert sorted(model.input_names) == sorted(f.transformed_name for f in FEATURES)
    dtypes = {i.name: i.dtype for i in model.inputs}
    for f in FEATURES:
        assert dtypes[f.transformed_name] == (tf.float32 if f.kind is Kind.NUMERIC else tf.int64)
    assert model.output_shape == (None, 1)


def test_model_predicts_probabilities():
    model = build_model(SIZES, ModelParams(hidden_units=(4,), embedding_dim=2))
    batch = {
        f.transformed_name: (
            tf.random.normal([5, 1]) if f.kind is Kind.NUMERIC else tf.ones([5, 1], tf.int64)
        )
        for f in FEATURES
    }
    out = model(batch).numpy()
    assert out.shape == (5, 1) and np.all((out >= 0) & (out <= 1))


def test_model_rejects_missing_category_size():
    sizes = dict(SIZES)
    sizes.pop("company")
    with pytest.raises(KeyError, match="company"):
        build_model(sizes, ModelParams())


def test_training_params_reject_unknown_keys():
    with pytest.raises(ValueError, match="unknown trainer custom_config keys \\['batchsize'\\]"):
        TrainingParams.from_custom_config({"batchsize": 3})


def test_run_fn_writes_tensorboard_logs_and_a_saved_model(trained_model):
    assert tf.saved_model.contains_saved_model(trained_model)
    logs = os.path.join(os.path.dirname(trained_model), "logs")
    events = [f for _, _, files in os.walk(logs) for f in files if "tfevents" in f]
    assert events, "run_fn wrote no TensorBoard event files"


def test_signatures_names_shapes_and_dtypes(trained_model):
    loaded = tf.saved_model.load(trained_model)
    assert set(loaded.signatures) == {SERVING_DEFAULT, SERVING_RAW, TRANSFORM_FEATURES}

    default = loaded.signatures[SERVING_DEFAULT]
    (examples,) = default.structured_input_signature[1].values()
    assert examples.dtype == tf.string and examples.shape.as_list() == [None]
    out = default.structured_outputs[OUTPUT_KEY]
    assert out.dtype == tf.float32 and out.shape.as_list() == [None, 1]

    raw_inputs = loaded.signatures[SERVING_RAW].structured_input_signature[1]
    assert set(raw_inputs) == set(serving_columns())
    assert LABEL.tips_column not in raw_inputs
    want = {"float": tf.float32, "int": tf.int64, "string": tf.string}
    for f in FEATURES:
        assert raw_inputs[f.name].dtype == want[f.raw_type.value], f.name
        assert raw_inputs[f.name].shape.as_list() == [None]


def test_both_serving_signatures_agree_with_the_in_graph_transform(
    trained_model, transformed, taxi_rows
):
    """Raw rows through each serving signature == the model on Beam-transformed rows."""
    loaded = tf.saved_model.load(trained_model)
    keras_model = tf.keras.models.load_model(trained_model)
    schema = load_schema()
    _, transformed_rows = transformed
    indices = [i for i, r in enumerate(taxi_rows) if all(r[c] for c in serving_columns())][:20]
    rows = [taxi_rows[i] for i in indices]
    assert len(rows) == 20

    serialized = tf.constant([to_tf_example(r, schema, serving_columns()) for r in rows])
    from_examples = loaded.signatures[SERVING_DEFAULT](examples=serialized)[OUTPUT_KEY].numpy()

    instances = [to_instance(r, schema) for r in rows]
    raw = {
        name: tf.constant(np.concatenate([inst[name] for inst in instances]))
        for name in serving_columns()
    }
    from_raw = loaded.signatures[SERVING_RAW](**raw)[OUTPUT_KEY].numpy()

    beam_inputs = {
        f.transformed_name: tf.constant(
            [[transformed_rows[i][f.transformed_name]] for i in indices]
        )
        for f in FEATURES
    }
    from_beam = keras_model(beam_inputs).numpy()

    assert np.all((from_examples >= 0) & (from_examples <= 1))
    np.testing.assert_allclose(from_examples, from_raw, atol=1e-6)
    np.testing.assert_allclose(from_examples, from_beam, atol=1e-5)


def test_transform_features_signature_yields_the_label(trained_model, transformed, taxi_rows):
    loaded = tf.saved_model.load(trained_model)
    schema = load_schema()
    _, transformed_rows = transformed
    serialized = tf.constant([to_tf_example(r, schema) for r in taxi_rows[:30]])
    out = loaded.signatures[TRANSFORM_FEATURES](examples=serialized)
    assert out[LABEL.name].numpy().tolist() == [r[LABEL.name] for r in transformed_rows[:30]]
    np.testing.assert_allclose(
        out["fare_xf"].numpy(), [r["fare_xf"] for r in transformed_rows[:30]], atol=1e-5
    )


@pytest.mark.parametrize(
    "steps, epochs, per_epoch, per_call",
    [(1000, 10, 100, 50), (1, 1, 1, 1), (7, 7, 1, 1), (300, 10, 30, 30), (97, 1, 97, 1)],
)
def test_schedule_covers_exactly_the_requested_steps(steps, epochs, per_epoch, per_call):
    schedule = Schedule.for_steps(steps)
    assert (schedule.epochs, schedule.steps_per_epoch, schedule.steps_per_execution) == (
        epochs,
        per_epoch,
        per_call,
    )
    assert schedule.epochs * schedule.steps_per_epoch == steps


def test_autograph_leaves_tf_keras_alone():
    from tensorflow.python.autograph.core import config as autograph_config

    from components.autograph import skip_tf_keras

    skip_tf_keras()
    skip_tf_keras()
    matching = [r for r in autograph_config.CONVERSION_RULES if r.matches("tf_keras.src.engine")]
    assert len(matching) == 1
    assert isinstance(matching[0], autograph_config.DoNotConvert)
