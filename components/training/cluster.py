"""TF_CONFIG: the cluster a training process belongs to, read and written.

Kubernetes training jobs (our Indexed Job launcher, the Training Operator's
TFJob, Vertex AI) describe a multi-worker cluster to each process in the
TF_CONFIG environment variable. TensorFlow reads it itself, but reports a
malformed one late and obscurely, so `run_fn` checks it here first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TF_CONFIG = "TF_CONFIG"
CHIEF = "chief"
WORKER = "worker"
# Data-parallel training (MultiWorkerMirroredStrategy) knows these two roles;
# parameter servers and side-car evaluators belong to other strategies.
TASK_TYPES = (CHIEF, WORKER)


class ClusterConfigError(ValueError):
    """TF_CONFIG is malformed or describes a cluster we cannot train on."""


@dataclass(frozen=True)
class ClusterConfig:
    """One process's view of a training cluster.

    Attributes:
        cluster: Task type -> addresses (`host:port`), in task-index order.
        task_type: This process's role, `chief` or `worker`.
        task_index: This process's index within its role.
    """

    cluster: Mapping[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        """Training processes in the cluster (chief included)."""
        return sum(len(self.cluster.get(t, ())) for t in TASK_TYPES)

    @property
    def is_chief(self) -> bool:
        """Whether this process exports the model and writes summaries.

        The `chief` task when there is one, else worker 0: TensorFlow's own rule.
        """
        if CHIEF in self.cluster:
            return self.task_type == CHIEF
        return self.task_type == WORKER and self.task_index == 0

    def to_json(self) -> str:
        """The TF_CONFIG value for this process."""
        return json.dumps(
            {
                "cluster": {k: list(v) for k, v in self.cluster.items()},
                "task": {"type": self.task_type, "index": self.task_index},
            },
            sort_keys=True,
        )


def parse_tf_config(text: str | None) -> ClusterConfig | None:
    """Parses a TF_CONFIG value.

    Args:
        text: The variable's value; None or blank when it is not set.

    Returns:
        The cluster, or None when `text` is empty or has no cluster (one
        process training alone).

    Raises:
        ClusterConfigError: The value is not JSON, names an unknown task type,
            has a task index out of range, or an address without a port.
    """
    if text is None or not text.strip():
        return None
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON ({e}): {text[:200]!r}") from None
    if not isinstance(tree, dict):
        raise ClusterConfigError(f"TF_CONFIG must be a JSON object, got {text[:200]!r}")
    cluster_tree = tree.get("cluster") or {}
    if not cluster_tree:
        return None
    if not isinstance(cluster_tree, dict):
        raise ClusterConfigError(
            f"TF_CONFIG cluster must map task types to lists, got {cluster_tree!r}"
        )
    unknown = sorted(set(cluster_tree) - set(TASK_TYPES))
    if unknown:
        raise ClusterConfigError(
            f"TF_CONFIG cluster has task type(s) {unknown}; data-parallel training "
            f"supports only {list(TASK_TYPES)}"
        )
    cluster: dict[str, tuple[str, ...]] = {}
    for task_type, addresses in cluster_tree.items():
        if isinstance(addresses, str) or not isinstance(addresses, list) or not addresses:
            raise ClusterConfigError(
                f"TF_CONFIG cluster.{task_type} must be a non-empty list of host:port, "
                f"got {addresses!r}"
            )
        for address in addresses:
            _check_address(address, f"cluster.{task_type}")
        cluster[task_type] = tuple(addresses)
    if len(cluster.get(CHIEF, ())) > 1:
        raise ClusterConfigError(f"TF_CONFIG has {len(cluster[CHIEF])} chiefs; at most 1")

    task = tree.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterConfigError(
            f"TF_CONFIG task must be {{'type': ..., 'index': ...}}, got {task!r}"
        )
    task_type, task_index = task["type"], task["index"]
    if task_type not in cluster:
        raise ClusterConfigError(
            f"TF_CONFIG task type {task_type!r} is not in the cluster {sorted(cluster)}"
        )
    if isinstance(task_index, bool) or not isinstance(task_index, int):
        raise ClusterConfigError(f"TF_CONFIG task index must be an integer, got {task_index!r}")
    if not 0 <= task_index < len(cluster[task_type]):
        raise ClusterConfigError(
            f"TF_CONFIG task index {task_index} is out of range for {task_type!r} "
            f"({len(cluster[task_type])} address(es))"
        )
    return ClusterConfig(cluster=cluster, task_type=task_type, task_index=task_index)


def _check_address(address: Any, where: str) -> None:
    if not isinstance(address, str):
        raise ClusterConfigError(f"TF_CONFIG {where}: expected 'host:port', got {address!r}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterConfigError(f"TF_CONFIG {where}: expected 'host:port', got {address!r}")


def worker_cluster(addresses: Sequence[str], index: int) -> ClusterConfig:
    """TF_CONFIG of worker `index` in a cluster of equal workers (no chief).

    Worker 0 is then the chief. This is the layout our launchers create: the
    local process launcher and the Indexed Job (index = completion index).

    Raises:
        ClusterConfigError: `index` is out of range or an address is malformed.
    """
    if not addresses:
        raise ClusterConfigError("a worker cluster needs at least one address")
    for address in addresses:
        _check_address(address, "worker address")
    if not 0 <= index < len(addresses):
        raise ClusterConfigError(
            f"worker index {index} is out of range for {len(addresses)} worker(s)"
        )
    return ClusterConfig(cluster={WORKER: tuple(addresses)}, task_type=WORKER, task_index=index)
