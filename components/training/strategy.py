"""The distribution strategy factory: TF_CONFIG, devices and config in, a strategy out.

| input                                  | strategy                                   |
| -------------------------------------- | ------------------------------------------ |
| a TPU name                             | TPUStrategy through TPUClusterResolver     |
| a TF_CONFIG cluster (worker [+ chief]) | MultiWorkerMirroredStrategy, NCCL on GPU,   |
|                                        | RING on CPU                                |
| no cluster, 2+ GPUs                    | MirroredStrategy over the local GPUs       |
| no cluster, 0 or 1 GPU                 | one device: TensorFlow's default strategy  |

One device gets the default strategy rather than OneDeviceStrategy: both
place everything on the one GPU (or the CPU), but Keras' BackupAndRestore
refuses OneDeviceStrategy.

Model code never branches on the strategy: `run_fn` builds the model inside
`strategy.scope()` and feeds it per-replica batches.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import tensorflow as tf

from components.training.cluster import ClusterConfig


class Kind(enum.Enum):
    ONE_DEVICE = "default strategy (one device)"
    MIRRORED = "MirroredStrategy"
    MULTI_WORKER = "MultiWorkerMirroredStrategy"
    TPU = "TPUStrategy"


class Accelerator(enum.Enum):
    CPU = "CPU"
    GPU = "GPU"
    TPU = "TPU"


@dataclass(frozen=True)
class StrategyPlan:
    """Which strategy to build, decided without touching the devices.

    Attributes:
        kind: The strategy class.
        accelerator: The device type replicas run on.
        device: The one device (e.g. `/gpu:0`) when there is no cluster.
        collectives: All-reduce implementation of MultiWorkerMirroredStrategy.
        tpu: TPU name or address for TPUClusterResolver (`local` on a TPU VM).
    """

    kind: Kind
    accelerator: Accelerator
    device: str = ""
    collectives: str = ""
    tpu: str = ""

    @property
    def supports_xla(self) -> bool:
        """Whether the train step can be XLA-compiled under this strategy.

        XLA compiles NCCL all-reduces only: with several workers on CPU
        (RING collectives) TF 2.16 fails every step ("Only compiling
        NCCL/auto collective is supported").
        """
        return not (self.kind is Kind.MULTI_WORKER and self.accelerator is Accelerator.CPU)

    @property
    def mixed_precision_policy(self) -> str:
        """Keras policy for mixed precision on this accelerator.

        float16 needs loss scaling but is what GPU tensor cores run fastest;
        TPUs (and recent CPUs) compute natively in bfloat16, which keeps
        float32's range and so needs no loss scaling.
        """
        return "mixed_float16" if self.accelerator is Accelerator.GPU else "mixed_bfloat16"


def plan_strategy(cluster: ClusterConfig | None, tpu: str, num_gpus: int) -> StrategyPlan:
    """Chooses the strategy for this process (see the module's table).

    Args:
        cluster: This process's TF_CONFIG cluster, or None.
        tpu: TPU to train on; empty for none.
        num_gpus: GPUs visible to this process.

    Raises:
        ValueError: A TPU is combined with a multi-worker cluster: a TPU slice
            is one TensorFlow worker, scaled by its topology.
    """
    if tpu:
        if cluster is not None and cluster.num_workers > 1:
            raise ValueError(
                f"TPU {tpu!r} with a {cluster.num_workers}-worker TF_CONFIG: a TPU slice "
                "trains as one worker; scale it with the slice topology instead"
            )
        return StrategyPlan(Kind.TPU, Accelerator.TPU, tpu=tpu)
    accelerator = Accelerator.GPU if num_gpus else Accelerator.CPU
    if cluster is not None:
        collectives = "NCCL" if num_gpus else "RING"
        return StrategyPlan(Kind.MULTI_WORKER, accelerator, collectives=collectives)
    if num_gpus > 1:
        return StrategyPlan(Kind.MIRRORED, accelerator)
    return StrategyPlan(Kind.ONE_DEVICE, accelerator, device="/gpu:0" if num_gpus else "/cpu:0")


def make_strategy(plan: StrategyPlan) -> tf.distribute.Strategy:
    """Builds the planned strategy.

    MultiWorkerMirroredStrategy must be built before the process runs any
    other TensorFlow op, and reads the cluster from TF_CONFIG itself.

    Raises:
        RuntimeError: The TPU cannot be reached or initialised.
    """
    if plan.kind is Kind.TPU:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=plan.tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise RuntimeError(f"cannot reach or initialise TPU {plan.tpu!r}: {e}") from e
        strategy: tf.distribute.Strategy = tf.distribute.TPUStrategy(resolver)
    elif plan.kind is Kind.MULTI_WORKER:
        implementation = (
            tf.distribute.experimental.CommunicationImplementation.NCCL
            if plan.collectives == "NCCL"
            else tf.distribute.experimental.CommunicationImplementation.RING
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=implementation
            )
        )
    elif plan.kind is Kind.MIRRORED:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    logging.info(
        "trainer strategy: %s on %s (%d replica(s) in sync)%s",
        plan.kind.value,
        plan.accelerator.value,
        strategy.num_replicas_in_sync,
        f", {plan.collectives} collectives" if plan.collectives else "",
    )
    return strategy


def visible_gpus() -> int:
    """GPUs this process can use (listing them does not start the runtime)."""
    return len(tf.config.list_physical_devices("GPU"))
