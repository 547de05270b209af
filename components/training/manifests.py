"""Kubernetes manifests of the training workers: Indexed Job + headless Service, or TFJob.

Pure functions from settings to plain dicts; the launcher submits them and
the tests validate them against the Kubernetes and TFJob schemas.

Indexed Job: every pod runs the same command, and the worker derives its
TF_CONFIG from its completion index and the list of worker addresses. Pod
`i` is reachable as `<job>-<i>.<service>` because the pods set the headless
Service as their subdomain; the Service publishes addresses before the pods
are ready, since TensorFlow dials its peers while starting up.

TFJob: the Training Operator creates the pods and sets TF_CONFIG itself; its
container must be named `tensorflow`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.training.settings import KubernetesWorkers

JOB_LABEL = "mlops-pipeline/training-job"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
TFJOB_INDEX_LABEL = "training.kubeflow.org/replica-index"
WORKER_CONTAINER = "worker"
TFJOB_CONTAINER = "tensorflow"  # the Training Operator finds the container by this name
PORT_NAME = "tf-grpc"
TFJOB_PORT_NAME = "tfjob-port"  # the Training Operator takes the TF_CONFIG port from this name
# Finished Jobs disappear on their own even if the Trainer step dies before
# it can delete them.
TTL_AFTER_FINISHED_S = 3600
# Keep Kubeflow's Istio sidecar out: it would keep a finished worker pod
# running, and TensorFlow's collective gRPC needs no mesh.
POD_ANNOTATIONS = {"sidecar.istio.io/inject": "false"}
WORKER_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}
GPU_RESOURCE = "nvidia.com/gpu"
# Set on GPU workers so a CPU-only image fails loudly instead of training on CPU.
EXPECTED_GPUS_ENV = "TRAINER_EXPECTED_GPUS"


def job_name(model_run_dir: str) -> str:
    """A DNS-safe name: the Trainer execution (its ModelRun folder) plus a random part.

    The random part keeps a retried task (same ModelRun folder) clear of a
    job its earlier attempt left behind. Short enough that `<name>-<index>`
    stays a valid pod hostname.
    """
    digest = hashlib.sha256(model_run_dir.encode()).hexdigest()[:10]
    return f"trainer-{digest}-{uuid.uuid4().hex[:5]}"


@dataclass(frozen=True)
class WorkerPods:
    """What every worker pod of one training job shares.

    Attributes:
        name: Job (and Service) name.
        namespace: Namespace of the job.
        image: Worker image.
        command: The worker command, without `--hosts`.
        workers: Number of workers.
        backoff_limit: Pod restarts the job tolerates before failing.
        settings: Resources, node selector, service account, port.
    """

    name: str
    namespace: str
    image: str
    command: tuple[str, ...]
    workers: int
    backoff_limit: int
    settings: KubernetesWorkers

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "mlops-trainer",
            "app.kubernetes.io/component": "training-worker",
            JOB_LABEL: self.name,
        }

    def addresses(self) -> list[str]:
        """Worker `host:port`s in index order, as the Indexed Job names its pods."""
        return [
            f"{self.name}-{i}.{self.name}.{self.namespace}.svc:{self.settings.port}"
            for i in range(self.workers)
        ]


def _quantity(value: float, unit: str = "") -> str:
    return f"{value:g}{unit}"


def resources(settings: KubernetesWorkers) -> dict[str, dict[str, str | int]]:
    """Container requests and limits; accelerators go in both (they cannot overcommit)."""
    requests: dict[str, str | int] = {}
    limits: dict[str, str | int] = {}
    if settings.resources.cpu_request:
        requests["cpu"] = _quantity(settings.resources.cpu_request)
    if settings.resources.cpu_limit:
        limits["cpu"] = _quantity(settings.resources.cpu_limit)
    if settings.resources.memory_request_gb:
        requests["memory"] = _quantity(settings.resources.memory_request_gb, "G")
    if settings.resources.memory_limit_gb:
        limits["memory"] = _quantity(settings.resources.memory_limit_gb, "G")
    if settings.resources.accelerator_count:
        requests[settings.resources.accelerator_type] = settings.resources.accelerator_count
        limits[settings.resources.accelerator_type] = settings.resources.accelerator_count
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _container(
    pods: WorkerPods, name: str, command: Sequence[str], port_name: str
) -> dict[str, Any]:
    env = dict(WORKER_ENV)
    if (
        pods.settings.resources.accelerator_count
        and pods.settings.resources.accelerator_type == GPU_RESOURCE
    ):
        env[EXPECTED_GPUS_ENV] = str(pods.settings.resources.accelerator_count)
    container: dict[str, Any] = {
        "name": name,
        "image": pods.image,
        "command": list(command),
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": port_name, "containerPort": pods.settings.port}],
    }
    if res := resources(pods.settings):
        container["resources"] = res
    return container


def _pod_spec(pods: WorkerPods, container: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container]}
    if pods.settings.service_account:
        spec["serviceAccountName"] = pods.settings.service_account
    if pods.settings.node_selector:
        spec["nodeSelector"] = dict(pods.settings.node_selector)
    return spec


def headless_service(pods: WorkerPods, job_uid: str = "") -> dict[str, Any]:
    """The Service that gives each Indexed Job pod a stable DNS name.

    Owned by the Job (given its uid), so Kubernetes deletes it with the Job.
    """
    metadata: dict[str, Any] = {
        "name": pods.name,
        "namespace": pods.namespace,
        "labels": pods.labels,
    }
    if job_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": pods.name, "uid": job_uid}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: pods.name},
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": PORT_NAME, "port": pods.settings.port, "targetPort": pods.settings.port}
            ],
        },
    }


def indexed_job(pods: WorkerPods) -> dict[str, Any]:
    """An Indexed Job of `pods.workers` pods that derive TF_CONFIG from their index."""
    command = [*pods.command, "--hosts", ",".join(pods.addresses())]
    spec = _pod_spec(pods, _container(pods, WORKER_CONTAINER, command, PORT_NAME))
    spec["subdomain"] = pods.name
    # OnFailure restarts a worker in place, keeping its hostname (and so
    # the TF_CONFIG of its peers) valid; it resumes from the backup.
    spec["restartPolicy"] = "OnFailure"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": pods.name, "namespace": pods.namespace, "labels": pods.labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": pods.workers,
            "parallelism": pods.workers,
            "backoffLimit": pods.backoff_limit,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
            "template": {
                "metadata": {"labels": pods.labels, "annotations": dict(POD_ANNOTATIONS)},
                "spec": spec,
            },
        },
    }


def tfjob(pods: WorkerPods) -> dict[str, Any]:
    """A TFJob of `pods.workers` workers; the Training Operator sets their TF_CONFIG."""
    spec = _pod_spec(pods, _container(pods, TFJOB_CONTAINER, pods.command, TFJOB_PORT_NAME))
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": pods.name, "namespace": pods.namespace, "labels": pods.labels},
        "spec": {
            "runPolicy": {
                "cleanPodPolicy": "None",
                "backoffLimit": pods.backoff_limit,
                "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
            },
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": pods.workers,
                    "restartPolicy": "OnFailure",
                    "template": {
                        "metadata": {"labels": pods.labels, "annotations": dict(POD_ANNOTATIONS)},
                        "spec": spec,
                    },
                }
            },
        },
    }
