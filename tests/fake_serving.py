"""A test double of TF Serving's predict APIs, over REST and gRPC.

The real `tensorflow_model_server` binary is not run here. `FakeServing`
answers TF Serving's REST predict and model-status calls, and the gRPC
`PredictionService.Predict` built from the real `tensorflow_serving` protos,
by running the signatures of SavedModels loaded in-process with
`tf.saved_model.load`. The predictions are therefore the model's own; what
is imitated is the routing (model name, version, version label), the JSON
and proto shapes, and TF Serving's error codes and messages:

- unknown model or version: REST 404 / gRPC NOT_FOUND,
  "Servable not found for request: Specific(taxi, 7)";
- unknown version label: REST 400 / gRPC INVALID_ARGUMENT, "Unrecognized
  servable version label: x" (TF Serving treats it as a bad argument, not a
  missing servable);
- unknown signature: FAILED_PRECONDITION; bad inputs: INVALID_ARGUMENT.

Model status (REST `GET /v1/models/<m>[/versions/<n>]`, gRPC
`ModelService/GetModelStatus`) reports each version's manager state and
health as `get_model_status_impl.cc` does, versions newest first: a loaded
version is AVAILABLE; `set_state` puts a version in START or LOADING (not
yet served), `fail_load` in END with the load's error (the older versions
keep serving, tensorflow/serving#1738), `load` makes it AVAILABLE. A
version the server has not seen is NOT_FOUND, "Could not find version N of
model M"; labels are not part of that API.

Every predict call is recorded in `calls`, so a test can check which version
a request reached.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.fake_http import FakeHttpServer

DEFAULT_SIGNATURE = "serving_default"

# How TF Serving's REST API reports a status code.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
}

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>:[a-z]+)?$"
)


# TF Serving 2.16's Prometheus metrics that the double exports, named as its
# exporter names them (`/` becomes `:`), with their labels and the source that
# defines each (docs/serving.md, "Dashboards and alerts"). Latencies are in
# microseconds; histogram bounds are the sources' own.
METRICS = {
    ":tensorflow:serving:request_count": (
        "counter",
        ("model_name", "status"),
        "tensorflow_serving/servables/tensorflow/util.cc",
    ),
    ":tensorflow:serving:request_latency": (
        "histogram",
        ("model_name", "API", "entrypoint"),
        "tensorflow_serving/servables/tensorflow/util.cc",
    ),
    ":tensorflow:serving:request_example_counts": (
        "histogram",
        ("model",),
        "tensorflow_serving/servables/tensorflow/util.cc",
    ),
    ":tensorflow:serving:batching_session:queuing_latency": (
        "histogram",
        ("thread_pool_name",),
        "tensorflow_serving/batching/batching_session.cc",
    ),
    ":tensorflow:cc:saved_model:load_attempt_count": (
        "counter",
        ("model_path", "status"),
        "tensorflow/cc/saved_model/loader.cc",
    ),
}
_BOUNDS = {
    ":tensorflow:serving:request_latency": [10 * 1.8**i for i in range(33)],
    ":tensorflow:serving:request_example_counts": [float(2**i) for i in range(15)],
    ":tensorflow:serving:batching_session:queuing_latency": [100 * 1.2**i for i in range(52)],
}
METRICS_PATH = "/monitoring/prometheus/metrics"


class ServingStatus(Exception):
    """A failed call, as TF Serving reports it: a gRPC code and a message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    """One predict call the fake answered."""

    protocol: str  # "REST" or "gRPC"
    model: str
    version: int
    signature: str
    rows: int


