"""How the Trainer step runs training: in its own process, or as launched workers.

`LaunchConfig` travels from the pipeline config to the Trainer executor as
the JSON exec property `launch` (like `custom_config` carries TrainingParams),
and `make_launcher` picks the launcher it names:

| launcher      | workers == 1            | workers > 1                              |
| ------------- | ----------------------- | ---------------------------------------- |
| `local`       | in the Trainer process  | N processes on this host                 |
| `indexed_job` | in the Trainer process  | Kubernetes Indexed Job + headless Service |
| `tfjob`       | in the Trainer process  | a TFJob (Kubeflow Training Operator)     |

A Kubernetes launcher also runs a single worker as a pod when a TPU is
configured, since only the launched pod can carry the TPU node selector.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

LOCAL = "local"
INDEXED_JOB = "indexed_job"
TFJOB = "tfjob"
LAUNCHERS = (LOCAL, INDEXED_JOB, TFJOB)
WORKER_MODULE = "components.trainer.worker"


class WorkerFailedError(RuntimeError):
    """Training workers failed (and restarts, if any, were used up)."""


@dataclass(frozen=True)
class KubernetesWorkers:
    """Pods of the Kubernetes launchers.

    Empty image, namespace and service account mean the Trainer step pod's own.

    Attributes:
        image: Worker image (with tag).
        namespace: Namespace of the Job/TFJob and its pods.
        service_account: Service account of the worker pods.
        port: Port of TensorFlow's collective gRPC server in each pod.
        cpu_request: CPUs per worker (0: unset).
        cpu_limit: CPU limit per worker.
        memory_request_gb: Memory per worker, GB.
        memory_limit_gb: Memory limit per worker, GB.
        accelerator_count: GPUs or TPU chips per worker.
        accelerator_type: Extended resource name: nvidia.com/gpu, google.com/tpu.
        node_selector: Node labels, e.g. the GKE GPU or TPU node pool's.
    """

    image: str = ""
    namespace: str = ""
    service_account: str = ""
    port: int = 2222
    cpu_request: float = 0.0
    cpu_limit: float = 0.0
    memory_request_gb: float = 0.0
    memory_limit_gb: float = 0.0
    accelerator_count: int = 0
    accelerator_type: str = "nvidia.com/gpu"
    node_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchConfig:
    """Where and how many training workers run.

    Attributes:
        workers: Worker processes or pods.
        launcher: `local`, `indexed_job` or `tfjob`.
        max_restarts: Times a failed group of workers is restarted (each
            restart resumes from the BackupAndRestore checkpoint).
        tpu: TPU name; with a Kubernetes launcher it makes one worker a pod.
        kubernetes: Pods of the Kubernetes launchers.
    """

    workers: int = 1
    launcher: str = LOCAL
    max_restarts: int = 2
    tpu: str = ""
    kubernetes: KubernetesWorkers = field(default_factory=KubernetesWorkers)

    @property
    def launches_workers(self) -> bool:
        """False: train in the Trainer's own process."""
        return self.workers > 1 or (self.launcher != LOCAL and bool(self.tpu))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> LaunchConfig:
        """Reads the `launch` exec property.

        Raises:
            ValueError: Unknown keys, an unknown launcher, or a bad count.
        """
        tree = json.loads(text) if text else {}
        kube = tree.pop("kubernetes", {}) or {}
        _check_keys(tree, cls, "launch")
        _check_keys(kube, KubernetesWorkers, "launch.kubernetes")
        config = cls(**tree, kubernetes=KubernetesWorkers(**kube))
        if config.launcher not in LAUNCHERS:
            raise ValueError(f"Trainer launcher {config.launcher!r} unknown; one of {LAUNCHERS}")
        if config.workers < 1 or config.max_restarts < 0:
            raise ValueError(
                f"Trainer launch needs workers >= 1 and max_restarts >= 0, got {config}"
            )
        return config


def _check_keys(values: Mapping[str, Any], cls: type, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")


def error_line(tail: Sequence[str]) -> str:
    """A worker's own error from its last output lines: the last line naming an exception."""
    for line in reversed(tail):
        text = line.strip()
        head = text.split(":", 1)[0]
        if " " not in head and head.endswith(("Error", "Exception", "Exit", "Interrupt")):
            return text
    return tail[-1].strip() if tail else "(no output)"


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """Turns SIGTERM into an exception, so launchers clean up their workers.

    Kubeflow cancels a step with SIGTERM, which by default ends Python at
    once: no `finally` runs and launched workers keep training. Signal
    handlers can only be set from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise WorkerFailedError("trainer step terminated (SIGTERM); stopping its workers")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_command(python: str, fn_args_uri: str, run_fn: str) -> list[str]:
    """The command every worker runs (see components/trainer/worker.py)."""
    return [python, "-m", WORKER_MODULE, "--fn-args", fn_args_uri, "--run-fn", run_fn]


class Launcher(Protocol):
    def run(self, fn_args: Any, run_fn: str) -> None:
        """Runs `run_fn(fn_args)` on every worker; returns when all succeeded.

        Raises:
            WorkerFailedError: A worker failed and no restart was left.
        """


def make_launcher(config: LaunchConfig) -> Launcher:
    """The launcher `config.launcher` names."""
    if config.launcher == LOCAL:
        from components.trainer.local_workers import LocalWorkers

        return LocalWorkers(config.workers, config.max_restarts)
    from components.trainer.kubernetes_workers import KubernetesLauncher

    return KubernetesLauncher(config)
