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
# The endpoint variables, ours first; kfp's own client reads the second.
ENDPOINT_ENVS = ("KFP_ENDPOINT", "KF_PIPELINES_ENDPOINT")
# A 401 while following a run is retried once after this pause: the kubelet
# may be rotating the projected token file at that moment.
UNAUTHORIZED_RETRY_S = 2.0
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
    """A run ended in a state other than SUCCEEDED.

    Attributes:
        state: That state: FAILED, CANCELED or SKIPPED.
    """

    def __init__(self, message: str, state: str = "FAILED"):
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class Connection:
    """Where the KFP API is and how to authenticate.

    Attributes:
        token: A bearer token from the environment, sent as it is.
        token_path: The service-account token file; read again before each
            request, since the kubelet rotates it (about hourly).
        token_source: Where the credentials come from, for the log line.
    """

    endpoint: str
    namespace: str
    token: str | None
    token_source: str
    token_path: str | None = None


def connection(config: PipelineConfig, env: Mapping[str, str] = os.environ) -> Connection:
    """Endpoint, namespace and credentials, from the environment or the config.

    KFP_ENDPOINT (or KF_PIPELINES_ENDPOINT, kfp's own variable) and
    KFP_NAMESPACE override kubeflow.endpoint and kubeflow.namespace. The
    credentials are the token in the variable kubeflow.token_env names, else
    the in-cluster service-account token file, else none.

    Raises:
        ConfigError: No endpoint is configured.
    """
    endpoint = next((env[name] for name in ENDPOINT_ENVS if env.get(name)), None)
    endpoint = endpoint or config.kubeflow.endpoint
    if not endpoint:
        raise ConfigError(
            "no Kubeflow Pipelines endpoint: set kubeflow.endpoint or the "
            f"{' or '.join(ENDPOINT_ENVS)} variable"
        )
    namespace = env.get("KFP_NAMESPACE") or config.kubeflow.namespace
    token = env.get(config.kubeflow.token_env) or None
    if token is not None:
        return Connection(endpoint.rstrip("/"), namespace, token, f"${config.kubeflow.token_env}")
    path = Path(env.get(SA_TOKEN_PATH_ENV, SA_TOKEN_PATH))
    if path.is_file() and path.read_text().strip():
        source = f"{path}, re-read before each request"
        return Connection(endpoint.rstrip("/"), namespace, None, source, str(path))
    return Connection(endpoint.rstrip("/"), namespace, None, "none")


def make_client(conn: Connection) -> Any:
    """A kfp.Client for `conn`; quiet (kfp prints links on stdout).

    A token file goes to kfp as ServiceAccountTokenVolumeCredentials, whose
    hook reads the file before every request. Handing its content over as
    `existing_token` would freeze it, and a `--wait` longer than the token's
    lifetime would fail with 401 (kubeflow/pipelines#6883).
    """
    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    credentials = ServiceAccountTokenVolumeCredentials(conn.token_path) if conn.token_path else None
    with contextlib.redirect_stdout(io.StringIO()):
        return kfp.Client(
            host=conn.endpoint,
            namespace=conn.namespace,
            existing_token=conn.token,
            credentials=credentials,
        )


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
            message = " ".join(str(message).split()) if message else None
            failed.append(f"{name} ({message})" if message else name)
    return failed


@_api_errors
def _get_run(client: Any, run_id: str) -> Any:
    """The run, asked again once after a 401 (a token file rotated mid-request)."""
    try:
        return client.get_run(run_id)
    except ApiException as error:
        if error.status != 401:
            raise
        time.sleep(UNAUTHORIZED_RETRY_S)
        return client.get_run(run_id)


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
        run = _get_run(client, run_id)
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
            # Server messages may span lines; the failure is reported on one.
            detail = f": {' '.join(str(error).split())}" if error else ""
            raise RunFailed(f"run {run_id} {state}{where}{detail}", state)
        if time.monotonic() > deadline:
            raise KubeflowError(f"run {run_id} still {state} after {timeout_s:.0f}s")
        time.sleep(poll_s)


@dataclass(frozen=True)
class Trigger:
    """When a recurring run starts runs.

    Attributes:
        cron: KFP's 6-field cron, seconds first.
        max_concurrency: Runs of it at once (KFP's default, 1, is ours too:
            a run that outlasts its period is not overlapped by the next).
        catchup: After a pause or an outage, start the runs that were missed
            (off: only the next one starts, as a nightly retrain wants).
    """

    cron: str
    max_concurrency: int = 1
    catchup: bool = False


def schedule_fingerprint(
    package: Path, trigger: Trigger, parameters: Mapping[str, Any], root: str
) -> str:
    """What makes two recurring runs the same: spec, trigger, parameters and root."""
    digest = hashlib.sha256()
    digest.update(package.read_bytes())
    when: list[Any] = [trigger.cron]
    # Left out at their defaults, so recurring runs applied before these
    # settings existed still read as unchanged.
    if (trigger.max_concurrency, trigger.catchup) != (1, False):
        when += [trigger.max_concurrency, trigger.catchup]
    digest.update(json.dumps([*when, dict(parameters), root], sort_keys=True).encode())
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


def _switch_schedule(
    client: Any, experiment_id: str, name: str, experiment: str, enable: bool
) -> Scheduled:
    existing = find_recurring_runs(client, experiment_id, name)
    if not existing:
        raise KubeflowError(f"no recurring run named {name!r} in experiment {experiment!r}")
    switch = client.enable_recurring_run if enable else client.disable_recurring_run
    for run in existing:
        switch(run.recurring_run_id)
    return Scheduled("enabled" if enable else "disabled", existing[0].recurring_run_id)


@_api_errors
def disable_schedule(client: Any, experiment_id: str, name: str, experiment: str) -> Scheduled:
    """Disables the recurring run(s) named `name` in the experiment (named `experiment`).

    Raises:
        KubeflowError: There is none of that name.
    """
    return _switch_schedule(client, experiment_id, name, experiment, enable=False)


@_api_errors
def enable_schedule(client: Any, experiment_id: str, name: str, experiment: str) -> Scheduled:
    """Enables again the recurring run(s) named `name` that `disable_schedule` stopped.

    Raises:
        KubeflowError: There is none of that name.
    """
    return _switch_schedule(client, experiment_id, name, experiment, enable=True)


@_api_errors
def apply_schedule(
    client: Any,
    config: PipelineConfig,
    experiment_id: str,
    name: str,
    package: Path,
    revision: str,
    parameters: Mapping[str, Any],
    trigger: Trigger,
) -> Scheduled:
    """Creates the recurring run `name`, or updates the one of that name.

    Idempotent: a recurring run of the same name with the same compiled
    spec, trigger, parameters and root is left as it is; one that differs is
    replaced (KFP has no update call), so at most one of that name remains.
    """
    existing = find_recurring_runs(client, experiment_id, name)
    fingerprint = schedule_fingerprint(package, trigger, parameters, config.run.pipeline_root)
    mark = CONFIG_MARK + fingerprint
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
        cron_expression=trigger.cron,
        max_concurrency=trigger.max_concurrency,
        no_catchup=not trigger.catchup,
        params=dict(parameters),
        pipeline_id=pid,
        version_id=vid,
        enabled=True,
        pipeline_root=config.run.pipeline_root,
    )
    for run in existing:
        client.delete_recurring_run(run.recurring_run_id)
    return Scheduled("replaced" if existing else "created", str(created.recurring_run_id))