class FakeServing:
    """TF Serving for one model name, on a REST port and a gRPC port.

    Attributes:
        rest_url: `http://127.0.0.1:<port>`, for REST clients.
        grpc_target: `127.0.0.1:<port>`, for gRPC clients.
        calls: Every predict call answered, in order.
    """

    def __init__(
        self,
        model_name: str,
        versions: Mapping[int, str],
        labels: Mapping[str, int] | None = None,
    ) -> None:
        """Loads the SavedModels and starts both servers.

        Args:
            model_name: The name clients ask for.
            versions: SavedModel directory of each version; requests that
                name no version get the highest, as TF Serving's default
                version policy serves the latest.
            labels: Version labels, e.g. {"stable": 1, "canary": 2}.

        Raises:
            ValueError: No versions, or a label names a version not given
                (TF Serving refuses such a config too).
        """
        if not versions:
            raise ValueError(f"model {model_name!r}: give at least one version")
        self.model_name = model_name
        self.labels = dict(labels or {})
        for label, version in self.labels.items():
            if version not in versions:
                raise ValueError(
                    f"label {label!r} points at version {version}, which is not among "
                    f"the versions {sorted(versions)}"
                )
        self._models = {int(v): tf.saved_model.load(path) for v, path in versions.items()}
        self._calls_lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[str, ...]], float] = {}
        self._histograms: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        for path in versions.values():
            self._count(":tensorflow:cc:saved_model:load_attempt_count", (path, "success"))
        # version -> (manager state, error code name, error message)
        self._states: dict[int, tuple[str, str, str]] = {
            v: ("AVAILABLE", "OK", "") for v in self._models
        }
        self.calls: list[Call] = []
        # Every request that reached the server at all, predict or not:
        # (protocol, path or RPC method, headers or metadata, lower-cased names).
        self.received: list[tuple[str, str, dict[str, str]]] = []

        self._rest = _RestServer(self)
        self.rest_url = self._rest.url
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self.grpc_target = f"127.0.0.1:{port}"
        self._grpc.start()

    @property
    def rest_connections(self) -> int:
        """TCP connections REST clients opened (HTTP/1.1 keeps them alive, as TF Serving does)."""
        return self._rest.connections

    def __enter__(self) -> FakeServing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops both servers."""
        self._rest.close()
        self._grpc.stop(grace=None)

    def resolve(self, name: str, version: int | None, label: str | None) -> int:
        """The version a request for (name, version | label | neither) reaches.

        Raises:
            ServingStatus: NOT_FOUND for an unknown model or version,
                INVALID_ARGUMENT for an unknown label, as TF Serving answers.
        """
        if not name:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if name != self.model_name:
            what = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise ServingStatus(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {what}"
            )
        if label is not None:
            if label not in self.labels:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unrecognized servable version label: {label}",
                )
            return self.labels[label]
        if version is None:
            return max(self._models)
        if version not in self._models:
            raise ServingStatus(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Specific({name}, {version})",
            )
        return version

    def predict(
        self,
        protocol: str,
        version: int,
        signature: str,
        inputs: Mapping[str, Any],
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs one signature of one version on inputs keyed by input name.

        Args:
            protocol: "REST" or "gRPC", for `calls`.
            version: A version `resolve` returned.
            signature: The signature name ("" means serving_default).
            inputs: Arrays or nested lists, converted to the signature's dtypes.
            output_filter: Outputs to return; None or empty for all.

        Returns:
            The signature's outputs as numpy arrays.

        Raises:
            ServingStatus: FAILED_PRECONDITION for an unknown signature,
                INVALID_ARGUMENT for missing, extra or badly typed inputs.
        """
        signature = signature or DEFAULT_SIGNATURE
        specs = self.input_specs(version, signature)
        function = self._models[version].signatures[signature]
        unknown = sorted(set(inputs) - set(specs))
        if unknown:
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input tensor alias not found in signature: {', '.join(unknown)}. "
                f"Inputs expected to be in the set {{{','.join(sorted(specs))}}}.",
            )
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Missing input tensor alias(es): {', '.join(missing)} "
                f"(signature {signature!r} takes {', '.join(sorted(specs))})",
            )
        tensors = {}
        for name, spec in specs.items():
            try:
                tensor = tf.convert_to_tensor(inputs[name], dtype=spec.dtype)
            except (TypeError, ValueError) as error:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} is not of the expected type {spec.dtype.name}: {error}",
                ) from None
            if not spec.shape.is_compatible_with(tensor.shape):
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} has shape {tensor.shape}, expected {spec.shape}",
                )
            tensors[name] = tensor
        sizes = {int(t.shape[0]) for t in tensors.values() if t.shape.rank}
        if len(sizes) > 1:
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"inputs have different batch sizes {sorted(sizes)}",
            )
        try:
            outputs = function(**tensors)
        except tf.errors.InvalidArgumentError as error:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, error.message) from None
        if output_filter:
            unknown = sorted(set(output_filter) - set(outputs))
            if unknown:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {', '.join(unknown)}",
                )
            outputs = {k: outputs[k] for k in output_filter}
        with self._calls_lock:
            self.calls.append(
                Call(protocol, self.model_name, version, signature, sizes.pop() if sizes else 0)
            )
        return {name: value.numpy() for name, value in outputs.items()}

    def input_specs(self, version: int, signature: str) -> dict[str, tf.TensorSpec]:
        """The signature's inputs by name.

        Raises:
            ServingStatus: FAILED_PRECONDITION for an unknown signature.
        """
        signatures = self._models[version].signatures
        if signature not in signatures:
            raise ServingStatus(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature}" not found.',
            )
        return dict(signatures[signature].structured_input_signature[1])

    def set_state(self, version: int, state: str) -> None:
        """The server has seen `version` and is in START or LOADING with it (not served yet)."""
        if state not in ("START", "LOADING"):
            raise ValueError(f"set_state takes START or LOADING, not {state!r}")
        self._states[version] = (state, "OK", "")

    def load(self, version: int, path: str) -> None:
        """`version` finished loading: AVAILABLE, and served."""
        self._models[version] = tf.saved_model.load(path)
        self._states[version] = ("AVAILABLE", "OK", "")
        self._count(":tensorflow:cc:saved_model:load_attempt_count", (path, "success"))

    def fail_load(
        self, version: int, error_code: str, message: str, path: str | None = None
    ) -> None:
        """Loading `version` failed: END with the error; the older versions keep serving."""
        self._models.pop(version, None)
        self._states[version] = ("END", error_code, message)
        where = path or f"/models/{self.model_name}/{version}"
        self._count(":tensorflow:cc:saved_model:load_attempt_count", (where, "fail"))

    # -- metrics ---------------------------------------------------------------------

    def _count(self, name: str, labels: tuple[str, ...], by: float = 1.0) -> None:
        with self._calls_lock:
            self._counters[(name, labels)] = self._counters.get((name, labels), 0.0) + by

    def _observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        with self._calls_lock:
            self._histograms.setdefault((name, labels), []).append(value)

    def observe_request(
        self, entrypoint: str, model: str, status: str, seconds: float, rows: int
    ) -> None:
        """Records one predict request as TF Serving's metrics do."""
        self._count(":tensorflow:serving:request_count", (model, status))
        if status == "OK":
            self._observe(
                ":tensorflow:serving:request_latency", (model, "predict", entrypoint), seconds * 1e6
            )
            self._observe(":tensorflow:serving:request_example_counts", (model,), float(rows))
            # One batch per request: the double does not batch across requests.
            self._observe(
                ":tensorflow:serving:batching_session:queuing_latency",
                ("batch_threads",),
                100.0,
            )

    def metrics_text(self) -> str:
        """The Prometheus text exposition of the metrics above."""
        lines: list[str] = []
        with self._calls_lock:
            counters = dict(self._counters)
            histograms = {k: list(v) for k, v in self._histograms.items()}
        for name, (kind, label_names, _) in METRICS.items():
            lines.append(f"# TYPE {name} {kind}")
            if kind == "counter":
                for (metric, labels), value in sorted(counters.items()):
                    if metric == name:
                        lines.append(f"{name}{{{_labels(label_names, labels)}}} {value:g}")
                continue
            for (metric, labels), values in sorted(histograms.items()):
                if metric != name:
                    continue
                base = _labels(label_names, labels)
                for bound in _BOUNDS[name]:
                    below = sum(1 for v in values if v <= bound)
                    lines.append(f'{name}_bucket{{{base},le="{bound:g}"}} {below}')
                lines.append(f'{name}_bucket{{{base},le="+Inf"}} {len(values)}')
                lines.append(f"{name}_sum{{{base}}} {sum(values):g}")
                lines.append(f"{name}_count{{{base}}} {len(values)}")
        return "\n".join(lines) + "\n"

    def version_states(self, name: str, version: int | None) -> list[tuple[int, str, str, str]]:
        """(version, state, error code, message) as GetModelStatus reports them, newest first.

        Raises:
            ServingStatus: NOT_FOUND for an unknown model or version.
        """
        if name != self.model_name:
            raise ServingStatus(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}"
            )
        if version is not None:
            if version not in self._states:
                raise ServingStatus(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {version} of model {name}",
                )
            return [(version, *self._states[version])]
        return [(v, *self._states[v]) for v in sorted(self._states, reverse=True)]

    def status(self, name: str, version: int | None) -> dict[str, Any]:
        """The REST model-status body: every version the server knows, or the one asked for.

        Raises:
            ServingStatus: NOT_FOUND for an unknown model or version.
        """
        return {
            "model_version_status": [
                {
                    "version": str(v),
                    "state": state,
                    "status": {"error_code": code, "error_message": message},
                }
                for v, state, code, message in self.version_states(name, version)
            ]
        }


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return ",".join(f'{n}="{v}"' for n, v in zip(names, escaped, strict=True))


