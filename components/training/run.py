"""TFX Trainer entry point (`run_fn`): read the data, build the model, fit, export.

It knows no model: the configured model package builds one (see
components/model_package.py), and the distribution mechanics live in
`session.TrainingSession`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from components import model_package
from components.private_apis import skip_tf_keras
from components.training.custom_config import settings_of
from components.training.data import decoder
from components.training.session import TrainingSession
from components.training.signatures import class_names, make_serving_signatures
from components.workload import MULTICLASS


@dataclass(frozen=True)
class Schedule:
    """How `train_steps` are cut into Keras epochs and compiled calls.

    TensorBoard gets one point per epoch: writing summaries every few batches
    instead made training 2.7x slower here (it defeats steps_per_execution).

    Attributes:
        epochs: Number of epochs (at most 10).
        steps_per_epoch: Steps per epoch; epochs * steps_per_epoch == train_steps.
        steps_per_execution: Steps per compiled call (at most 50), dividing
            steps_per_epoch.
    """

    epochs: int
    steps_per_epoch: int
    steps_per_execution: int

    @classmethod
    def for_steps(cls, train_steps: int) -> Schedule:
        if train_steps < 1:
            raise ValueError(f"train_steps must be >= 1, got {train_steps}")
        epochs = max(d for d in range(1, 11) if train_steps % d == 0)
        per_epoch = train_steps // epochs
        per_call = max(d for d in range(1, 51) if per_epoch % d == 0)
        return cls(epochs=epochs, steps_per_epoch=per_epoch, steps_per_execution=per_call)


class _LogProgress(tf.keras.callbacks.Callback):
    """Sends progress to Python logging (the run's log file), not stdout.

    The first line names the step training starts from: 0 on a fresh start,
    more when BackupAndRestore resumed an interrupted attempt.
    """

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        logging.info("trainer starts at step %d%s", step, " (resumed from backup)" if step else "")

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()))
        logging.info("trainer epoch %d: %s", epoch + 1, shown)


def build_optimizer(model: tf.keras.Model) -> None:
    """Creates the optimizer's variables now rather than in the first training step.

    Keras' train function is a tf.function, and one that creates variables on
    its first call is traced twice: the optimizer's slots made lazily cost a
    second trace of the whole steps_per_execution loop (about 1 s of the
    Trainer, docs/benchmarks.md). The slots start at the same values either
    way. Left as they are: legacy optimizers, which cannot build ahead, and
    a model whose layers make their variables on the first call (a
    subclassed model, a Sequential without an input shape): an optimizer
    built for no variables would refuse theirs.
    """
    if (
        isinstance(model.optimizer, tf.keras.optimizers.Optimizer)
        and model.built
        and model.trainable_variables
    ):
        model.optimizer.build(model.trainable_variables)


def needs_layer_traces(model: tf.keras.Model) -> bool:
    """Whether the SavedModel must carry each layer's traced functions for Keras to reload it.

    Keras' SavedModel stores, besides the signatures, a traced call function
    for every layer (`save_traces`), so that a model can be reloaded as Keras
    without its classes. Tracing and writing them took 1.7 of the taxi
    model's 2.9 s export, and loading them 1.1 of 2.0 s in each later load
    (the Evaluator, warm-up: docs/benchmarks.md). A functional or Sequential
    model made only of Keras' own layers, initializers and functions is
    rebuilt from its config in any process, so it goes without them.
    Anything else keeps them: a subclassed model, a custom layer or
    function (its module would have to be imported wherever the model is
    loaded), a Lambda layer or a lambda argument, a legacy config.
    """
    try:
        config = json.loads(model.to_json())
    except (NotImplementedError, TypeError, ValueError):
        return True
    if config.get("class_name") not in ("Functional", "Sequential"):
        return True  # a subclassed model: its config does not describe its layers
    config = config["config"]  # the model's own entry names no module

    def keras_only(node: Any) -> bool:
        if isinstance(node, dict):
            # Every serialized object (layer, initializer, function...) names
            # its module; a lambda ("__lambda__", or its bytecode as a
            # "value") or a legacy config does not, and counts as not Keras'.
            if "class_name" in node:
                module = node.get("module")
                if not (isinstance(module, str) and module.startswith(("keras.", "tf_keras."))):
                    return False
                if node["class_name"] == "Lambda":
                    return False
            elif "value" in node:
                return False  # a lambda as an argument: bytecode, not a config
            return all(keras_only(value) for value in node.values())
        if isinstance(node, list):
            return all(keras_only(value) for value in node)
        return True

    return not keras_only(config)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the configured model package's model and exports it with the serving signatures.

    `batch_size` is per replica, so the global batch grows with the replicas,
    and `train_steps` counts global steps: a step means the same at any
    worker count.

    Args:
        fn_args: Supplied by the TFX Trainer: train/eval files (raw or
            transformed, as `trainer.examples` says),
            the transform graph, step counts, output dirs, and custom_config
            with the workload and the trainer settings.
    """
    skip_tf_keras()
    workload = model_package.workload_of(fn_args.custom_config)
    settings = settings_of(fn_args.custom_config, fn_args.train_steps, fn_args.eval_steps)
    package = model_package.load(workload.package)
    session = TrainingSession(settings, fn_args.model_run_dir)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    decode = decoder(tft_output, settings.examples)
    schedule = Schedule.for_steps(settings.train_steps)
    with session.active():
        with session.strategy.scope():
            model = package.build_model(
                model_package.ModelContext(
                    workload=workload,
                    trainer=session.settings,
                    tft_output=tft_output,
                    num_classes=len(class_names(tft_output)) if workload.task == MULTICLASS else 2,
                    steps_per_execution=schedule.steps_per_execution,
                    jit_compile=session.settings.jit_compile,
                )
            )
            build_optimizer(model)
        model.fit(
            session.dataset(fn_args.train_files, decode, shuffle=True),
            epochs=schedule.epochs,
            steps_per_epoch=schedule.steps_per_epoch,
            validation_data=session.dataset(fn_args.eval_files, decode, shuffle=False),
            validation_steps=settings.eval_steps,
            validation_freq=[schedule.epochs],  # once, after the last epoch
            callbacks=session.callbacks(_LogProgress()),
            verbose=0,
        )
        session.finished_training()
        model.save(
            session.export_dir(fn_args.serving_model_dir),
            save_format="tf",
            save_traces=needs_layer_traces(model),
            signatures=make_serving_signatures(
                model, tft_output, workload.feature_names, workload.task
            ),
        )
