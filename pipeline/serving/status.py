"""Whether TF Serving loaded a model version: its model-status API, once or until settled.

REST `GET /v1/models/<name>[/versions/<n>]` and gRPC
`ModelService/GetModelStatus` answer the same thing: for each version the
server knows, its manager state (START, LOADING, AVAILABLE, UNLOADING,
END) and its health (`error_code` OK or the load's error, with the
message). A version that failed to load ends in END with that error, and
the server goes on serving the version it had (tensorflow/serving#1738);
a version that was unloaded on purpose (a newer one replaced it under the
`latest` policy) ends in END with OK. A version the server has not yet
seen on disk is NOT_FOUND ("Could not find version N of model M").
Labels are not part of the status API (`get_model_status_impl.cc` reads
the version only), so a label is resolved through the registry first.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlparse

from pipeline.serving.client import ServingError, grpc_channel, http_connection, rest_endpoint
from pipeline.serving.security import Credentials

STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")
AVAILABLE = "AVAILABLE"
END = "END"
OK = "OK"
NOT_FOUND = "NOT_FOUND"


class StatusError(ServingError):
    """The server answered the status call with an error, or could not be reached.

    Attributes:
        code: The gRPC status name (NOT_FOUND...) or UNAVAILABLE when unreachable.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VersionStatus:
    """One version as the server reports it."""

    version: int
    state: str
    error_code: str = OK
    error_message: str = ""

    @property
    def failed(self) -> bool:
        """It ended with an error: the load failed, and the old version keeps serving."""
        return self.state == END and self.error_code != OK

    def describe(self) -> str:
        if self.error_code == OK:
            return self.state
        return f"{self.state} ({self.error_code}: {self.error_message})"


