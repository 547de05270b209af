"""A local HTTP server speaking the KFP v2beta1 REST endpoints that submit/schedule use.

A TEST DOUBLE: there is no Kubernetes or KFP API server here. It implements
pipelines (create, list by name filter, upload, upload_version), experiments
(create, list by name filter), runs (create, get), recurring runs (create,
list, delete, disable, enable) and healthz, with the JSON shapes kfp_server_api
(de)serializes. It validates what a real server would reject early: a
pipeline package must parse strictly as a PipelineSpec, referenced ids must
exist. It records every request so tests can assert on bodies and headers,
and, when `tokens` is set, answers 401 to a bearer token it does not take.
Runs finish as the test scripts them (`outcomes`), after one RUNNING poll.
"""

from __future__ import annotations

import cgi
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tests.fake_http import FakeHttpServer

PREFIX = "/apis/v2beta1"
NOW = "2026-11-23T00:00:00Z"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class State:
    pipelines: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, dict] = field(default_factory=dict)
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    recurring: dict[str, dict] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # run display name -> ("SUCCEEDED",) or ("FAILED", task, message)
    outcomes: dict[str, tuple] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    # Polls answered RUNNING before a run ends as scripted.
    running_polls: int = 1


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _name_filter(query: dict[str, str]) -> str | None:
    raw = query.get("filter")
    if not raw:
        return None
    [predicate] = json.loads(raw)["predicates"]
    if predicate["key"] not in ("display_name", "name") or predicate["operation"] not in (
        1,
        "EQUALS",
    ):
        raise ApiError(400, f"unsupported filter {raw}")
    return str(predicate.get("stringValue", predicate.get("string_value")))


def _parse_package(data: bytes) -> dict:
    docs = [d for d in yaml.safe_load_all(data.decode()) if d is not None]
    if not docs:
        raise ApiError(400, "empty pipeline package")
    spec = docs[0]
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as e:
        raise ApiError(400, f"invalid pipeline spec: {e}") from e
    return spec


