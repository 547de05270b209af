"""The `indexed_job` and `tfjob` launchers: training workers as Kubernetes pods.

The Trainer step (a Kubeflow pod) creates the workers itself, since Kubeflow
Pipelines dropped its TFJob launcher component:

1. writes FnArgs where every pod can read it (under the ModelRun artifact);
2. creates a headless Service and an Indexed Job (or a TFJob);
3. polls the job and its pods, streaming each worker container's log with a
   `[worker i]` prefix;
4. on failure raises with the failing pod's reason (OOMKilled, Evicted, an
   exit code) and the worker's own last error line;
5. deletes what it created, whatever happened.

Image, namespace and service account default to the Trainer pod's own, read
from the Kubernetes API (the pod's name is its HOSTNAME).
"""

from __future__ import annotations

import codecs
import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from components.training import manifests
from components.training.settings import INDEXED_JOB, TFJOB, TrainerSettings
from components.training.worker import dump_fn_args
from components.training.workers import (
    WorkerFailedError,
    error_line,
    terminate_raises,
    worker_command,
)

TFJOB_GROUP, TFJOB_VERSION, TFJOB_PLURAL = "kubeflow.org", "v1", "tfjobs"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_TAIL_LINES = 60
_LOG_JOIN_S = 30.0
_TIMEOUT = (10, 60)  # connect, read seconds of each status call
# How long the API may be unreachable or failing (429, 5xx) before the
# launcher gives up; a blip must not cost a training run.
_API_OUTAGE_S = 300.0
_TRANSIENT = {408, 429, 500, 502, 503, 504}


class KubernetesLaunchError(RuntimeError):
    """The workers could not be created (settings, permissions, API errors)."""


@dataclass(frozen=True)
class OwnPod:
    """The Trainer step's own pod, whose settings the workers inherit."""

    name: str
    namespace: str
    image: str
    service_account: str


def load_api_client() -> k8s.ApiClient:
    """In-cluster credentials in a pod, else the local kubeconfig."""
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    return k8s.ApiClient()


def _is_shared_uri(path: str) -> bool:
    return "://" in path


def _api_error(action: str, e: ApiException) -> KubernetesLaunchError:
    hint = ""
    if e.status == 403:
        hint = (
            " (the pipeline's service account needs the trainer RBAC: "
            "kubectl apply -k kubernetes/trainer-rbac)"
        )
    return KubernetesLaunchError(f"cannot {action}: {e.status} {e.reason}{hint}: {e.body}")


