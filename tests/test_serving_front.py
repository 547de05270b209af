"""The TLS front (kubernetes/serving/components/front): its manifests, and its nginx.conf for real.

Debian's nginx runs the shipped nginx.conf (tests/nginx_front.py) in front
of the TF Serving double, REST and gRPC on one TLS port. The manifests are
rendered by `kubectl kustomize` and validated strictly; no cluster runs
them here, so the NetworkPolicy is checked for what it selects, not enforced.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import yaml

from pipeline.__main__ import main
from pipeline.serving import status as status_lib
from pipeline.serving.columns import columns_for
from pipeline.serving.security import Credentials, CredentialsError
from tests import kubernetes_schemas, nginx_front
from tests.conftest import REPO_ROOT, read_csv_rows, taxi_config, write_csv
from tests.fake_serving import FakeServing, serve_constant

COLUMNS = columns_for(taxi_config())
SERVING = REPO_ROOT / "kubernetes" / "serving"
FRONT_LABELS = {"app.kubernetes.io/name": "taxi-serving-front"}
SECRETS = {
    "taxi-serving-front-tls",
    "taxi-serving-front-client-ca",
    "taxi-serving-front-api-keys",
}


# -- the manifests ---------------------------------------------------------------------


def _render(path: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        ["kubectl", "kustomize", str(SERVING / path)], capture_output=True, text=True, check=True
    )
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_secure_overlay_is_gcs_plus_the_front_and_validates_strictly():
    secure, gcs = _render("overlays/secure"), _render("overlays/gcs")
    for obj in secure:
        kubernetes_schemas.validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "taxi-serving"
    added = sorted((o["kind"], o["metadata"]["name"]) for o in secure if o not in gcs)
    configmaps = sorted(name.rsplit("-", 1)[0] for kind, name in added if kind == "ConfigMap")
    # Hash suffixes: a change rolls the front's pods, reloads the dashboard.
    assert configmaps == [
        "taxi-serving-dashboard",
        "taxi-serving-front",
        "taxi-serving-front-routes",
    ]
    assert [a for a in added if a[0] != "ConfigMap"] == [
        ("Deployment", "taxi-serving-front"),
        ("NetworkPolicy", "taxi-serving-from-front-only"),
        ("PodDisruptionBudget", "taxi-serving-front"),
        ("PrometheusRule", "taxi-serving"),  # components/monitoring
        ("Service", "taxi-serving-front"),
        ("ServiceMonitor", "taxi-serving"),
    ]
    assert [o for o in gcs if o not in secure] == []  # TF Serving's own objects unchanged
    assert not [o for o in secure if o["kind"] == "Secret"]


def test_the_front_pod_is_locked_down_and_mounts_the_shipped_config():
    objects = _render("overlays/secure")
    pod = _named(objects, "Deployment", "taxi-serving-front")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "nginx:1.26.2"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {
            "path": "/healthz",
            "port": "https",
            "scheme": "HTTPS",
        }
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert {v["secret"]["secretName"] for v in volumes.values() if "secret" in v} == SECRETS
    configmap = _named(objects, "ConfigMap", volumes["config"]["configMap"]["name"])
    assert configmap["data"]["nginx.conf"] == nginx_front.FRONT_CONF.read_text()
    service = _named(objects, "Service", "taxi-serving-front")
    assert service["spec"]["selector"] == FRONT_LABELS
    assert FRONT_LABELS.items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "appProtocol": "https"}
    ]


def test_tf_servings_ports_are_open_to_the_front_and_prometheus_only():
    objects = _render("overlays/secure")
    policy = _named(objects, "NetworkPolicy", "taxi-serving-from-front-only")["spec"]
    server = _named(objects, "Deployment", "taxi-serving")["spec"]["template"]["metadata"]
    # TF Serving's pods, those of a rollout's canary track too (overlays/canary).
    (selects,) = policy["podSelector"]["matchExpressions"]
    assert selects["key"] == "app.kubernetes.io/name" and selects["operator"] == "In"
    assert server["labels"]["app.kubernetes.io/name"] in selects["values"]
    assert set(selects["values"]) == {"taxi-serving", "taxi-serving-canary"}
    assert policy["policyTypes"] == ["Ingress"]
    front_rule, prometheus_rule = policy["ingress"]
    assert front_rule["from"] == [{"podSelector": {"matchLabels": FRONT_LABELS}}]
    assert {p["port"] for p in front_rule["ports"]} == {8500, 8501}
    # Prometheus reaches the REST port (metrics), never gRPC.
    assert [p["port"] for p in prometheus_rule["ports"]] == [8501]
    assert "namespaceSelector" in prometheus_rule["from"][0]


# -- nginx for real --------------------------------------------------------------------


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServing]:
    with serve_constant(tmp_path_factory.mktemp("front"), 0.25, COLUMNS) as fake:
        yield fake


@pytest.fixture(scope="module")
def front(serving: FakeServing) -> Iterator[nginx_front.Front]:
    nginx_front.nginx()
    running = nginx_front.start(serving.rest_url.removeprefix("http://"), serving.grpc_target)
    yield running
    nginx_front.stop(running)


@pytest.fixture(scope="module")
def rows_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    rows = read_csv_rows(limit=3)
    write_csv(path, rows, list(rows[0]))
    return str(path)


def _get(
    front: nginx_front.Front,
    path: str,
    headers: dict[str, str] | None = None,
    client: str | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", front.port, timeout=10, context=front.context(client)
    )
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _basic(key_id: str, key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key_id}:{key}".encode()).decode()}


def test_nginx_t_passes_on_the_shipped_config(serving):
    folder, config, _ = nginx_front.prepare("127.0.0.1:1", "127.0.0.1:2")
    try:
        checked = nginx_front.check_config(config)
        assert checked.returncode == 0, checked.stderr
        assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_rest_predict_over_tls_with_a_valid_key(front, serving, rows_csv, monkeypatch, capsys):
    monkeypatch.setenv("FRONT_KEY", f"{nginx_front.KEY_ID}:{nginx_front.KEY}")
    before = len(serving.calls)
    code = main(
        [
            "predict",
            "--endpoint",
            front.rest_url,
            "--csv",
            rows_csv,
            "--ca-cert",
            front.ca_cert,
            "--api-key-env",
            "FRONT_KEY",
            "-o",
            "json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert [r["probability"] for r in result["rows"]] == pytest.approx([0.25] * 3)
    assert [c.protocol for c in serving.calls[before:]] == ["REST"]
    # The key stops at the front.
    assert serving.received and "authorization" not in serving.received[-1][2]


def test_grpc_predict_and_status_over_tls_with_a_valid_key(
    front, serving, rows_csv, monkeypatch, capsys
):
    monkeypatch.setenv("FRONT_KEY", f"{nginx_front.KEY_ID}:{nginx_front.KEY}")
    tls = ["--ca-cert", front.ca_cert, "--api-key-env", "FRONT_KEY"]
    before = len(serving.calls)
    assert (
        main(["predict", "--endpoint", front.grpc_endpoint, "--grpc", "--csv", rows_csv, *tls]) == 0
    )
    assert [c.protocol for c in serving.calls[before:]] == ["gRPC"]
    assert main(["status", "--endpoint", front.grpc_endpoint, "--version", "1", *tls]) == 0
    assert main(["status", "--endpoint", front.rest_url, "--version", "1", *tls]) == 0
    assert "version 1 of taxi: AVAILABLE" in capsys.readouterr().out
    grpc_seen = [r for r in serving.received if r[0] == "gRPC"]
    assert [m for _, m, _ in grpc_seen[-2:]] == [
        "/tensorflow.serving.PredictionService/Predict",
        "/tensorflow.serving.ModelService/GetModelStatus",
    ]
    assert not any("authorization" in metadata for _, _, metadata in grpc_seen)


def test_grpc_config_reload_is_not_let_through(front, serving, monkeypatch):
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    from pipeline.serving.client import grpc_channel

    monkeypatch.setenv("FRONT_KEY", f"{nginx_front.KEY_ID}:{nginx_front.KEY}")
    credentials = Credentials.from_options(ca_cert=front.ca_cert, api_key_env="FRONT_KEY")
    before = len(serving.received)
    with grpc_channel(front.grpc_endpoint, credentials) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(),
                timeout=10,
                metadata=credentials.grpc_metadata(),
            )
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED  # nginx's 404
    assert serving.received[before:] == []


@pytest.mark.parametrize(
    "headers",
    [{}, _basic(nginx_front.KEY_ID, "wrong"), _basic("someone", nginx_front.KEY)],
    ids=["no key", "wrong key", "unknown key id"],
)
def test_rest_without_a_valid_key_is_refused_before_tf_serving(front, serving, headers):
    before = len(serving.received)
    code, body = _get(front, "/v1/models/taxi", headers)
    assert code == 401, body
    assert serving.received[before:] == []


def test_grpc_without_a_key_is_unauthenticated(front, serving):
    before = len(serving.received)
    with pytest.raises(status_lib.StatusError) as refused:
        status_lib.grpc_status(
            front.grpc_endpoint, "taxi", 1, 10, Credentials(ca_cert=front.ca_cert)
        )
    assert refused.value.code == "UNAUTHENTICATED"
    assert serving.received[before:] == []


def test_plain_http_to_the_tls_port_is_refused(front, serving):
    before = len(serving.received)
    connection = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    key = _basic(nginx_front.KEY_ID, nginx_front.KEY)
    connection.request("GET", "/v1/models/taxi", headers=key)
    response = connection.getresponse()
    assert response.status == 400
    assert b"plain HTTP request was sent to HTTPS port" in response.read()
    assert serving.received[before:] == []


def test_a_client_certificate_of_the_client_ca_needs_no_key(front, serving):
    code, body = _get(front, "/v1/models/taxi", client="client")
    assert code == 200 and json.loads(body)["model_version_status"][0]["state"] == "AVAILABLE"
    cert, key = front.client("client")
    statuses = status_lib.grpc_status(
        front.grpc_endpoint, "taxi", 1, 10, Credentials(front.ca_cert, cert, key)
    )
    assert statuses[0].state == "AVAILABLE"


def test_a_certificate_of_another_ca_is_refused(front, serving):
    before = len(serving.received)
    code, _ = _get(front, "/v1/models/taxi", client="stranger")
    assert code == 400  # nginx: "The SSL certificate error"
    assert serving.received[before:] == []


def test_the_key_is_checked_against_the_server_certificate_too(front):
    # A client that does not trust the front's CA never sends the key.
    with pytest.raises(status_lib.StatusError) as failed:
        status_lib.rest_status(front.rest_url, "taxi", 1, 10, Credentials(api_key="a:b"))
    assert failed.value.code == "TLS" and "CERTIFICATE_VERIFY_FAILED" in failed.value.message


def test_metrics_and_other_paths_stay_inside(front, serving):
    headers = _basic(nginx_front.KEY_ID, nginx_front.KEY)
    before = len(serving.received)
    assert _get(front, "/monitoring/prometheus/metrics", headers)[0] == 404
    assert serving.received[before:] == []  # nginx's 404, not the server's
    assert _get(front, "/healthz")[0] == 200  # the probes' path, without a key


def test_a_key_is_never_sent_in_clear(monkeypatch):
    monkeypatch.setenv("K", "id:secret")
    credentials = Credentials.from_options(api_key_env="K")
    with pytest.raises(CredentialsError, match="https://"):
        credentials.check_rest("http://serving:8501")
    from pipeline.serving.client import grpc_channel

    with pytest.raises(CredentialsError, match="needs TLS"):
        grpc_channel("serving:8500", credentials)


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "not set"), ("justakey", "without a key id")],
)
def test_a_bad_key_variable_is_named(monkeypatch, value, message):
    monkeypatch.delenv("K", raising=False)
    if value is not None:
        monkeypatch.setenv("K", value)
    with pytest.raises(CredentialsError, match=message):
        Credentials.from_options(api_key_env="K")


def test_a_file_that_is_no_certificate_is_named_not_a_traceback(front, tmp_path, capsys):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    argv = ["status", "--endpoint", front.rest_url, "--version", "1", "--ca-cert", str(bogus)]
    assert main(argv) == 2
    assert f"--ca-cert {bogus}: not a PEM CA bundle" in capsys.readouterr().err
    cert, _ = front.client("client")
    _, other_key = front.client("stranger")
    mismatched = [*argv[:-2], "--client-cert", cert, "--client-key", other_key]
    assert main(mismatched) == 2
    assert "not a PEM certificate and its private key" in capsys.readouterr().err


def test_an_untrusted_certificate_fails_at_once_even_with_wait(front, capsys):
    # The system's roots do not know the test CA: waiting would not help.
    argv = ["status", "--endpoint", front.rest_url, "--version", "1", "--wait", "--timeout", "60"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "TLS:" in err and "CERTIFICATE_VERIFY_FAILED" in err and "timed out" not in err


def test_a_gateway_error_is_waited_out_like_an_unreachable_server():
    from tests.fake_http import FakeHttpServer

    class Gateway(FakeHttpServer):
        def respond(self, method, path, query, headers, raw):  # type: ignore[no-untyped-def]
            return 502, {"message": "Bad Gateway"}

    gateway = Gateway()
    try:
        with pytest.raises(status_lib.StatusError) as failed:
            status_lib.rest_status(gateway.url, "taxi", 1, 5)
        assert failed.value.code == "UNAVAILABLE"
        _, pending = status_lib.check(
            lambda v: status_lib.rest_status(gateway.url, "taxi", v, 5), "taxi", 1
        )
        assert pending
    finally:
        gateway.close()
