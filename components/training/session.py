"""The distribution mechanics of one training process, so that `run_fn` stays thin.

A `TrainingSession` builds the strategy first (collectives are configured at
start-up), seeds, sets the mixed-precision policy, decides whether this
process is the chief, shards the input per worker, and knows where this
process writes: the chief writes the serving model and TensorBoard logs,
other workers a scratch folder that is removed. It runs alone or as one
worker of a TF_CONFIG cluster.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import tensorflow as tf

from components.training.cluster import TF_CONFIG, parse_tf_config
from components.training.data import Decode, make_dataset
from components.training.settings import TrainerSettings
from components.training.strategy import make_strategy, plan_strategy, visible_gpus


def backup_dir(model_run_dir: str) -> str:
    """Where BackupAndRestore keeps the interrupted attempt's state.

    Under the Trainer's ModelRun artifact, so under the pipeline root and on
    storage every worker shares. Keras deletes the checkpoint once training
    completes; the folder goes at the end of training when training alone,
    and with workers once the Trainer saw all of them succeed.
    """
    return os.path.join(model_run_dir, "backup")


def _remove_if_empty(path: str) -> None:
    if tf.io.gfile.isdir(path) and not tf.io.gfile.listdir(path):
        tf.io.gfile.rmtree(path)


class TrainingSession:
    """Strategy, precision and output locations of this training process.

    Args:
        settings: The trainer settings.
        model_run_dir: The Trainer's ModelRun folder (logs, backups).
    """

    def __init__(self, settings: TrainerSettings, model_run_dir: str):
        self._cluster = parse_tf_config(os.environ.get(TF_CONFIG))
        self._plan = plan_strategy(self._cluster, settings.tpu, visible_gpus())
        self.strategy = make_strategy(self._plan)
        tf.keras.utils.set_random_seed(settings.seed)
        if settings.jit_compile and not self._plan.supports_xla:
            logging.warning(
                "trainer: jit_compile ignored: XLA cannot compile the CPU (RING) all-reduce of "
                "multi-worker training; it needs GPUs (NCCL)"
            )
            settings = replace(settings, jit_compile=False)
        self.settings = settings
        self.model_run_dir = model_run_dir
        self.is_chief = self._cluster is None or self._cluster.is_chief
        self._scratch = ""

    @property
    def global_batch(self) -> int:
        return self.settings.batch_size * self.strategy.num_replicas_in_sync

    def dataset(self, files: Sequence[str], decode: Decode, shuffle: bool) -> Any:
        """The examples of `files`, decoded and transformed, sharded per input pipeline."""

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return make_dataset(
                files,
                decode,
                context.get_per_replica_batch_size(self.global_batch),
                shuffle=shuffle,
                seed=self.settings.seed,
                num_shards=context.num_input_pipelines,
                shard_index=context.input_pipeline_id,
            )

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def callbacks(self, progress: tf.keras.callbacks.Callback) -> list[Any]:
        return [
            # First, so the callbacks after it see the restored step.
            tf.keras.callbacks.BackupAndRestore(backup_dir(self.model_run_dir)),
            tf.keras.callbacks.TensorBoard(
                log_dir=self.model_run_dir if self.is_chief else self._scratch,
                update_freq="epoch",
            ),
            progress,
        ]

    def export_dir(self, serving_model_dir: str) -> str:
        """Where this process saves: the serving dir on the chief, scratch elsewhere."""
        return serving_model_dir if self.is_chief else os.path.join(self._scratch, "model")

    def finished_training(self) -> None:
        if self._cluster is None:  # Keras removed the checkpoint, not its folder
            _remove_if_empty(backup_dir(self.model_run_dir))

    @contextmanager
    def active(self) -> Iterator[TrainingSession]:
        """Sets the precision policy and the scratch folder for the block; restores both."""
        previous_policy = tf.keras.mixed_precision.global_policy()
        self._scratch = "" if self.is_chief else tempfile.mkdtemp(prefix="trainer-worker-")
        try:
            if self.settings.mixed_precision:
                tf.keras.mixed_precision.set_global_policy(self._plan.mixed_precision_policy)
                logging.info("trainer mixed precision: %s", self._plan.mixed_precision_policy)
            yield self
        finally:
            tf.keras.mixed_precision.set_global_policy(previous_policy)
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)
