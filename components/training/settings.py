"""The trainer settings: hyperparameters and where the workers run, defined once.

`TrainerSettings` is the configuration's `trainer` section. The pipeline
hands it to the Trainer as JSON (`custom_config["trainer"]`, without the step
counts, which are runtime parameters of their own), and the executor, the
launchers, `run_fn` and the model package all read that same object back:
there is no second list of these fields anywhere.

| launcher      | workers == 1            | workers > 1                               |
| ------------- | ----------------------- | ----------------------------------------- |
| `local`       | in the Trainer process  | N processes on this host                  |
| `indexed_job` | in the Trainer process  | Kubernetes Indexed Job + headless Service |
| `tfjob`       | in the Trainer process  | a TFJob (Kubeflow Training Operator)      |

A Kubernetes launcher also runs a single worker as a pod when a TPU is
configured, since only the launched pod can carry the TPU node selector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from components.errors import ConfigError

LOCAL = "local"
INDEXED_JOB = "indexed_job"
TFJOB = "tfjob"
LAUNCHERS = (LOCAL, INDEXED_JOB, TFJOB)
# What the Trainer reads (`trainer.examples`).
RAW = "raw"
TRANSFORMED = "transformed"
TRAINER_EXAMPLES = (RAW, TRANSFORMED)


@dataclass(frozen=True)
class ComponentResources:
    """CPU, memory and accelerators of one pod.

    0 leaves a value unset (the cluster's defaults apply).

    Attributes:
        cpu_request: CPUs requested.
        cpu_limit: CPU limit.
        memory_request_gb: Memory requested, GB (10^9 bytes, as KFP counts).
        memory_limit_gb: Memory limit, GB.
        accelerator_count: Accelerators (GPUs, TPU chips) per pod.
        accelerator_type: Kubernetes resource name of the accelerator, e.g.
            nvidia.com/gpu or google.com/tpu.
    """

    cpu_request: float = 0.0
    cpu_limit: float = 0.0
    memory_request_gb: float = 0.0
    memory_limit_gb: float = 0.0
    accelerator_count: int = 0
    accelerator_type: str = "nvidia.com/gpu"

    def check(self, where: str) -> None:
        for name in ("cpu_request", "cpu_limit", "memory_request_gb", "memory_limit_gb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be >= 0, got {getattr(self, name)}")
        for request_name, limit_name in (
            ("cpu_request", "cpu_limit"),
            ("memory_request_gb", "memory_limit_gb"),
        ):
            request, limit = getattr(self, request_name), getattr(self, limit_name)
            if request and limit and request > limit:
                raise ConfigError(
                    f"{where}.{request_name}={request} exceeds {where}.{limit_name}={limit}"
                )
        if self.accelerator_count < 0:
            raise ConfigError(f"{where}.accelerator_count must be >= 0")
        if self.accelerator_count and not self.accelerator_type:
            raise ConfigError(f"{where}.accelerator_type must name a resource, e.g. nvidia.com/gpu")


@dataclass(frozen=True)
class KubernetesWorkers:
    """Worker pods of the `indexed_job` and `tfjob` launchers.

    Attributes:
        image: Worker image with tag; empty: the Trainer step pod's own.
        namespace: Namespace of the workers; empty: the Trainer step pod's.
        service_account: Service account of the workers; empty: the Trainer
            step pod's.
        port: Port of TensorFlow's collective gRPC server in each pod.
        resources: CPU, memory and GPUs/TPU chips per worker.
        node_selector: Node labels per worker, e.g. a GPU or TPU node pool's.
    """

    image: str = ""
    namespace: str = ""
    service_account: str = ""
    port: int = 2222
    resources: ComponentResources = field(default_factory=ComponentResources)
    node_selector: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"trainer.kubernetes.port must be in 1..65535, got {self.port}")
        self.resources.check("trainer.kubernetes.resources")


@dataclass(frozen=True)
class TrainerSettings:
    """Training: steps, hyperparameters, precision, and where the workers run.

    Attributes:
        train_steps: Training steps (global batches: the same at any worker count).
        eval_steps: Validation steps after training.
        workers: Data-parallel workers (MultiWorkerMirroredStrategy over
            TF_CONFIG); 1 trains in the Trainer's own process.
        launcher: What starts the workers: `local` (processes on the
            Trainer's host), `indexed_job` (a Kubernetes Indexed Job and a
            headless Service) or `tfjob` (a Kubeflow Training Operator TFJob).
        max_restarts: Restarts of a failed group of workers; each resumes
            from the BackupAndRestore checkpoint.
        batch_size: Examples per replica per step; the global batch is this
            times the replicas (workers x devices).
        learning_rate: Adam learning rate.
        hidden_units: Deep tower widths.
        embedding_dim: Embedding width of categorical and text features that
            set none of their own.
        seed: Seed for init and shuffling.
        mixed_precision: float16 compute on GPU, bfloat16 on TPU and CPU.
        jit_compile: Compile the train step with XLA.
        tpu: TPU for TPUStrategy (TPUClusterResolver name; `local` on a TPU
            VM or a GKE TPU node); empty for none.
        kubernetes: Worker pods of the Kubernetes launchers.
        examples: What training reads. `raw`: ExampleGen's examples, put
            through the transform graph a batch at a time as they are read
            (Transform then only analyzes the data). `transformed`: the
            examples Transform writes out once (a pass over all the data and
            a copy of it, which pays off when training reads the data many
            times over, e.g. many epochs on an accelerator that the
            transform on the CPU cannot keep fed).
    """

    train_steps: int = 1000
    eval_steps: int = 100
    workers: int = 1
    launcher: str = LOCAL
    max_restarts: int = 2
    batch_size: int = 128
    learning_rate: float = 0.001
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    seed: int = 42
    mixed_precision: bool = False
    jit_compile: bool = False
    tpu: str = ""
    kubernetes: KubernetesWorkers = field(default_factory=KubernetesWorkers)
    examples: str = RAW

    def validate(self) -> None:
        for name in ("train_steps", "eval_steps", "batch_size", "embedding_dim", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.launcher not in LAUNCHERS:
            raise ConfigError(
                f"trainer.launcher must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}"
            )
        if self.examples not in TRAINER_EXAMPLES:
            raise ConfigError(
                f"trainer.examples must be one of {', '.join(TRAINER_EXAMPLES)}, "
                f"got {self.examples!r}"
            )
        if self.max_restarts < 0:
            raise ConfigError(f"trainer.max_restarts must be >= 0, got {self.max_restarts}")
        if self.tpu and self.workers > 1:
            raise ConfigError(
                f"trainer.tpu={self.tpu!r} with trainer.workers={self.workers}: a TPU slice "
                "trains as one worker; size it with its topology "
                "(trainer.kubernetes.node_selector), keep workers at 1"
            )
        self.kubernetes.validate()
        if not self.learning_rate > 0:
            raise ConfigError(f"trainer.learning_rate must be > 0, got {self.learning_rate}")
        if not self.hidden_units or any(u < 1 for u in self.hidden_units):
            raise ConfigError(
                f"trainer.hidden_units must be positive ints, got {list(self.hidden_units)}"
            )

    @property
    def launches_workers(self) -> bool:
        """False: train in the Trainer's own process."""
        return self.workers > 1 or (self.launcher != LOCAL and bool(self.tpu))

    def with_steps(self, train_steps: int, eval_steps: int) -> TrainerSettings:
        return replace(self, train_steps=train_steps, eval_steps=eval_steps)

    def to_json(self) -> str:
        """The settings as the Trainer's custom_config carries them (no step counts).

        The step counts travel as parameters of their own, settable per run.
        """
        from components.typed import to_plain

        plain = to_plain(self)
        del plain["train_steps"], plain["eval_steps"]
        return json.dumps(plain, sort_keys=True)

    @classmethod
    def from_plain(
        cls, values: Mapping[str, Any] | str, train_steps: int, eval_steps: int
    ) -> TrainerSettings:
        """Rebuilds the settings from `to_json`'s output and the two step counts.

        Raises:
            ConfigError: An unknown key or a bad value, named.
        """
        from components.typed import build

        tree = dict(json.loads(values) if isinstance(values, str) else values)
        tree.update(train_steps=train_steps, eval_steps=eval_steps)
        settings = build(cls, tree, "trainer.")
        settings.validate()
        return settings
