"""Submitting runs and recurring runs to a Kubeflow Pipelines API server.

Everything goes through `kfp.Client` (the v2beta1 REST API), the same client
the `kfp` command line uses.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import kfp_server_api
from kfp_server_api import ApiException

from components import private_apis
from pipeline.config import ConfigError, PipelineConfig

# Where Kubeflow projects a service-account token for the KFP API into pods
# (kfp's ServiceAccountTokenVolumeCredentials reads the same variable).
SA_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
CONFIG_MARK = "config-sha256:"


def describe_api_error(error: ApiException) -> str:
    """One line for an error response of the KFP API: status and server message."""
    message = ""
    try:
        message = json.loads(error.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(error.body or "")
    # Server messages may span lines (a parse error quoting the input).
    message = " ".join(str(message).split())
    return f"KFP API {error.status} {error.reason}: {message or 'no message'}"


class KubeflowError(RuntimeError):
    """Submitting or scheduling failed; the message says what and where."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _api_errors(function: _F) -> _F:
    """Turns the KFP API's error responses into one-line KubeflowErrors."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ApiException as error:
            raise KubeflowError(describe_api_error(error)) from error

    return wrapper  # type: ignore[return-value]


class RunFailed(KubeflowError):
    """A run ended in a state other than SUCCEEDED."""


@dataclass(frozen=True)
class Connection:
    """Where the KFP API is and how to authenticate."""

    endpoint: str
    namespace: str
    token: str | None
    token_source: str


def connection(config: PipelineConfig, env: Mapping[str, str] = os.environ) -> Connection:
    """Endpoint, namespace and bearer token, from the environment or the config.

    KFP_ENDPOINT and KFP_NAMESPACE override kubeflow.endpoint and
    kubeflow.namespace. The token is the variable kubeflow.token_env names,
    else the in-cluster service-account token file, else none.

    Raises:
        ConfigError: No endpoint is configured.
    """
    endpoint = env.get("KFP_ENDPOINT") or config.kubeflow.endpoint
    if not endpoint:
        raise ConfigError(
            "no Kubeflow Pipelines endpoint: set kubeflow.endpoint or the KFP_ENDPOINT variable"
        )
    namespace = env.get("KFP_NAMESPACE") or config.kubeflow.namespace
    token = env.get(config.kubeflow.token_env) or None
    source = f"${config.kubeflow.token_env}" if token else "none"
    if token is None:
        path = Path(env.get(SA_TOKEN_PATH_ENV, SA_TOKEN_PATH))
        if path.is_file():
            token = path.read_text().strip() or None
            source = str(path) if token else "none"
    return Connection(endpoint.rstrip("/"), namespace, token, source)


def make_client(conn: Connection) -> Any:
    """A kfp.Client for `conn`; quiet (kfp prints links on stdout)."""
    import kfp

    with contextlib.redirect_stdout(io.StringIO()):
        return kfp.Client(host=conn.endpoint, namespace=conn.namespace, existing_token=conn.token)


def _quiet(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args, **kwargs)


def version_name(revision: str, now: datetime | None = None) -> str:
    """`<revision>-<UTC time>`: unique per upload, sortable, traceable to a commit."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{revision}-{moment.strftime('%Y%m%dT%H%M%SZ')}"


def pipeline_id(client: Any, name: str) -> str:
    """The id of the pipeline named `name`, created (with no version) if missing."""
    existing = client.get_pipeline_id(name)
    if existing:
        return str(existing)
    created = private_apis.kfp_create_pipeline(
        client,
        kfp_server_api.V2beta1Pipeline(
            display_name=name, description=f"TFX pipeline {name} (mlops-pipeline)"
        ),
    )
    return str(created.pipeline_id)


def upload_version(client: Any, package: Path, name: str, revision: str) -> tuple[str, str]:
    """Uploads `package` as a new version of pipeline `name`; returns (pipeline id, version id).

    Version names must be unique per pipeline; two uploads within a second
    get `-2`, `-3`... suffixes.
    """
    pid = pipeline_id(client, name)
    base = version_name(revision)
    for attempt in range(1, 11):
        candidate = base if attempt == 1 else f"{base}-{attempt}"
        try:
            version = _quiet(
                client.upload_pipeline_version,
                str(package),
                pipeline_version_name=candidate,
                pipeline_id=pid,
            )
        except ApiException as error:
            if error.status == 409:
                continue
            raise
        return pid, str(version.pipeline_version_id)
    raise KubeflowError(f"pipeline {name}: versions {base} to {base}-10 all exist already")


@_api_errors
def experiment_id(client: Any, name: str, namespace: str) -> str:
    """The id of experiment `name` in `namespace`, created if missing."""
    return str(_quiet(client.create_experiment, name, namespace=namespace).experiment_id)


@dataclass(frozen=True)
class Submitted:
    """A created run."""

    run_id: str
    pipeline_id: str
    version_id: str
    experiment_id: str
    url: str


