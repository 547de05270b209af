"""A local HTTP server speaking the few Kubernetes API endpoints the trainer launcher uses.

A TEST DOUBLE: no Kubernetes cluster runs here. The real `kubernetes` Python
client talks to it over HTTP. It implements pods (read, list by label, log),
Services, batch/v1 Jobs and kubeflow.org/v1 TFJobs (create, read status,
delete). Like a real API server it rejects invalid objects (the Kubernetes
schemas, strictly; the TFJob CRD schema) with 422, and can answer 403 for
what the service account may not do. Nothing is scheduled or run: a job's
pods follow a script, one step per pod listing (Pending and unschedulable,
then Running, then terminated with the scripted exit code and reason; a
failed Job's pods are then deleted, as the Job controller does), and their
logs are the scripted lines. It can answer the first status reads with 503.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests import kubernetes_schemas
from tests.fake_http import FakeHttpServer

NOW = "2026-11-23T00:00:00Z"
LATER = "2026-11-23T00:05:00Z"


@dataclass
class WorkerScript:
    """How one worker pod of a job behaves."""

    logs: list[str] = field(default_factory=lambda: ["INFO trainer starts at step 0", "done"])
    exit_code: int = 0
    reason: str = "Completed"
    message: str = ""
    finished_at: str = LATER


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason = status, reason


class FakeKubernetes(FakeHttpServer):
    """The fake API server; `url` goes into kubernetes.client.Configuration.host."""

    def __init__(
        self,
        scripts: list[WorkerScript] | None = None,
        forbidden: tuple[str, ...] = (),
        unavailable: int = 0,
    ):
        self.scripts = scripts or []
        self.unavailable = unavailable  # answer this many status reads with 503 first
        self.forbidden = set(forbidden)  # "create jobs", "create tfjobs", ...
        self.requests: list[Request] = []
        self.objects: dict[tuple[str, str, str], dict] = {}  # (plural, ns, name) -> object
        self.steps: dict[str, int] = {}  # job name -> pod listings so far
        super().__init__()

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        request = Request(method, path, query, json.loads(raw) if raw else None)
        self.requests.append(request)
        try:
            return 200, self.route(request)
        except ApiError as e:
            return e.status, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": e.reason,
                "message": str(e),
                "code": e.status,
            }

    def add_pod(self, namespace: str, name: str, image: str, service_account: str) -> None:
        """Registers a running pod, e.g. the Trainer step's own."""
        self.objects[("pods", namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "serviceAccountName": service_account,
                "containers": [{"name": "main", "image": image}],
            },
            "status": {"phase": "Running"},
        }

    def created(self, plural: str) -> list[dict]:
        return [
            r.body for r in self.requests if r.method == "POST" and r.path.endswith("/" + plural)
        ]

    def deleted(self) -> list[str]:
        return [r.path for r in self.requests if r.method == "DELETE"]

    # -- routing -----------------------------------------------------------------

    def route(self, r: Request) -> Any:
        parts = r.path.strip("/").split("/")
        # /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]
        # /apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}[/{sub}]]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if len(rest) < 2 or rest[0] != "namespaces":
            raise ApiError(404, "NotFound", f"no route {r.path}")
        ns, plural, tail = rest[1], rest[2], rest[3:]
        name = tail[0] if tail else ""
        sub = tail[1] if len(tail) > 1 else ""
        if f"{r.method.lower()} {plural}" in self.forbidden or (
            r.method == "POST" and f"create {plural}" in self.forbidden
        ):
            raise ApiError(
                403,
                "Forbidden",
                f'{plural} is forbidden: User "system:serviceaccount:{ns}:pipeline-runner" '
                f'cannot {r.method.lower()} resource "{plural}" in namespace "{ns}"',
            )
        if r.method == "POST" and not name:
            return self._create(plural, ns, r.body)
        if r.method == "GET" and plural == "pods" and not name:
            return self._list_pods(ns, r.query.get("labelSelector", ""))
        if r.method == "GET" and plural == "pods" and sub == "log":
            return self._log(ns, name)
        if r.method == "GET" and sub == "status" and self.unavailable > 0:
            self.unavailable -= 1
            raise ApiError(503, "ServiceUnavailable", "the server is currently unable to respond")
        key = (plural, ns, name)
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        if r.method == "GET":
            if plural in ("jobs", "tfjobs"):
                self._update_status(plural, ns, name)
            return self.objects[key]
        if r.method == "DELETE":
            obj = self.objects.pop(key)
            if plural in ("jobs", "tfjobs"):
                for pod_key in [k for k in self.objects if k[0] == "pods" and k[1] == ns]:
                    if self.objects[pod_key]["metadata"].get("ownerJob") == name:
                        del self.objects[pod_key]
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Success",
                "details": {"name": obj["metadata"]["name"]},
            }
        raise ApiError(405, "MethodNotAllowed", f"{r.method} {r.path}")

    def _create(self, plural: str, ns: str, body: dict) -> dict:
        try:
            kubernetes_schemas.validate(body)
        except ValueError as e:
            raise ApiError(422, "Invalid", f"{body.get('kind')} is invalid: {e}") from None
        name = body["metadata"]["name"]
        if (plural, ns, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        obj = json.loads(json.dumps(body))
        obj["metadata"].setdefault("namespace", ns)
        obj["metadata"]["creationTimestamp"] = NOW
        obj["metadata"]["uid"] = f"uid-{plural}-{name}"
        self.objects[(plural, ns, name)] = obj
        if plural == "jobs":
            template = obj["spec"]["template"]
            self._make_pods(ns, name, template, obj["spec"]["completions"], indexed=True)
        elif plural == "tfjobs":
            worker = obj["spec"]["tfReplicaSpecs"]["Worker"]
            self._make_pods(ns, name, worker["template"], worker["replicas"], indexed=False)
        return obj

    def _make_pods(self, ns: str, job: str, template: dict, count: int, indexed: bool) -> None:
        self.steps[job] = 0
        for index in range(count):
            name = f"{job}-{index}-x{index}z"
            labels = dict(template["metadata"].get("labels", {}))
            annotations = dict(template["metadata"].get("annotations", {}))
            if indexed:
                annotations["batch.kubernetes.io/job-completion-index"] = str(index)
            else:
                labels["training.kubeflow.org/replica-index"] = str(index)
            self.objects[("pods", ns, name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": annotations,
                    "ownerJob": job,
                    "index": index,
                },
                "spec": template["spec"],
                "status": {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                        }
                    ],
                },
            }

    def _script(self, index: int) -> WorkerScript:
        return self.scripts[index] if index < len(self.scripts) else WorkerScript()

    def _job_pods(self, ns: str, job: str) -> list[dict]:
        return [
            pod
            for (plural, pod_ns, _), pod in sorted(self.objects.items())
            if plural == "pods" and pod_ns == ns and pod["metadata"].get("ownerJob") == job
        ]

    def _list_pods(self, ns: str, selector: str) -> dict:
        key, _, value = selector.partition("=")
        pods = [
            pod
            for (plural, pod_ns, _), pod in sorted(self.objects.items())
            if plural == "pods"
            and pod_ns == ns
            and pod["metadata"].get("labels", {}).get(key) == value
        ]
        items = [self._public(p) for p in pods]
        for job in {p["metadata"].get("ownerJob") for p in pods} - {None}:
            self._advance(ns, job)
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    def _public(self, pod: dict) -> dict:
        pod = json.loads(json.dumps(pod))
        pod["metadata"].pop("ownerJob", None)
        pod["metadata"].pop("index", None)
        return pod

    def _advance(self, ns: str, job: str) -> None:
        """One step of the job's pods: Pending -> Running -> terminated."""
        self.steps[job] += 1
        step = self.steps[job]
        for pod in self._job_pods(ns, job):
            container = pod["spec"]["containers"][0]
            status = {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": True,
                "restartCount": 0,
            }
            if step == 1:
                pod["status"] = {
                    "phase": "Running",
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                    "containerStatuses": [{**status, "state": {"running": {"startedAt": NOW}}}],
                }
            elif step == 2:
                script = self._script(pod["metadata"]["index"])
                terminated = {
                    "exitCode": script.exit_code,
                    "reason": script.reason,
                    "startedAt": NOW,
                    "finishedAt": script.finished_at,
                }
                if script.message:
                    terminated["message"] = script.message
                pod["status"] = {
                    "phase": "Succeeded" if script.exit_code == 0 else "Failed",
                    "containerStatuses": [
                        {**status, "ready": False, "state": {"terminated": terminated}}
                    ],
                }

    def _update_status(self, plural: str, ns: str, name: str) -> None:
        obj = self.objects[(plural, ns, name)]
        # A job finishes only after its ended pods were listed once (a
        # controller observes them first), and stays finished.
        if obj.get("status", {}).get("conditions") or self.steps.get(name, 0) < 3:
            obj.setdefault("status", {"conditions": []})
            return
        pods = self._job_pods(ns, name)
        phases = [p["status"]["phase"] for p in pods]
        conditions = []
        if any(phase == "Failed" for phase in phases):
            reason = "BackoffLimitExceeded" if plural == "jobs" else "TFJobFailed"
            conditions.append(
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": reason,
                    "message": "Job has reached the specified backoff limit",
                }
            )
            if plural == "jobs":
                # Past its backoff limit the Job controller deletes the
                # remaining pods, and their failure reasons with them.
                for pod in pods:
                    del self.objects[("pods", ns, pod["metadata"]["name"])]
        elif phases and all(phase == "Succeeded" for phase in phases):
            done = "Complete" if plural == "jobs" else "Succeeded"
            conditions.append({"type": done, "status": "True", "reason": "", "message": ""})
        obj["status"] = {"conditions": conditions}

    def _log(self, ns: str, name: str) -> str:
        pod = self.objects.get(("pods", ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        return "".join(line + "\n" for line in self._script(pod["metadata"]["index"]).logs)