class KubernetesLauncher:
    """Runs training workers as an Indexed Job (+ headless Service) or a TFJob."""

    def __init__(
        self,
        config: TrainerSettings,
        api_client: k8s.ApiClient | None = None,
        own_pod_name: str | None = None,
        own_namespace: str | None = None,
        poll_s: float = 5.0,
        log: Callable[[str], None] = logging.info,
    ):
        self.config = config
        self._api_client = api_client
        self.own_pod_name = (
            own_pod_name if own_pod_name is not None else os.environ.get("HOSTNAME", "")
        )
        self.own_namespace = own_namespace if own_namespace is not None else _read_namespace()
        self.poll_s = poll_s
        self.log = log
        self._tails: dict[int, collections.deque[str]] = {}
        self._failures: dict[tuple[str, str], tuple[Any, int, str]] = {}
        self._streams: dict[tuple[str, int], threading.Thread] = {}

    def run(self, fn_args: Any, run_fn: str) -> None:
        """Trains on the cluster; returns when the job succeeded.

        Raises:
            KubernetesLaunchError: Bad settings or an API error creating the job.
            WorkerFailedError: The job failed.
        """
        api = self._api_client or load_api_client()
        core, batch, custom = k8s.CoreV1Api(api), k8s.BatchV1Api(api), k8s.CustomObjectsApi(api)
        pods = self._worker_pods(core, fn_args, run_fn)
        fn_args_uri = self._fn_args_uri(fn_args)

        import tensorflow as tf

        tf.io.gfile.makedirs(os.path.dirname(fn_args_uri))
        with tf.io.gfile.GFile(fn_args_uri, "w") as f:
            f.write(dump_fn_args(fn_args))
        created: list[tuple[str, Callable[[], Any]]] = []
        try:
            with terminate_raises():
                self._create(pods, core, batch, custom, created)
                self._wait(pods, core, batch, custom)
        finally:
            for what, delete in reversed(created):
                try:
                    delete()
                    self.log(f"trainer: deleted {what}")
                except ApiException as e:
                    if e.status != 404:
                        self.log(f"trainer: could not delete {what}: {e.status} {e.reason}")
            try:
                tf.io.gfile.rmtree(os.path.dirname(fn_args_uri))
            except tf.errors.OpError as e:  # must not hide the training outcome
                self.log(f"trainer: could not remove {fn_args_uri}: {e}")

    def _fn_args_uri(self, fn_args: Any) -> str:
        run_dir = str(fn_args.model_run_dir)
        if not _is_shared_uri(run_dir):
            raise KubernetesLaunchError(
                f"worker pods cannot read the Trainer's local folder {run_dir}: use a "
                "pipeline root on shared storage (gs://, s3://) with the "
                f"{self.config.launcher} launcher"
            )
        return f"{run_dir.rstrip('/')}/launch/fn_args.json"

    def _own_pod(self, core: k8s.CoreV1Api) -> OwnPod | None:
        if not self.own_pod_name or not self.own_namespace:
            return None
        try:
            pod = core.read_namespaced_pod(self.own_pod_name, self.own_namespace)
        except ApiException as e:
            raise _api_error(f"read the Trainer's own pod {self.own_pod_name}", e) from None
        containers = pod.spec.containers
        main = next((c for c in containers if c.name == "main"), containers[0])
        return OwnPod(
            name=self.own_pod_name,
            namespace=self.own_namespace,
            image=main.image,
            service_account=pod.spec.service_account_name or "",
        )

    def _worker_pods(self, core: k8s.CoreV1Api, fn_args: Any, run_fn: str) -> manifests.WorkerPods:
        settings = self.config.kubernetes
        own = None
        if not (settings.image and settings.namespace and settings.service_account):
            own = self._own_pod(core)
        image = settings.image or (own.image if own else "")
        namespace = settings.namespace or (own.namespace if own else "")
        if not image or not namespace:
            raise KubernetesLaunchError(
                "trainer.kubernetes.image and trainer.kubernetes.namespace are empty and the "
                "Trainer is not running in a pod to take them from; set both"
            )
        if own and not settings.service_account:
            settings = replace(settings, service_account=own.service_account)
        workers = self.config.workers
        return manifests.WorkerPods(
            name=manifests.job_name(str(fn_args.model_run_dir)),
            namespace=namespace,
            image=image,
            command=tuple(worker_command("python", self._fn_args_uri(fn_args), run_fn)),
            workers=workers,
            # A failed worker takes its peers' collectives down with it, so
            # one failure costs up to `workers` pod restarts.
            backoff_limit=self.config.max_restarts * workers,
            settings=settings,
        )

    def _create(
        self,
        pods: manifests.WorkerPods,
        core: k8s.CoreV1Api,
        batch: k8s.BatchV1Api,
        custom: k8s.CustomObjectsApi,
        created: list[tuple[str, Callable[[], Any]]],
    ) -> None:
        ns, name = pods.namespace, pods.name
        try:
            if self.config.launcher == INDEXED_JOB:
                job = batch.create_namespaced_job(ns, manifests.indexed_job(pods))
                created.append(
                    (
                        f"Job {ns}/{name}",
                        lambda: batch.delete_namespaced_job(
                            name, ns, propagation_policy="Background"
                        ),
                    )
                )
                # Owned by the Job: it goes with the Job even if this step dies.
                core.create_namespaced_service(
                    ns, manifests.headless_service(pods, job_uid=job.metadata.uid or "")
                )
                created.append(
                    (f"Service {ns}/{name}", lambda: core.delete_namespaced_service(name, ns))
                )
            elif self.config.launcher == TFJOB:
                custom.create_namespaced_custom_object(
                    TFJOB_GROUP, TFJOB_VERSION, ns, TFJOB_PLURAL, manifests.tfjob(pods)
                )
                created.append(
                    (
                        f"TFJob {ns}/{name}",
                        lambda: custom.delete_namespaced_custom_object(
                            TFJOB_GROUP, TFJOB_VERSION, ns, TFJOB_PLURAL, name
                        ),
                    )
                )
            else:
                raise KubernetesLaunchError(f"not a Kubernetes launcher: {self.config.launcher!r}")
        except ApiException as e:
            raise _api_error(f"create the {self.config.launcher} {ns}/{name}", e) from None
        self.log(
            f"trainer: created {self.config.launcher} {ns}/{name}: {pods.workers} worker(s), "
            f"image {pods.image}"
        )

    def _status(
        self, pods: manifests.WorkerPods, batch: k8s.BatchV1Api, custom: k8s.CustomObjectsApi
    ) -> tuple[str, str]:
        """("running" | "succeeded" | "failed", message) of the job."""
        if self.config.launcher == INDEXED_JOB:
            job = batch.read_namespaced_job_status(
                pods.name, pods.namespace, _request_timeout=_TIMEOUT
            )
            conditions = [
                (c.type, c.status, c.reason or "", c.message or "")
                for c in (job.status.conditions or [])
            ]
            done, failed = "Complete", "Failed"
        else:
            tfjob = custom.get_namespaced_custom_object_status(
                TFJOB_GROUP,
                TFJOB_VERSION,
                pods.namespace,
                TFJOB_PLURAL,
                pods.name,
                _request_timeout=_TIMEOUT,
            )
            conditions = [
                (c.get("type"), c.get("status"), c.get("reason", ""), c.get("message", ""))
                for c in (tfjob.get("status") or {}).get("conditions") or []
            ]
            done, failed = "Succeeded", "Failed"
        for kind, status, reason, message in conditions:
            if status == "True" and kind == failed:
                return "failed", f"{reason}: {message}" if message else reason
            if status == "True" and kind == done:
                return "succeeded", message
        return "running", ""

    def _wait(
        self,
        pods: manifests.WorkerPods,
        core: k8s.CoreV1Api,
        batch: k8s.BatchV1Api,
        custom: k8s.CustomObjectsApi,
    ) -> None:
        selector = f"{manifests.JOB_LABEL}={pods.name}"
        pending_noted: set[str] = set()
        failing_since: float | None = None
        while True:
            try:
                listed = core.list_namespaced_pod(
                    pods.namespace, label_selector=selector, _request_timeout=_TIMEOUT
                ).items
                state, message = self._status(pods, batch, custom)
                failing_since = None
            except (ApiException, urllib3.exceptions.HTTPError) as e:
                status = getattr(e, "status", 0) or 0
                if status and status not in _TRANSIENT:
                    raise _api_error(f"watch {self.config.launcher} {pods.name}", e) from None
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > _API_OUTAGE_S:
                    raise KubernetesLaunchError(
                        f"the Kubernetes API kept failing for {_API_OUTAGE_S:.0f} s while "
                        f"watching {pods.name}: {e}"
                    ) from None
                self.log(f"trainer: Kubernetes API error while watching, retrying: {e}")
                time.sleep(self.poll_s)
                continue
            for pod in listed:
                self._note_pending(pod, pending_noted)
                self._record_failures(pod)
                self._follow(core, pod)
            if state == "succeeded":
                self._join_streams()
                self.log(f"trainer: {self.config.launcher} {pods.name} succeeded")
                return
            if state == "failed":
                self._join_streams()
                raise WorkerFailedError(
                    f"training failed: {self.config.launcher} {pods.namespace}/{pods.name} "
                    f"failed ({message}); {self._failed_worker()}"
                )
            time.sleep(self.poll_s)

    def _note_pending(self, pod: Any, noted: set[str]) -> None:
        for condition in pod.status.conditions or []:
            key = f"{pod.metadata.name}/{condition.reason}"
            if (
                condition.type == "PodScheduled"
                and condition.status == "False"
                and key not in noted
            ):
                noted.add(key)
                self.log(
                    f"trainer: pod {pod.metadata.name} is not scheduled yet "
                    f"({condition.reason}: {condition.message})"
                )

    def _follow(self, core: k8s.CoreV1Api, pod: Any) -> None:
        """Starts streaming the log of each worker container that has started."""
        index = worker_index(pod)
        for status in pod.status.container_statuses or []:
            started = status.state.running or status.state.terminated
            key = (pod.metadata.name, status.restart_count or 0)
            if not started or key in self._streams:
                continue
            tail = self._tails.setdefault(index, collections.deque(maxlen=_TAIL_LINES))
            thread = threading.Thread(
                target=self._stream,
                args=(core, pod.metadata.name, pod.metadata.namespace, status.name, index, tail),
                daemon=True,
            )
            self._streams[key] = thread
            thread.start()

    def _stream(
        self,
        core: k8s.CoreV1Api,
        pod: str,
        namespace: str,
        container: str,
        index: int,
        tail: collections.deque[str],
    ) -> None:
        response = None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            response = core.read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, _preload_content=False
            )
            for chunk in response.stream(decode_content=True):
                pending += decoder.decode(chunk)
                *lines, pending = pending.split("\n")
                for line in lines:
                    tail.append(line)
                    self.log(f"[worker {index}] {line}")
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            # Logs are for people; losing them must not fail the training.
            self.log(f"trainer: log stream of pod {pod} ended early: {e}")
        finally:
            pending += decoder.decode(b"", final=True)
            if pending:
                tail.append(pending)
                self.log(f"[worker {index}] {pending}")
            if response is not None:
                response.release_conn()

    def _join_streams(self) -> None:
        deadline = time.monotonic() + _LOG_JOIN_S
        for thread in self._streams.values():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _record_failures(self, pod: Any) -> None:
        """Remembers every failure a pod shows: the Job controller may delete
        the pods before the job reports Failed."""
        index = worker_index(pod)
        name = pod.metadata.name
        if pod.status.reason:  # e.g. Evicted: the whole pod failed
            detail = f"{pod.status.reason}: {pod.status.message or ''}".rstrip(": ")
            self._failures.setdefault(
                (name, "pod"), (None, index, f"worker {index} (pod {name}) {detail}")
            )
        for status in pod.status.container_statuses or []:
            for state in (status.state, status.last_state):
                ended = state.terminated if state else None
                if ended is None or ended.exit_code == 0:
                    continue
                detail = f"{ended.reason or 'Error'} (exit code {ended.exit_code})"
                if ended.message:
                    detail += f": {ended.message.strip()}"
                key = (name, str(ended.finished_at))
                self._failures.setdefault(
                    key, (ended.finished_at, index, f"worker {index} (pod {name}) {detail}")
                )

    def _failed_worker(self) -> str:
        """The first worker failure seen: which worker, why, its error line."""
        if not self._failures:
            tails = {i: t for i, t in self._tails.items() if t}
            if not tails:
                return "no worker pod reported a failure"
            index = min(tails)
            return f"no pod reason seen; worker {index}'s last error: {error_line(tails[index])}"
        failures = sorted(self._failures.values(), key=lambda f: (f[0] is None, f[0] or 0, f[1]))
        _, index, first = failures[0]
        tail = self._tails.get(index)
        return f"{first}; its last error: {error_line(tail)}" if tail else first


def worker_index(pod: Any) -> int:
    """The worker index of a pod of either launcher (-1 if unlabelled)."""
    annotations = pod.metadata.annotations or {}
    labels = pod.metadata.labels or {}
    raw = annotations.get(manifests.INDEX_ANNOTATION) or labels.get(manifests.TFJOB_INDEX_LABEL)
    return int(raw) if raw is not None and str(raw).isdigit() else -1


def _read_namespace() -> str:
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip()
    except OSError:
        return ""