def _from_json(value: Any) -> Any:
    """REST JSON values as TF Serving reads them: {"b64": ...} is bytes."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _check_json_types(name: str, values: Any, dtype: tf.DType) -> None:
    """Rejects JSON values of the wrong kind, as TF Serving does (no coercion)."""
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
            continue
        if dtype == tf.string:
            ok = isinstance(value, (str, bytes))
        elif dtype.is_integer:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif dtype.is_floating:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = True
        if not ok:
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"JSON Value: {json.dumps(value)} of input {name!r} is not of the "
                f"expected type: {dtype.name}",
            )


def _to_json(array: np.ndarray) -> Any:
    if array.dtype == object:
        return [_to_json(np.asarray(v)) for v in array] if array.ndim else _bytes_json(array.item())
    return array.tolist()


def _bytes_json(value: bytes) -> Any:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


class _RestServer(FakeHttpServer):
    """TF Serving's REST API: predict and model status."""

    def __init__(self, fake: FakeServing) -> None:
        self.fake = fake
        super().__init__()

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        self.fake.received.append(("REST", path, {k.lower(): v for k, v in headers.items()}))
        if method == "GET" and path == METRICS_PATH:
            return 200, self.fake.metrics_text()  # text/plain: the text exposition format
        match = _PATH.match(path)
        try:
            if not match:
                raise ServingStatus(
                    grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}"
                )
            version = None
            if match["version"] is not None:
                if not match["version"].isdigit():
                    raise ServingStatus(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Malformed request: {method} {path}",
                    )
                version = int(match["version"])
            if method == "GET" and match["verb"] is None:
                return 200, self.fake.status(match["name"], version)
            if method == "POST" and match["verb"] == ":predict":
                started = time.perf_counter()
                try:
                    resolved = self.fake.resolve(match["name"], version, match["label"])
                    answer = self._predict(resolved, raw)
                except ServingStatus as status:
                    self.fake.observe_request(
                        "REST", match["name"], status.code.name, time.perf_counter() - started, 0
                    )
                    raise
                rows = len(answer.get("predictions", answer.get("outputs", [])))
                self.fake.observe_request(
                    "REST", match["name"], "OK", time.perf_counter() - started, rows
                )
                return 200, answer
            raise ServingStatus(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {path}")
        except ServingStatus as status:
            return _HTTP_STATUS.get(status.code, 500), {"error": status.message}

    def _predict(self, version: int, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {error}"
            ) from None
        if not isinstance(body, dict):
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, "Expected a JSON object")
        signature = body.get("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(signature, str):
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT, "'signature_name' key must be a string value."
            )
        if ("instances" in body) == ("inputs" in body):
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Missing 'inputs' or 'instances' key"
                if "instances" not in body
                else "Not both 'inputs' and 'instances' keys",
            )
        specs = self.fake.input_specs(version, signature)
        names = sorted(specs)
        row_format = "instances" in body
        data = _from_json(body["instances"] if row_format else body["inputs"])
        if row_format:
            if not isinstance(data, list) or not data:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be a non-empty list"
                )
            if all(isinstance(i, dict) for i in data):
                inputs = {n: [i.get(n) for i in data] for n in {k for i in data for k in i}}
                absent = [n for n, values in inputs.items() if None in values]
                if absent:
                    raise ServingStatus(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Failed to process element: instances lack the key(s) {absent}",
                    )
            elif len(names) == 1:
                inputs = {names[0]: data}
            else:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"instances must be objects keyed by input name: {', '.join(names)}",
                )
        else:
            inputs = data if isinstance(data, dict) else {names[0]: data}
        for name, values in inputs.items():
            if name in specs:
                _check_json_types(name, values, specs[name].dtype)
        outputs = self.fake.predict("REST", version, signature, inputs)
        if row_format:
            if len(outputs) == 1:
                return {"predictions": _to_json(next(iter(outputs.values())))}
            columns = {k: _to_json(v) for k, v in outputs.items()}
            rows = len(next(iter(columns.values())))
            return {"predictions": [{k: c[i] for k, c in columns.items()} for i in range(rows)]}
        if len(outputs) == 1:
            return {"outputs": _to_json(next(iter(outputs.values())))}
        return {"outputs": {k: _to_json(v) for k, v in outputs.items()}}


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's gRPC Predict; the other methods answer UNIMPLEMENTED."""

    def __init__(self, fake: FakeServing) -> None:
        self.fake = fake

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        _record(self.fake, "/tensorflow.serving.PredictionService/Predict", context)
        spec = request.model_spec
        started = time.perf_counter()
        try:
            choice = spec.WhichOneof("version_choice")
            version = self.fake.resolve(
                spec.name,
                spec.version.value if choice == "version" else None,
                spec.version_label if choice == "version_label" else None,
            )
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            except (TypeError, ValueError) as error:
                raise ServingStatus(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Invalid input tensor: {error}"
                ) from None
            outputs = self.fake.predict(
                "gRPC", version, spec.signature_name, inputs, list(request.output_filter)
            )
        except ServingStatus as status:
            self.fake.observe_request(
                "GRPC", spec.name, status.code.name, time.perf_counter() - started, 0
            )
            context.abort(status.code, status.message)
        rows = len(next(iter(outputs.values()))) if outputs else 0
        self.fake.observe_request("GRPC", spec.name, "OK", time.perf_counter() - started, rows)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = spec.signature_name or DEFAULT_SIGNATURE
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response


