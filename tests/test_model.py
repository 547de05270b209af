"""The Keras model, run_fn and the exported serving signatures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components import model_package
from components.contracts import (
    LABEL_KEY,
    PROBABILITY,
    SERVING_DEFAULT,
    SERVING_RAW,
    TRANSFORM_FEATURES,
    transformed_name,
)
from components.errors import ConfigError
from components.model_package import ModelContext, ModelPackageError
from components.training.run import Schedule, build_optimizer, needs_layer_traces
from components.training.settings import TrainerSettings
from components.workload import FeatureSpec, LabelSpec, Workload
from models.declarative.model import build_model
from tests.conftest import load_schema, taxi_config, to_instance, to_tf_example

TAXI = taxi_config().model
SERVING_COLUMNS = list(TAXI.features)
SMALL = TrainerSettings(hidden_units=(4,), embedding_dim=2)


class _Vocabularies:
    """Stands in for TFTransformOutput where only vocabulary sizes are read."""

    def vocabulary_size_by_name(self, name: str) -> int:
        return 5


def _context(workload: Workload, num_classes: int = 2) -> ModelContext:
    return ModelContext(
        workload=workload,
        trainer=SMALL,
        tft_output=_Vocabularies(),
        num_classes=num_classes,
        steps_per_execution=1,
        jit_compile=False,
    )


def _is_plain_numeric(f: FeatureSpec) -> bool:
    return f.kind == "numeric" and not f.buckets


def test_model_inputs_follow_the_workload():
    model = build_model(_context(TAXI))
    assert sorted(model.input_names) == sorted(transformed_name(n) for n in TAXI.features)
    dtypes = {i.name: i.dtype for i in model.inputs}
    for name, f in TAXI.features.items():
        want = tf.float32 if _is_plain_numeric(f) else tf.int64
        assert dtypes[transformed_name(name)] == want, name
    assert model.output_shape == (None, 1)


def _batch(workload: Workload, rows: int) -> dict[str, tf.Tensor]:
    batch = {}
    for name, f in workload.features.items():
        if _is_plain_numeric(f):
            batch[transformed_name(name)] = tf.random.normal([rows, 1])
        elif f.kind == "text":
            batch[transformed_name(name)] = tf.constant([[3, 1, 0, 0]] * rows, tf.int64)
        else:
            batch[transformed_name(name)] = tf.ones([rows, 1], tf.int64)
    return batch


@pytest.mark.parametrize("built", [True, False])
def test_a_built_optimizer_traces_the_train_function_once(built):
    tf.keras.utils.set_random_seed(0)
    model = build_model(_context(TAXI))
    if built:
        build_optimizer(model)
    data = tf.data.Dataset.from_tensors((_batch(TAXI, 8), tf.ones([8, 1], tf.int64))).repeat()
    model.fit(data, epochs=2, steps_per_epoch=3, verbose=0)
    assert model.train_function.experimental_get_tracing_count() == (1 if built else 2)


def test_a_model_that_makes_its_variables_on_first_call_still_trains():
    # Nothing to build before the first call: the optimizer is left alone
    # (built for no variables, it would refuse the model's).
    class Linear(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = tf.keras.layers.Dense(1)

        def call(self, inputs):  # type: ignore[no-untyped-def]
            return self.dense(inputs)

    model = Linear()
    model.compile(optimizer=tf.keras.optimizers.Adam(), loss="mse")
    build_optimizer(model)
    history = model.fit(tf.ones([4, 2]), tf.ones([4, 1]), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and model.optimizer.iterations.numpy() == 2


def test_only_models_keras_rebuilds_from_config_go_without_layer_traces(tmp_path):
    taxi = build_model(_context(TAXI))
    assert not needs_layer_traces(taxi)
    # Saved without traces, it reloads as Keras in a process that never
    # imported the model package, and gives the same outputs.
    taxi.save(str(tmp_path / "taxi"), save_format="tf", save_traces=False)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.keras.models.load_model(sys.argv[1])\n"
        "print(sorted({l.__class__.__module__.split('.')[0] for l in m.layers}))\n"
        "np.save(sys.argv[2], m({n: tf.ones([2, 1], i.dtype) for n, i in "
        "zip(m.input_names, m.inputs)}).numpy())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "taxi"), str(tmp_path / "out.npy")],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        cwd=tmp_path,
    )
    # Rebuilt from the config as Keras' own layers, not revived from traces.
    assert done.stdout.strip().splitlines()[-1] == "['tf_keras']", done.stdout
    ones = {n: tf.ones([2, 1], i.dtype) for n, i in zip(taxi.input_names, taxi.inputs, strict=True)}
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), taxi(ones).numpy(), rtol=1e-6)
    # A custom layer (the text encoder's MaskedSum) needs its traces.
    assert needs_layer_traces(build_model(_context(TEXT, num_classes=3)))
    inputs = tf.keras.Input(shape=(1,), name="x")
    # A Lambda, a custom activation function, a subclassed model: traces.
    lam = tf.keras.Model(inputs, tf.keras.layers.Lambda(lambda t: t * 2)(inputs))
    assert needs_layer_traces(lam)

    def doubled(t):  # type: ignore[no-untyped-def]
        return t * 2

    custom = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation=doubled)(inputs))
    assert needs_layer_traces(custom)
    anonymous = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation=lambda t: t * 2)(inputs))
    assert needs_layer_traces(anonymous)

    class Sub(tf.keras.Model):
        def call(self, t):  # type: ignore[no-untyped-def]
            return t

    assert needs_layer_traces(Sub())


def test_binary_model_predicts_probabilities():
    out = build_model(_context(TAXI))(_batch(TAXI, 5)).numpy()
    assert out.shape == (5, 1) and np.all((out >= 0) & (out <= 1))


TEXT = Workload(
    label=LabelSpec(column="y", task="multiclass"),
    features={
        "review": FeatureSpec(kind="text", max_tokens=4, vocab_size=5),
        "words": FeatureSpec(kind="text", max_tokens=4, vocab_size=5, encoding="bag_of_words"),
        "size": FeatureSpec(kind="numeric"),
    },
)


def test_multiclass_model_predicts_one_probability_per_class():
    model = build_model(_context(TEXT, num_classes=3))
    out = model(_batch(TEXT, 4)).numpy()
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("review_xf").input.shape.as_list() == [None, 4]


def test_text_padding_is_masked_out():
    """Token id 0 is padding: what its embedding rows hold never reaches the output."""
    model = build_model(_context(TEXT, num_classes=3))
    batch = _batch(TEXT, 2)
    before = model(batch).numpy()
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Embedding):
            weights = layer.get_weights()[0]
            weights[0] = 100.0
            layer.set_weights([weights])
    np.testing.assert_allclose(model(batch).numpy(), before, rtol=1e-5)


def test_trainer_settings_reject_unknown_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) trainer.batchsize"):
        TrainerSettings.from_plain({"batchsize": 3}, 10, 2)


def test_an_unimportable_model_package_is_named():
    with pytest.raises(ModelPackageError, match=r"model.package=no_such.pkg: cannot import it"):
        model_package.load("no_such.pkg")


def test_a_module_without_the_protocol_is_named():
    with pytest.raises(ModelPackageError, match="no function preprocessing_fn or build_model"):
        model_package.load("json")


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
    out = default.structured_outputs[PROBABILITY]
    assert out.dtype == tf.float32 and out.shape.as_list() == [None, 1]

    raw_inputs = loaded.signatures[SERVING_RAW].structured_input_signature[1]
    assert set(raw_inputs) == set(SERVING_COLUMNS)
    assert "tips" not in raw_inputs
    want = {schema_pb2.FLOAT: tf.float32, schema_pb2.INT: tf.int64, schema_pb2.BYTES: tf.string}
    types = {f.name: f.type for f in load_schema().feature}
    for name in SERVING_COLUMNS:
        assert raw_inputs[name].dtype == want[types[name]], name
        assert raw_inputs[name].shape.as_list() == [None]


def test_both_serving_signatures_agree_with_the_in_graph_transform(
    trained_model, transformed, taxi_rows
):
    """Raw rows through each serving signature == the model on Beam-transformed rows."""
    loaded = tf.saved_model.load(trained_model)
    keras_model = tf.keras.models.load_model(trained_model)
    schema = load_schema()
    _, transformed_rows = transformed
    indices = [i for i, r in enumerate(taxi_rows) if all(r[c] for c in SERVING_COLUMNS)][:20]
    rows = [taxi_rows[i] for i in indices]
    assert len(rows) == 20

    serialized = tf.constant([to_tf_example(r, schema, SERVING_COLUMNS) for r in rows])
    from_examples = loaded.signatures[SERVING_DEFAULT](examples=serialized)[PROBABILITY].numpy()

    instances = [to_instance(r, schema) for r in rows]
    raw = {
        name: tf.constant(np.concatenate([inst[name] for inst in instances]))
        for name in SERVING_COLUMNS
    }
    from_raw = loaded.signatures[SERVING_RAW](**raw)[PROBABILITY].numpy()

    beam_inputs = {
        transformed_name(name): tf.constant(
            [[transformed_rows[i][transformed_name(name)]] for i in indices]
        )
        for name in SERVING_COLUMNS
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
    assert out[LABEL_KEY].numpy().tolist() == [r[LABEL_KEY] for r in transformed_rows[:30]]
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

    from components.private_apis import skip_tf_keras

    skip_tf_keras()
    skip_tf_keras()
    matching = [r for r in autograph_config.CONVERSION_RULES if r.matches("tf_keras.src.engine")]
    assert len(matching) == 1
    assert isinstance(matching[0], autograph_config.DoNotConvert)


def test_the_docs_quote_the_custom_package_as_it_is():
    docs = (Path(__file__).parent.parent / "docs" / "model_packages.md").read_text()
    source = (Path(__file__).parent / "custom_model" / "__init__.py").read_text()
    body = source[source.index("from __future__") :].strip()
    assert body in docs, "docs/model_packages.md must quote tests/custom_model/__init__.py"
