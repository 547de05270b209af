"""TFX Trainer entry point (`run_fn`): read data, build the model, train, export."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from components.autograph import skip_tf_keras
from components.cluster import TF_CONFIG, parse_tf_config
from components.data import make_dataset
from components.model import ModelParams, build_model, cardinalities
from components.signatures import make_serving_signatures
from components.strategy import make_strategy, plan_strategy, visible_gpus


@dataclass(frozen=True)
class TrainingParams:
    """Trainer settings passed through the Trainer's `custom_config`.

    Attributes:
        batch_size: Examples per replica per training and evaluation step;
            the global batch is this times the replicas in sync.
        learning_rate: Adam learning rate.
        hidden_units: Widths of the deep tower.
        embedding_dim: Width of each categorical embedding.
        seed: Seed for weight init and shuffling.
        mixed_precision: Compute in float16 (GPU) or bfloat16 (TPU, CPU),
            keeping float32 weights.
        jit_compile: Compile the train step with XLA.
        tpu: TPU to train on (TPUClusterResolver's name, `local` on a TPU
            VM); empty for none.
    """

    batch_size: int = 128
    learning_rate: float = 0.001
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    seed: int = 42
    mixed_precision: bool = False
    jit_compile: bool = False
    tpu: str = ""

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
            jit_compile=self.jit_compile,
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


def backup_dir(model_run_dir: str) -> str:
    """Where BackupAndRestore keeps the interrupted attempt's state.

    Under the Trainer's ModelRun artifact, so under the pipeline root and on
    storage every worker shares. Keras deletes the checkpoint once training
    completes; the folder goes at the end of `run_fn` when training alone,
    and with workers once the Trainer saw all of them succeed.
    """
    return os.path.join(model_run_dir, "backup")


def _remove_if_empty(path: str) -> None:
    if tf.io.gfile.isdir(path) and not tf.io.gfile.listdir(path):
        tf.io.gfile.rmtree(path)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the model and exports a SavedModel with the serving signatures.

    Runs alone or as one worker of a TF_CONFIG cluster. `batch_size` is per
    replica, so the global batch grows with the replicas, and `train_steps`
    counts global steps: a step means the same at any worker count. Every
    worker trains and saves (the collectives need all of them); only the
    chief writes the serving model and TensorBoard logs, the others write to
    a scratch folder that is removed.

    Args:
        fn_args: Supplied by the TFX Trainer: transformed train/eval files,
            the transform graph, step counts, output dirs and custom_config.
    """
    skip_tf_keras()
    params = TrainingParams.from_custom_config(fn_args.custom_config)
    cluster = parse_tf_config(os.environ.get(TF_CONFIG))
    plan = plan_strategy(cluster, params.tpu, visible_gpus())
    # First TensorFlow work of the process: collectives are configured at start-up.
    strategy = make_strategy(plan)
    tf.keras.utils.set_random_seed(params.seed)
    is_chief = cluster is None or cluster.is_chief
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    spec = tft_output.transformed_feature_spec()
    global_batch = params.batch_size * strategy.num_replicas_in_sync

    def distributed(files: list[str], shuffle: bool) -> Any:
        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return make_dataset(
                files,
                spec,
                context.get_per_replica_batch_size(global_batch),
                shuffle=shuffle,
                seed=params.seed,
                num_shards=context.num_input_pipelines,
                shard_index=context.input_pipeline_id,
            )

        return strategy.distribute_datasets_from_function(dataset_fn)

    if params.jit_compile and not plan.supports_xla:
        logging.warning(
            "trainer: jit_compile ignored: XLA cannot compile the CPU (RING) all-reduce of "
            "multi-worker training; it needs GPUs (NCCL)"
        )
        params = replace(params, jit_compile=False)
    schedule = Schedule.for_steps(fn_args.train_steps)
    previous_policy = tf.keras.mixed_precision.global_policy()
    scratch = "" if is_chief else tempfile.mkdtemp(prefix="trainer-worker-")
    try:
        if params.mixed_precision:
            tf.keras.mixed_precision.set_global_policy(plan.mixed_precision_policy)
            logging.info("trainer mixed precision: %s", plan.mixed_precision_policy)
        with strategy.scope():
            model = build_model(
                cardinalities(tft_output), params.model_params(schedule.steps_per_execution)
            )
        model.fit(
            distributed(fn_args.train_files, shuffle=True),
            epochs=schedule.epochs,
            steps_per_epoch=schedule.steps_per_epoch,
            validation_data=distributed(fn_args.eval_files, shuffle=False),
            validation_steps=fn_args.eval_steps,
            validation_freq=[schedule.epochs],  # once, after the last epoch
            callbacks=[
                # First, so the callbacks after it see the restored step.
                tf.keras.callbacks.BackupAndRestore(backup_dir(fn_args.model_run_dir)),
                tf.keras.callbacks.TensorBoard(
                    log_dir=fn_args.model_run_dir if is_chief else scratch,
                    update_freq="epoch",
                ),
                _LogProgress(),
            ],
            verbose=0,
        )
        if cluster is None:  # Keras removed the checkpoint, not its folder
            _remove_if_empty(backup_dir(fn_args.model_run_dir))
        model.save(
            fn_args.serving_model_dir if is_chief else os.path.join(scratch, "model"),
            save_format="tf",
            signatures=make_serving_signatures(model, tft_output),
        )
    finally:
        tf.keras.mixed_precision.set_global_policy(previous_policy)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