class FakeKfp(FakeHttpServer):
    """Starts on a free port; `url` is the endpoint to give kfp.Client."""

    def __init__(self) -> None:
        self.state = State()
        self._ids = itertools.count(1)
        # Bearer tokens the server accepts, as a multi-user Kubeflow's token
        # review does; None accepts any request.
        self.tokens: set[str] | None = None
        # Called with each request before it is answered (a test's script).
        self.before: Callable[[Request], None] | None = None
        super().__init__()

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        body: Any = raw
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/json") and raw:
            body = json.loads(raw)
        elif content_type.startswith("multipart/form-data"):
            form = cgi.FieldStorage(
                fp=io.BytesIO(raw),
                headers=headers,
                environ={"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type},
            )
            body = {"uploadfile": form["uploadfile"].value}
        request = Request(method, path, query, headers, body)
        self.state.requests.append(request)
        if self.before is not None:
            self.before(request)
        if self.tokens is not None and headers.get("authorization") not in {
            f"Bearer {t}" for t in self.tokens
        }:
            # What the API server answers when the token review fails.
            return 401, {"code": 16, "message": "Failed to authenticate token review"}
        try:
            return 200, self.route(request)
        except ApiError as e:
            return e.status, {"code": e.status, "message": str(e)}

    def requests(self, method: str, path: str) -> list[Request]:
        return [r for r in self.state.requests if r.method == method and r.path == PREFIX + path]

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # -- routing -------------------------------------------------------------

    def route(self, r: Request) -> Any:
        if not r.path.startswith(PREFIX):
            raise ApiError(404, f"not found: {r.path}")
        path = r.path[len(PREFIX) :]
        s = self.state
        if path == "/healthz" and r.method == "GET":
            return {"multi_user": True}
        if path == "/pipelines" and r.method == "GET":
            name = _name_filter(r.query)
            found = [p for p in s.pipelines.values() if name is None or p["display_name"] == name]
            return {"pipelines": found, "total_size": len(found)} if found else {}
        if path == "/pipelines" and r.method == "POST":
            return self._create_pipeline(r.body["display_name"], r.body.get("description", ""))
        if path == "/pipelines/upload" and r.method == "POST":
            spec = _parse_package(r.body["uploadfile"])
            pipeline = self._create_pipeline(r.query["name"], r.query.get("description", ""))
            self._create_version(pipeline["pipeline_id"], r.query["name"], spec)
            return pipeline
        if path == "/pipelines/upload_version" and r.method == "POST":
            pid = r.query.get("pipelineid", "")
            if pid not in s.pipelines:
                raise ApiError(404, f"pipeline {pid!r} not found")
            spec = _parse_package(r.body["uploadfile"])
            return self._create_version(pid, r.query["name"], spec)
        if path == "/experiments" and r.method == "GET":
            name = _name_filter(r.query)
            namespace = r.query.get("namespace")
            found = [
                e
                for e in s.experiments.values()
                if (name is None or e["display_name"] == name)
                and (namespace is None or e["namespace"] == namespace)
            ]
            return {"experiments": found, "total_size": len(found)} if found else {}
        if path == "/experiments" and r.method == "POST":
            eid = self._id("experiment")
            s.experiments[eid] = {
                "experiment_id": eid,
                "display_name": r.body["display_name"],
                "namespace": r.body.get("namespace", ""),
                "created_at": NOW,
                "storage_state": "AVAILABLE",
            }
            return s.experiments[eid]
        if path == "/runs" and r.method == "POST":
            self._check_references(r.body)
            rid = self._id("run")
            s.runs[rid] = {**r.body, "run_id": rid, "state": "PENDING", "created_at": NOW}
            return s.runs[rid]
        if path.startswith("/runs/") and r.method == "GET":
            return self._poll_run(path.split("/")[2])
        if path == "/recurringruns" and r.method == "POST":
            self._check_references(r.body)
            cron = r.body.get("trigger", {}).get("cron_schedule", {}).get("cron", "")
            if len(cron.split()) != 6:
                raise ApiError(400, f"invalid cron {cron!r}: KFP expects 6 fields")
            rid = self._id("recurring")
            s.recurring[rid] = {**r.body, "recurring_run_id": rid, "status": "ENABLED"}
            return s.recurring[rid]
        if path == "/recurringruns" and r.method == "GET":
            eid = r.query.get("experiment_id")
            found = [x for x in s.recurring.values() if eid is None or x["experiment_id"] == eid]
            return {"recurringRuns": found, "total_size": len(found)} if found else {}
        if path.startswith("/recurringruns/"):
            rid, _, verb = path.split("/")[2].partition(":")
            if rid not in s.recurring:
                raise ApiError(404, f"recurring run {rid!r} not found")
            if r.method == "DELETE":
                del s.recurring[rid]
                return {}
            if r.method == "POST" and verb == "disable":
                s.recurring[rid]["mode"] = "DISABLE"
                s.recurring[rid]["status"] = "DISABLED"
                return {}
            if r.method == "POST" and verb == "enable":
                s.recurring[rid]["mode"] = "ENABLE"
                s.recurring[rid]["status"] = "ENABLED"
                return {}
            if r.method == "GET":
                return s.recurring[rid]
        raise ApiError(404, f"no fake for {r.method} {r.path}")

    def _create_pipeline(self, name: str, description: str) -> dict:
        if any(p["display_name"] == name for p in self.state.pipelines.values()):
            raise ApiError(409, f"pipeline {name!r} already exists")
        pid = self._id("pipeline")
        self.state.pipelines[pid] = {
            "pipeline_id": pid,
            "display_name": name,
            "description": description,
            "created_at": NOW,
        }
        return self.state.pipelines[pid]

    def _create_version(self, pid: str, name: str, spec: dict) -> dict:
        if any(
            v["pipeline_id"] == pid and v["display_name"] == name
            for v in self.state.versions.values()
        ):
            raise ApiError(409, f"version {name!r} of pipeline {pid} already exists")
        vid = self._id("version")
        self.state.versions[vid] = {
            "pipeline_id": pid,
            "pipeline_version_id": vid,
            "display_name": name,
            "pipeline_spec": spec,
            "created_at": NOW,
        }
        return self.state.versions[vid]

    def _check_references(self, body: dict) -> None:
        if body.get("experiment_id") not in self.state.experiments:
            raise ApiError(404, f"experiment {body.get('experiment_id')!r} not found")
        ref = body.get("pipeline_version_reference")
        if ref:
            version = self.state.versions.get(ref.get("pipeline_version_id"))
            if version is None or version["pipeline_id"] != ref.get("pipeline_id"):
                raise ApiError(404, f"pipeline version {ref} not found")
            declared = version["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]
            given = body.get("runtime_config", {}).get("parameters", {})
            unknown = sorted(set(given) - set(declared))
            if unknown:
                raise ApiError(400, f"unknown pipeline parameters {unknown}")
        elif not body.get("pipeline_spec"):
            raise ApiError(400, "a run needs a pipeline version reference or a pipeline spec")

    def _poll_run(self, rid: str) -> dict:
        run = self.state.runs.get(rid)
        if run is None:
            raise ApiError(404, f"run {rid!r} not found")
        polls = self.state.polls[rid] = self.state.polls.get(rid, 0) + 1
        if polls <= self.state.running_polls:
            return {**run, "state": "RUNNING"}
        outcome = self.state.outcomes.get(run["display_name"], ("SUCCEEDED",))
        result = {**run, "state": outcome[0]}
        if outcome[0] == "FAILED":
            _, task, message = outcome
            result["error"] = {"code": 2, "message": "pipeline run failed"}
            result["run_details"] = {
                "task_details": [
                    {"display_name": "root", "task_id": "t0", "state": "FAILED"},
                    {"display_name": "example_gen", "task_id": "t1", "state": "SUCCEEDED"},
                    {
                        "display_name": task,
                        "task_id": "t2",
                        "state": "FAILED",
                        "error": {"code": 2, "message": message},
                    },
                ]
            }
        return result