def _record(fake: FakeServing, method: str, context: grpc.ServicerContext) -> None:
    metadata = {k.lower(): str(v) for k, v in context.invocation_metadata()}
    fake.received.append(("gRPC", method, metadata))


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's gRPC GetModelStatus and HandleReloadConfigRequest (recorded, then refused)."""

    def __init__(self, fake: FakeServing) -> None:
        self.fake = fake

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
        # The real server would apply the new config; here it is only recorded.
        _record(self.fake, "/tensorflow.serving.ModelService/HandleReloadConfigRequest", context)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the double does not reload its config")

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        _record(self.fake, "/tensorflow.serving.ModelService/GetModelStatus", context)
        if not request.HasField("model_spec"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        try:
            states = self.fake.version_states(spec.name, version)
        except ServingStatus as status:
            context.abort(status.code, status.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        codes = response.DESCRIPTOR.fields_by_name["model_version_status"].message_type
        error_codes = codes.fields_by_name["status"].message_type.fields_by_name["error_code"]
        for number, state, code, message in states:
            entry = response.model_version_status.add()
            entry.version = number
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            entry.status.error_code = error_codes.enum_type.values_by_name[code].number
            entry.status.error_message = message
        return response


def write_constant_model(path: str, probability: float, columns) -> str:  # type: ignore[no-untyped-def]
    """Saves a stand-in model that answers `probability` for every row.

    It has the exported model's `serving_default` and `serving_raw` input
    signatures, so that a second version that answers differently from the
    trained one shows which version a request reached.

    Args:
        path: Directory to save the SavedModel in.
        probability: The answer.
        columns: The serving columns (components.workload.ServingColumn) of
            the `serving_raw` signature.

    Returns:
        `path`.
    """
    from components.contracts import PROBABILITY

    dtypes = {"float": tf.float32, "int": tf.int64, "string": tf.string}

    def raw_input_specs() -> dict[str, tf.TensorSpec]:
        return {c.name: tf.TensorSpec([None], dtypes[c.dtype], name=c.name) for c in columns}

    def answer(batch: tf.Tensor) -> dict[str, tf.Tensor]:
        return {PROBABILITY: tf.fill(tf.stack([tf.shape(batch)[0], 1]), probability)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return answer(examples)

    @tf.function(input_signature=[raw_input_specs()])
    def serve_raw(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return answer(next(iter(features.values())))

    module = tf.Module()
    tf.saved_model.save(
        module,
        path,
        signatures={
            "serving_default": serve_examples.get_concrete_function(),
            "serving_raw": serve_raw.get_concrete_function(),
        },
    )
    return path


def serve_constant(
    folder: Path, probability: float, columns, model_name: str = "taxi"
) -> FakeServing:  # type: ignore[no-untyped-def]
    """A started double serving one stand-in version (write_constant_model) as version 1."""
    return FakeServing(
        model_name, {1: write_constant_model(str(folder / "m"), probability, columns)}
    )