@_api_errors
def submit(
    client: Any,
    config: PipelineConfig,
    package: Path,
    revision: str,
    parameters: Mapping[str, Any],
    experiment: str,
    run_name: str,
    namespace: str,
) -> Submitted:
    """Uploads `package` as a new pipeline version and starts one run of it."""
    pid, vid = upload_version(client, package, config.run.pipeline_name, revision)
    eid = experiment_id(client, experiment, namespace)
    run = _quiet(
        client.run_pipeline,
        experiment_id=eid,
        job_name=run_name,
        params=dict(parameters),
        pipeline_id=pid,
        version_id=vid,
        pipeline_root=config.run.pipeline_root,
    )
    url = f"{private_apis.kfp_ui_url(client)}/#/runs/details/{run.run_id}"
    return Submitted(str(run.run_id), pid, vid, eid, url)


def failed_tasks(run: Any) -> list[str]:
    """Names of the failed tasks of a finished run, with their errors."""
    details = getattr(run, "run_details", None)
    failed = []
    for task in getattr(details, "task_details", None) or []:
        name = task.display_name or task.task_id
        if task.state == "FAILED" and name not in ("root", "root-driver"):
            message = getattr(task.error, "message", None) if task.error else None
            failed.append(f"{name} ({message})" if message else name)
    return failed


@_api_errors
def wait(
    client: Any,
    run_id: str,
    timeout_s: float,
    poll_s: float = 10.0,
    report: Callable[[str], None] = print,
) -> str:
    """Follows a run to its end.

    Returns:
        The final state, SUCCEEDED.

    Raises:
        RunFailed: The run ended FAILED, CANCELED or SKIPPED; the message
            names the failed task(s).
        KubeflowError: The run did not finish within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        run = client.get_run(run_id)
        state = str(run.state or "PENDING")
        if state != last:
            report(f"run {run_id}: {state}")
            last = state
        if state in FINAL_STATES:
            if state == "SUCCEEDED":
                return state
            tasks = failed_tasks(run)
            where = f" at task {', '.join(tasks)}" if tasks else ""
            error = getattr(run.error, "message", None) if run.error else None
            raise RunFailed(f"run {run_id} {state}{where}" + (f": {error}" if error else ""))
        if time.monotonic() > deadline:
            raise KubeflowError(f"run {run_id} still {state} after {timeout_s:.0f}s")
        time.sleep(poll_s)


def schedule_fingerprint(package: Path, cron: str, parameters: Mapping[str, Any], root: str) -> str:
    """What makes two recurring runs the same: spec, cron, parameters and root."""
    digest = hashlib.sha256()
    digest.update(package.read_bytes())
    digest.update(json.dumps([cron, dict(parameters), root], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def find_recurring_runs(client: Any, experiment: str, name: str) -> list[Any]:
    """Recurring runs named `name` in the experiment with id `experiment`."""
    found: list[Any] = []
    token = ""
    while True:
        page = client.list_recurring_runs(page_token=token, page_size=100, experiment_id=experiment)
        found.extend(r for r in page.recurring_runs or [] if r.display_name == name)
        token = page.next_page_token or ""
        if not token:
            return found


@dataclass(frozen=True)
class Scheduled:
    """What `schedule` did: created, replaced, unchanged, disabled, deleted or absent."""

    action: str
    recurring_run_id: str | None


@_api_errors
def delete_schedule(client: Any, experiment_id: str, name: str) -> Scheduled:
    """Deletes every recurring run named `name` in the experiment; absent is no error."""
    existing = find_recurring_runs(client, experiment_id, name)
    for run in existing:
        client.delete_recurring_run(run.recurring_run_id)
    return Scheduled("deleted" if existing else "absent", None)


@_api_errors
def disable_schedule(client: Any, experiment_id: str, name: str, experiment: str) -> Scheduled:
    """Disables the recurring run(s) named `name` in the experiment (named `experiment`).

    Raises:
        KubeflowError: There is none of that name.
    """
    existing = find_recurring_runs(client, experiment_id, name)
    if not existing:
        raise KubeflowError(f"no recurring run named {name!r} in experiment {experiment!r}")
    for run in existing:
        client.disable_recurring_run(run.recurring_run_id)
    return Scheduled("disabled", existing[0].recurring_run_id)


@_api_errors
def apply_schedule(
    client: Any,
    config: PipelineConfig,
    experiment_id: str,
    name: str,
    package: Path,
    revision: str,
    parameters: Mapping[str, Any],
    cron: str,
) -> Scheduled:
    """Creates the recurring run `name`, or updates the one of that name.

    Idempotent: a recurring run of the same name with the same compiled
    spec, cron, parameters and root is left as it is; one that differs is
    replaced (KFP has no update call), so at most one of that name remains.
    """
    existing = find_recurring_runs(client, experiment_id, name)
    mark = CONFIG_MARK + schedule_fingerprint(package, cron, parameters, config.run.pipeline_root)
    same = [
        r
        for r in existing
        if mark in (r.description or "") and str(r.mode or "") in ("ENABLE", "MODE_UNSPECIFIED")
    ]
    if len(existing) == 1 and same:
        return Scheduled("unchanged", same[0].recurring_run_id)
    pid, vid = upload_version(client, package, config.run.pipeline_name, revision)
    created = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=name,
        description=f"{config.run.pipeline_name} at {revision}; {mark}",
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params=dict(parameters),
        pipeline_id=pid,
        version_id=vid,
        enabled=True,
        pipeline_root=config.run.pipeline_root,
    )
    for run in existing:
        client.delete_recurring_run(run.recurring_run_id)
    return Scheduled("replaced" if existing else "created", str(created.recurring_run_id))
