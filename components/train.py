"""TFX Trainer entry point (`run_fn`): read data, build the model, train, export."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from components.autograph import skip_tf_keras
from components.data import make_dataset
from components.model import ModelParams, build_model, cardinalities
from components.signatures import make_serving_signatures


@dataclass(frozen=True)
class TrainingParams:
    """Trainer settings passed through the Trainer's `custom_config`.

    Attributes:
        batch_size: Examples per training and evaluation batch.
        learning_rate: Adam learning rate.
        hidden_units: Widths of the deep tower.
        embedding_dim: Width of each categorical embedding.
        seed: Seed for weight init and shuffling.
    """

    batch_size: int = 128
    learning_rate: float = 0.001
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    seed: int = 42

    @classmethod
    def from_custom_config(cls, custom_config: Mapping[str, Any] | None) -> TrainingParams:
        """Reads the params from a Trainer custom_config dict.

        Raises:
            ValueError: The dict has keys this class does not know.
        """
        config = dict(custom_config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"unknown trainer custom_config keys {unknown}; known: {sorted(known)}"
            )
        if "hidden_units" in config:
            config["hidden_units"] = tuple(int(u) for u in config["hidden_units"])
        return cls(**config)

    def model_params(self, steps_per_execution: int) -> ModelParams:
        return ModelParams(
            hidden_units=self.hidden_units,
            embedding_dim=self.embedding_dim,
            learning_rate=self.learning_rate,
            steps_per_execution=steps_per_execution,
        )


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


class _LogMetrics(tf.keras.callbacks.Callback):
    """Sends epoch metrics to Python logging (the run's log file), not stdout."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()))
        logging.info("trainer epoch %d: %s", epoch + 1, shown)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the model and exports a SavedModel with the serving signatures.

    Args:
        fn_args: Supplied by the TFX Trainer: transformed train/eval files,
            the transform graph, step counts, output dirs and custom_config.
    """
    skip_tf_keras()
    params = TrainingParams.from_custom_config(fn_args.custom_config)
    tf.keras.utils.set_random_seed(params.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    spec = tft_output.transformed_feature_spec()

    train = make_dataset(
        fn_args.train_files, spec, params.batch_size, shuffle=True, seed=params.seed
    )
    evaluation = make_dataset(fn_args.eval_files, spec, params.batch_size, shuffle=False)
    schedule = Schedule.for_steps(fn_args.train_steps)
    model = build_model(
        cardinalities(tft_output), params.model_params(schedule.steps_per_execution)
    )

    model.fit(
        train,
        epochs=schedule.epochs,
        steps_per_epoch=schedule.steps_per_epoch,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        validation_freq=[schedule.epochs],  # once, after the last epoch
        callbacks=[
            tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
            _LogMetrics(),
        ],
        verbose=0,
    )
    model.save(
        fn_args.serving_model_dir,
        save_format="tf",
        signatures=make_serving_signatures(model, tft_output),
    )