def rest_status(
    endpoint: str,
    model: str,
    version: int | None = None,
    timeout: float = 10.0,
    credentials: Credentials | None = None,
    headers: Mapping[str, str] | None = None,
) -> list[VersionStatus]:
    """The model's versions over REST, or the one asked for.

    `headers` go with the request, e.g. the front's track pin.

    Raises:
        StatusError: The server answered an error (its own message), or
            could not be reached (UNAVAILABLE).
    """
    root = urlparse(rest_endpoint(endpoint))
    path = f"{root.path}/v1/models/{quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{version}"
    credentials = credentials or Credentials()
    connection = http_connection(endpoint, credentials, timeout)
    authorization = credentials.authorization()
    try:
        sent = dict(headers or {})
        if authorization:
            sent["Authorization"] = authorization
        connection.request("GET", path, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    except ssl.SSLError as error:
        # Waiting does not fix a certificate: settled, unlike an unreachable server.
        raise StatusError("TLS", f"{endpoint}: {error}") from None
    except (OSError, http.client.HTTPException) as error:
        raise StatusError("UNAVAILABLE", f"{endpoint}: {error}") from None
    finally:
        connection.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if response.status != 200:
        message = body.get("error") if isinstance(body, dict) else None
        if response.status in (502, 503, 504):
            # A gateway (the TLS front) whose TF Serving is down or restarting.
            code = "UNAVAILABLE"
        elif response.status == 404 and message:
            code = NOT_FOUND  # TF Serving's own answer, {"error": ...}
        else:
            code = f"HTTP {response.status}"
        raise StatusError(code, str(message or raw[:200].decode(errors="replace")))
    if not isinstance(body, dict) or not isinstance(body.get("model_version_status"), list):
        raise StatusError("INTERNAL", f"unexpected model status body: {raw[:200]!r}")
    return [
        VersionStatus(
            version=int(entry["version"]),
            state=str(entry.get("state", "UNKNOWN")),
            error_code=str(entry.get("status", {}).get("error_code", OK)),
            error_message=str(entry.get("status", {}).get("error_message", "")),
        )
        for entry in body["model_version_status"]
    ]


def grpc_status(
    endpoint: str,
    model: str,
    version: int | None = None,
    timeout: float = 10.0,
    credentials: Credentials | None = None,
) -> list[VersionStatus]:
    """The model's versions over gRPC (ModelService/GetModelStatus), or the one asked for.

    Raises:
        StatusError: As for `rest_status`, with the gRPC status code's name.
    """
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    credentials = credentials or Credentials()
    with grpc_channel(endpoint, credentials) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        try:
            response = stub.GetModelStatus(
                request, timeout=timeout, metadata=credentials.grpc_metadata()
            )
        except grpc.RpcError as error:
            code = error.code()
            raise StatusError(code.name if code else "UNKNOWN", str(error.details())) from None
    state_names = get_model_status_pb2.ModelVersionStatus.State.Name
    # StatusProto.error_code is tensorflow.error.Code; REST's JSON spells its name.
    codes = (
        get_model_status_pb2.ModelVersionStatus.DESCRIPTOR.fields_by_name["status"]
        .message_type.fields_by_name["error_code"]
        .enum_type
    )
    return [
        VersionStatus(
            version=int(entry.version),
            state=state_names(entry.state),
            error_code=codes.values_by_number[entry.status.error_code].name
            if entry.status.error_code in codes.values_by_number
            else str(entry.status.error_code),
            error_message=entry.status.error_message,
        )
        for entry in response.model_version_status
    ]


@dataclass(frozen=True)
class Outcome:
    """Where the asked-for version stands.

    Attributes:
        ok: It is AVAILABLE.
        message: One line: the state, or why it is not available.
        statuses: What the server reported last (empty when it reported an error).
        waited_s: Seconds spent waiting.
    """

    ok: bool
    message: str
    statuses: tuple[VersionStatus, ...]
    waited_s: float = 0.0


Fetch = Callable[[int | None], list[VersionStatus]]


def check(fetch: Fetch, model: str, version: int) -> tuple[Outcome, bool]:
    """One status call for `version`: (outcome, whether waiting could still change it)."""
    try:
        statuses = fetch(version)
    except StatusError as error:
        # Not found yet (the server polls its base path) or not up yet.
        settled = error.code not in (NOT_FOUND, "UNAVAILABLE", "DEADLINE_EXCEEDED")
        return Outcome(False, str(error), ()), not settled
    found = next((s for s in statuses if s.version == version), None)
    if found is None:
        return Outcome(False, f"version {version} of {model}: not reported", tuple(statuses)), True
    if found.state == AVAILABLE:
        return Outcome(True, f"version {version} of {model}: AVAILABLE", tuple(statuses)), False
    if found.failed:
        message = (
            f"version {version} of {model} failed to load: {found.error_code}: "
            f"{found.error_message} (the server keeps serving the versions it had)"
        )
        return Outcome(False, message, tuple(statuses)), False
    if found.state == END:
        message = f"version {version} of {model}: END, unloaded by the server's version policy"
        return Outcome(False, message, tuple(statuses)), False
    return Outcome(False, f"version {version} of {model}: {found.state}", tuple(statuses)), True


def wait_until_settled(
    fetch: Fetch,
    model: str,
    version: int,
    timeout_s: float,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_change: Callable[[str, float], None] | None = None,
) -> Outcome:
    """Polls until `version` is AVAILABLE, has failed or ended, or `timeout_s` passed.

    `on_change(message, seconds)` hears each new state while waiting.
    """
    started = clock()
    last = ""
    while True:
        outcome, pending = check(fetch, model, version)
        waited = clock() - started
        if on_change is not None and pending and outcome.message != last:
            on_change(outcome.message, waited)
        last = outcome.message
        if not pending:
            return Outcome(outcome.ok, outcome.message, outcome.statuses, waited)
        if waited + interval_s > timeout_s:
            return Outcome(
                False,
                f"timed out after {timeout_s:g}s waiting for version {version} of {model} "
                f"(last: {outcome.message})",
                outcome.statuses,
                waited,
            )
        sleep(interval_s)
