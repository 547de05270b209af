"""TF Serving monitoring (kubernetes/serving/components/monitoring): manifests, PromQL, Prometheus.

- The ServiceMonitor and PrometheusRule validate against the Prometheus
  Operator's CRD schemas (tests/schemas), and select what TF Serving serves.
- Every PromQL expression, in the rules and in the Grafana dashboard, passes
  Debian's `promtool`, and names only metrics TF Serving 2.16 exports
  (`tests.fake_serving.METRICS`, with their sources).
- Debian's real Prometheus scrapes the TF Serving double's metrics endpoint
  and evaluates the shipped rules: the counts it reads are the requests sent,
  and the first failed model load fires the alert.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.serving.client import ServingError, make_client
from pipeline.serving.columns import columns_for
from pipeline.serving.rows import read_rows
from tests import kubernetes_schemas, prometheus_server
from tests.conftest import REPO_ROOT, read_csv_rows, taxi_config, write_csv
from tests.fake_serving import METRICS, METRICS_PATH, FakeServing, serve_constant
from tests.prometheus_server import query, safe_query, wait_for

MONITORING = REPO_ROOT / "kubernetes" / "serving" / "components" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "taxi-serving-dashboard.json"
COLUMNS = columns_for(taxi_config())


def _render() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        ["kubectl", "kustomize", str(REPO_ROOT / "kubernetes" / "serving" / "overlays" / "secure")],
        capture_output=True,
        text=True,
        check=True,
    )
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [
        v["query"].removeprefix("label_values(").rsplit(",", 1)[0]
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return exprs


def _as_promql(grafana_expr: str) -> str:
    """A dashboard expression with Grafana's variables as Prometheus would receive them."""
    return grafana_expr.replace("$__rate_interval", "1m").replace('"$model"', '".*"')


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def _promtool_check(groups: list[dict[str, Any]], folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return subprocess.run(
        [prometheus_server.tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- manifests ---------------------------------------------------------------------------


def test_monitor_and_rule_validate_against_the_operator_crds():
    objects = _render()
    monitoring = [o for o in objects if o["kind"] in kubernetes_schemas.MONITORING_SCHEMAS]
    assert sorted(o["kind"] for o in monitoring) == ["PrometheusRule", "ServiceMonitor"]
    for obj in monitoring:
        kubernetes_schemas.validate(obj)
    broken = json.loads(json.dumps(next(o for o in monitoring if o["kind"] == "ServiceMonitor")))
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(ValueError, match="intervall"):
        kubernetes_schemas.validate(broken)


def test_the_service_monitor_scrapes_tf_servings_metrics_port_and_path():
    objects = _render()
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    (service,) = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "taxi-serving"
    ]
    # TF Serving's Service, and a rollout's canary track (overlays/canary).
    (selects,) = monitor["spec"]["selector"]["matchExpressions"]
    assert selects["key"] == "app.kubernetes.io/name" and selects["operator"] == "In"
    assert set(selects["values"]) == {"taxi-serving", "taxi-serving-canary"}
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] in selects["values"]
    assert monitor["spec"]["targetLabels"] == ["track"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    config = (REPO_ROOT / "kubernetes" / "serving" / "base" / "monitoring.config").read_text()
    assert f'path: "{endpoint["path"]}"' in config and endpoint["path"] == METRICS_PATH


def test_the_dashboard_is_a_configmap_the_grafana_sidecar_loads():
    (configmap,) = [
        o
        for o in _render()
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("taxi-serving-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["taxi-serving-dashboard.json"])
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for needed in (
        "Requests",
        "Error rate",
        "p99",
        "Batching queue",
        "Examples per request",
        "loads",
    ):
        assert needed in titles


# -- PromQL ------------------------------------------------------------------------------


def test_every_expression_passes_promtool(tmp_path):
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    checked = _promtool_check(groups, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    dashboard_rules = [
        {"record": f"dashboard:expr_{i}", "expr": _as_promql(e)}
        for i, e in enumerate(_dashboard_exprs())
    ]
    checked = _promtool_check([{"name": "dashboard", "rules": dashboard_rules}], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_catches_a_broken_expression(tmp_path):
    checked = _promtool_check(
        [
            {
                "name": "x",
                "rules": [
                    {"record": "x:y", "expr": "sum(rate(:tensorflow:serving:request_count[5m])"}
                ],
            }
        ],
        tmp_path,
    )
    assert checked.returncode != 0


def test_every_metric_named_is_one_tf_serving_exports():
    named = set()
    for expr in _rule_exprs() + _dashboard_exprs():
        for name in re.findall(r":tensorflow:[a-z_:]+[a-z_]", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            # A histogram's series carry a suffix; a counter's name is itself.
            histogram = base != name and METRICS.get(base, ("",))[0] == "histogram"
            named.add(base if histogram else name)
    assert named and named <= set(METRICS), sorted(named - set(METRICS))


# -- a real Prometheus ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServing]:
    with serve_constant(tmp_path_factory.mktemp("mon"), 0.3, COLUMNS) as fake:
        yield fake


@pytest.fixture(scope="module")
def prometheus(serving: FakeServing) -> Iterator[int]:
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    with prometheus_server.running(
        [(serving.rest_url.removeprefix("http://"), {})], groups
    ) as port:
        yield port


def test_prometheus_reads_the_requests_sent_and_evaluates_every_rule(serving, prometheus, tmp_path):
    path = tmp_path / "rows.csv"
    rows = read_csv_rows(limit=4)
    write_csv(path, rows, list(rows[0]))
    for use_grpc in (False, True):
        endpoint = serving.grpc_target if use_grpc else serving.rest_url
        with make_client(endpoint, "taxi", COLUMNS, use_grpc=use_grpc) as client:
            for _ in range(3):
                client.predict(read_rows(str(path), COLUMNS))
    # One request TF Serving refuses: a version it does not have.
    with (
        make_client(serving.rest_url, "taxi", COLUMNS, version=9) as client,
        pytest.raises(ServingError, match="Servable not found"),
    ):
        client.predict(read_rows(str(path), COLUMNS))

    def counts() -> dict[str, float]:
        found = safe_query(prometheus, "sum by (status) (:tensorflow:serving:request_count)")
        return {r["metric"]["status"]: float(r["value"][1]) for r in found}

    assert wait_for(lambda: counts() == {"OK": 6.0, "NOT_FOUND": 1.0}, 30), counts()
    by_entrypoint = query(
        prometheus, "sum by (entrypoint) (:tensorflow:serving:request_latency_count)"
    )
    assert {r["metric"]["entrypoint"]: float(r["value"][1]) for r in by_entrypoint} == {
        "REST": 3.0,
        "GRPC": 3.0,
    }
    examples = query(prometheus, "sum(:tensorflow:serving:request_example_counts_sum)")
    assert float(examples[0]["value"][1]) == 24.0  # 6 requests of 4 rows
    with urllib.request.urlopen(f"http://127.0.0.1:{prometheus}/api/v1/rules", timeout=10) as r:
        rules = [rule for g in json.loads(r.read())["data"]["groups"] for rule in g["rules"]]
    assert len(rules) == len(_rule_exprs())
    assert wait_for(lambda: all(rule.get("health") == "ok" for rule in _rules(prometheus)), 30), (
        _rules(prometheus)
    )


def _rules(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as r:
        return [rule for g in json.loads(r.read())["data"]["groups"] for rule in g["rules"]]


def test_the_first_failed_load_fires_the_alert(serving, prometheus):
    def firing() -> list[dict[str, Any]]:
        alerts = safe_query(prometheus, 'ALERTS{alertname="TFServingModelLoadFailed"}')
        return [a for a in alerts if a["metric"].get("alertstate") == "firing"]

    assert firing() == []
    serving.fail_load(2, "NOT_FOUND", "Op type not registered 'ZeroOut'")
    alerts = wait_for(firing, 60)
    assert alerts and alerts[0]["metric"]["model_path"] == "/models/taxi/2"
