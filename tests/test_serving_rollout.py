"""Canary rollouts (overlays/canary, `rollout start|promote|abort|status`).

What runs for real: Debian's nginx on the front's shipped nginx.conf with the
routes file `rollout` writes (the weight split, the pinning header and the
client cohorts, over REST and gRPC), reloaded by the configured apply
command; Debian's Prometheus scraping both tracks, read by the promotion
gate over its HTTP API; the registry's labels and deployment events. What
does not: TF Serving (two doubles, tests/fake_serving.py, one per track) and
the cluster (the manifests are rendered by kustomize and validated strictly).
"""

from __future__ import annotations

import datetime
import http.client
import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.registry import model_config
from components.registry.store import Registry, RegistryError
from pipeline.__main__ import main
from pipeline.config import RolloutConfig, RolloutTrack
from pipeline.serving import rollout as rollout_lib
from pipeline.serving.columns import columns_for
from tests import kubernetes_schemas, nginx_front, prometheus_server
from tests.conftest import REPO_ROOT, taxi_config
from tests.fake_serving import FakeServing, write_constant_model

COLUMNS = columns_for(taxi_config())
SERVING = REPO_ROOT / "kubernetes" / "serving"
CANARY_OVERLAY = SERVING / "overlays" / "canary"
KEY_ENV = "ROLLOUT_FRONT_KEY"
# The gate's window here: short, so that the steps need not wait long.
WINDOW_S = 15


# -- the manifests ---------------------------------------------------------------------


def _render() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        ["kubectl", "kustomize", str(CANARY_OVERLAY)], capture_output=True, text=True, check=True
    )
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _configmap_named(objects: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    (found,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].rsplit("-", 1)[0] == prefix
    ]
    return found


def test_the_canary_overlay_has_two_tf_servings_with_disjoint_pods():
    objects = _render()
    for obj in objects:
        kubernetes_schemas.validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "taxi-serving"
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert deployments == {"taxi-serving", "taxi-serving-canary", "taxi-serving-front"}
    # The stable track keeps its HPA and PDB; the canary runs one replica without.
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"] == [
        "taxi-serving"
    ]
    assert _named(objects, "Deployment", "taxi-serving-canary")["spec"]["replicas"] == 1
    assert [o["kind"] for o in objects].count("Namespace") == 1
    for track, name in (("stable", "taxi-serving"), ("canary", "taxi-serving-canary")):
        pods = _named(objects, "Deployment", name)["spec"]["template"]
        service = _named(objects, "Service", name)
        assert service["metadata"]["labels"]["track"] == track  # the ServiceMonitor's targetLabel
        assert pods["metadata"]["labels"]["track"] == track
        assert service["spec"]["selector"].items() <= pods["metadata"]["labels"].items()
        other = _named(
            objects, "Deployment", "taxi-serving-canary" if track == "stable" else "taxi-serving"
        )["spec"]["template"]["metadata"]["labels"]
        assert not service["spec"]["selector"].items() <= other.items(), f"{name} selects both"
        (server,) = [c for c in pods["spec"]["containers"] if c["name"] == "tensorflow-serving"]
        assert server["image"] == "tensorflow/serving:2.16.1"
        assert server["readinessProbe"]["httpGet"]["path"] == "/v1/models/taxi/metadata"
        assert {"cpu", "memory"} <= server["resources"]["limits"].keys()
        volumes = pods["spec"]["volumes"]
        sources = [
            s["configMap"]["name"]
            for v in volumes
            for s in v.get("projected", {}).get("sources", [])
        ]
        models = "taxi-serving-models" + ("-canary" if track == "canary" else "")
        assert models in sources
        text = _named(objects, "ConfigMap", models)["data"]["models.config"]
        (model,) = model_config.parse(text, models).model_config_list.config
        assert list(model.model_version_policy.specific.versions) == [1]
        assert not model.version_labels, f"{track}: a track serves one version, unlabelled"
    policy = _named(objects, "NetworkPolicy", "taxi-serving-from-front-only")["spec"]
    assert set(policy["podSelector"]["matchExpressions"][0]["values"]) == {
        "taxi-serving",
        "taxi-serving-canary",
    }


def test_the_front_includes_the_routes_rollout_writes():
    objects = _render()
    routes = _configmap_named(objects, "taxi-serving-front-routes")
    config = RolloutConfig()
    assert routes["data"]["routes.conf"] == (REPO_ROOT / config.routes_file).read_text()
    # The shipped file is what `rollout` writes with no canary traffic.
    assert routes["data"]["routes.conf"] == rollout_lib.render_routes(
        config.stable, config.canary, 0
    )
    for track in (config.stable, config.canary):
        assert (REPO_ROOT / track.model_config).is_file()
    front = _named(objects, "Deployment", "taxi-serving-front")["spec"]["template"]["spec"]
    mounted = {v["name"]: v for v in front["volumes"]}
    assert mounted["routes"]["configMap"]["name"] == routes["metadata"]["name"]


# -- routes, gate and history on their own --------------------------------------------------


def _tracks(stable: FakeServing, canary: FakeServing, folder: Path) -> tuple[Any, Any]:
    shipped = RolloutConfig()
    tracks = []
    for name, fake, track in (
        ("stable", stable, shipped.stable),
        ("canary", canary, shipped.canary),
    ):
        path = folder / f"{name}-models.config"
        shutil.copy(REPO_ROOT / track.model_config, path)
        tracks.append(
            RolloutTrack(fake.rest_url.removeprefix("http://"), fake.grpc_target, str(path))
        )
    return tracks[0], tracks[1]


@pytest.mark.parametrize("weight", [0, 10, 50])
def test_nginx_accepts_the_routes_at_every_weight(weight):
    text = rollout_lib.render_routes(
        RolloutTrack("127.0.0.1:1", "127.0.0.1:2"),
        RolloutTrack("127.0.0.1:3", "127.0.0.1:4"),
        weight,
    )
    assert ("split_clients" in text) == (weight > 0)
    if weight:
        assert f"    {weight}% canary;" in text
    folder, config, _ = nginx_front.prepare("127.0.0.1:1", "127.0.0.1:2", text)
    try:
        checked = nginx_front.check_config(config)
        assert checked.returncode == 0, checked.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


GATE = RolloutConfig(min_requests=20, max_error_rate_increase=0.01, max_p99_ratio=1.25)
OK_TRACK = rollout_lib.TrackFigures(requests=100, errors=1, p99_ms=10.0)


@pytest.mark.parametrize(
    ("canary", "stable", "reason"),
    [
        (rollout_lib.TrackFigures(50, 1, 11.0), OK_TRACK, None),
        (rollout_lib.TrackFigures(10, 0, 5.0), OK_TRACK, "fewer than rollout.min_requests=20"),
        (rollout_lib.TrackFigures(50, 5, 10.0), OK_TRACK, "error rate: canary 10.00%"),
        (rollout_lib.TrackFigures(50, 0, 30.0), OK_TRACK, "p99 latency: canary 30.0 ms"),
        (OK_TRACK, rollout_lib.TrackFigures(0, 0, None), "the stable track served no requests"),
        (rollout_lib.TrackFigures(50, 0, None), OK_TRACK, "no request latency histogram"),
    ],
    ids=["within margins", "too few", "errors", "slow", "no stable traffic", "no latency"],
)
def test_the_gate_judges_error_rate_and_p99_against_stable(canary, stable, reason):
    verdict = rollout_lib.judge(stable, canary, GATE)
    assert verdict.passed == (reason is None)
    if reason:
        assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_what_served_at_a_time_comes_from_the_deployment_events(tmp_path):
    registry = Registry(str(tmp_path), "taxi")
    first = registry.record_deployment({"action": "start", "stable": 1, "canary": 2, "weight": 10})
    time.sleep(1.1)
    registry.record_deployment({"action": "abort", "stable": 1, "canary": None, "weight": 0})
    when = datetime.datetime.fromisoformat(first["time"])
    assert rollout_lib.at(registry, when) == rollout_lib.State(1, 2, 10)
    assert rollout_lib.at(registry, when - datetime.timedelta(seconds=5)) is None
    later = when + datetime.timedelta(days=1)
    assert rollout_lib.at(registry, later) == rollout_lib.State(1, None, 0)
    assert rollout_lib.current(registry) == rollout_lib.State(1, None, 0)
    (tmp_path / "taxi" / "deployments.json").write_text('{"not": "a list"}')
    with pytest.raises(RegistryError, match=r"deployments\.json: expected a list of events"):
        registry.deployments()


# -- a rollout for real: nginx, Prometheus, two TF Serving doubles -------------------------


class Setup:
    """Two tracks, the front, Prometheus and a registry with versions 1 and 2."""

    def __init__(self, folder: Path) -> None:
        self.v1 = write_constant_model(str(folder / "v1"), 0.2, COLUMNS)
        self.v2 = write_constant_model(str(folder / "v2"), 0.8, COLUMNS)
        self.registry = Registry(str(folder / "registry"), "taxi")
        for path in (self.v1, self.v2):
            self.registry.publish(path, {})
        self.registry.set_label("stable", 1)
        self.stable = FakeServing("taxi", {1: self.v1})
        self.canary = FakeServing("taxi", {1: self.v1})
        self.stable_track, self.canary_track = _tracks(self.stable, self.canary, folder)
        self.front = nginx_front.start(
            "unused:1",
            "unused:2",
            rollout_lib.render_routes(self.stable_track, self.canary_track, 0),
        )
        reload = [
            nginx_front.nginx(),
            "-s",
            "reload",
            "-c",
            str(self.front.config),
            "-p",
            str(self.front.folder),
        ]
        self.prometheus_context = prometheus_server.running(
            [
                (self.stable.rest_url.removeprefix("http://"), {"track": "stable"}),
                (self.canary.rest_url.removeprefix("http://"), {"track": "canary"}),
            ]
        )
        self.prometheus = self.prometheus_context.__enter__()
        self.args = [
            "--set",
            f"registry.uri={self.registry.uri}",
            "--set",
            "registry.model_name=taxi",
            "--set",
            f"rollout.routes_file={self.front.folder / 'routes' / 'routes.conf'}",
            "--set",
            f"rollout.apply_command={json.dumps(reload)}",
            "--set",
            f"rollout.endpoint={self.front.rest_url}",
            "--set",
            f"rollout.prometheus_url=http://127.0.0.1:{self.prometheus}",
            "--set",
            f"rollout.window={WINDOW_S}s",
            "--set",
            "rollout.min_requests=20",
            # Both doubles share this process and its 2 cores with whatever
            # else runs: a p99 of 30 requests is noise here. The latency rule
            # is tested on its own (test_the_gate_judges_...); this run
            # judges errors.
            "--set",
            "rollout.p99_slack_ms=500",
            "--set",
            "rollout.wait_timeout_s=30",
            "--ca-cert",
            self.front.ca_cert,
            "--api-key-env",
            KEY_ENV,
        ]
        for name, track in (("stable", self.stable_track), ("canary", self.canary_track)):
            self.args += [
                "--set",
                f"rollout.{name}.rest={track.rest}",
                "--set",
                f"rollout.{name}.grpc={track.grpc}",
                "--set",
                f"rollout.{name}.model_config={track.model_config}",
            ]

    def close(self) -> None:
        self.prometheus_context.__exit__(None, None, None)
        nginx_front.stop(self.front)
        self.stable.close()
        self.canary.close()

    def rollout(self, *command: str) -> int:
        return main(["rollout", *command, *self.args])

    def request(
        self, path: str = "/v1/models/taxi", body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """One request through the front; (status, the track that answered)."""
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.front.port, timeout=10, context=self.front.context("client")
        )
        try:
            connection.request(
                "POST" if body is not None else "GET",
                path,
                body=None if body is None else json.dumps(body),
                headers=headers or {},
            )
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader(rollout_lib.TRACK_HEADER, "")
        finally:
            connection.close()

    def tracks(self, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(count):
            status, track = self.request(headers=headers)
            assert status == 200
            seen[track] += 1
        return seen

    def predict(self, track: str, count: int, good: bool = True) -> None:
        instance = {c.name: c.fill for c in COLUMNS} if good else {"no_such_column": 1}
        body = {"signature_name": "serving_raw", "instances": [instance]}
        for _ in range(count):
            status, answered = self.request(
                "/v1/models/taxi:predict", body, {rollout_lib.TRACK_HEADER: track}
            )
            assert answered == track and (status == 200) == good, (status, answered)

    def seen_by_prometheus(self, track: str, errors: bool = False) -> float:
        status = ', status!="OK"' if errors else ""
        found = prometheus_server.safe_query(
            self.prometheus,
            f'sum(:tensorflow:serving:request_count{{track="{track}"{status}}})',
        )
        return float(found[0]["value"][1]) if found else 0.0

    def model_versions(self, track: Any) -> list[int]:
        model = model_config.read_model(track.model_config, "taxi")
        assert not model.version_labels
        return list(model.model_version_policy.specific.versions)


def _status_requests(fake: FakeServing) -> int:
    """Model status requests the server received (not Prometheus' scrapes)."""
    return sum(1 for _, path, _ in fake.received if path == "/v1/models/taxi")


def _load_later(
    fake: FakeServing, version: int, path: str, seconds: float = 1.5
) -> threading.Thread:
    """The track's TF Serving loads the version a while after its config changed."""

    def load() -> None:
        time.sleep(seconds)
        fake.load(version, path)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    nginx_front.nginx()
    prometheus_server.tool("prometheus")
    running = Setup(tmp_path_factory.mktemp("rollout"))
    yield running
    running.close()


@pytest.fixture(autouse=True)
def _front_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, f"{nginx_front.KEY_ID}:{nginx_front.KEY}")


def test_start_waits_for_the_canary_to_load_then_splits_the_traffic(setup, capsys):
    loading = _load_later(setup.canary, 2, setup.v2)
    assert setup.rollout("start", "2", "--weight", "10") == 0, capsys.readouterr().err
    loading.join()
    out = capsys.readouterr().out
    assert "waiting for the canary track to load version 2" in out
    assert "the canary track: version 2 of taxi: AVAILABLE" in out
    assert "started: stable version 1 takes 90%, canary version 2 10%" in out
    assert setup.model_versions(setup.stable_track) == [1]
    assert setup.model_versions(setup.canary_track) == [2]
    assert setup.registry.labels() == {"stable": 1, "canary": 2}
    assert setup.registry.served() == [1, 2]
    (event,) = setup.registry.deployments()
    assert event["action"] == "start" and (event["stable"], event["canary"]) == (1, 2)
    assert event["weight"] == 10
    time.sleep(1)  # the reload's new workers take over
    before = _status_requests(setup.canary), _status_requests(setup.stable)
    seen = setup.tracks(300)
    assert 10 <= seen["canary"] <= 60 and seen["canary"] + seen["stable"] == 300, seen
    # The header says which track answered, and that track's server saw the request.
    assert _status_requests(setup.canary) - before[0] == seen["canary"]
    assert _status_requests(setup.stable) - before[1] == seen["stable"]
    # Again: nothing changes, nothing is recorded.
    assert setup.rollout("start", "2", "--weight", "10") == 0
    assert "already so" in capsys.readouterr().out
    assert len(setup.registry.deployments()) == 1


def test_a_header_pins_a_track_and_a_client_id_keeps_one(setup):
    assert setup.tracks(20, {rollout_lib.TRACK_HEADER: "canary"}) == {"canary": 20}
    assert setup.tracks(20, {rollout_lib.TRACK_HEADER: "stable"}) == {"stable": 20}
    for client in ("alice", "bob", "carol"):
        assert len(setup.tracks(10, {rollout_lib.COHORT_HEADER: client})) == 1
    cohorts = Counter()
    for number in range(200):
        cohorts.update(setup.tracks(1, {rollout_lib.COHORT_HEADER: f"client-{number}"}))
    assert cohorts["canary"] >= 5 and cohorts["stable"] >= 120, cohorts


def test_grpc_is_split_and_pinned_too(setup):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from pipeline.serving.client import grpc_channel
    from pipeline.serving.security import Credentials

    credentials = Credentials.from_options(ca_cert=setup.front.ca_cert, api_key_env=KEY_ENV)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "taxi"
    request.model_spec.signature_name = "serving_raw"
    for column in COLUMNS:
        request.inputs[column.name].CopyFrom(tf.make_tensor_proto([column.fill]))
    with grpc_channel(setup.front.grpc_endpoint, credentials) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        answered: Counter[tuple[str | None, str, int]] = Counter()
        for pin in ["canary"] * 5 + [None] * 150:
            metadata = credentials.grpc_metadata()
            if pin:
                metadata.append((rollout_lib.TRACK_HEADER.lower(), pin))
            response, call = stub.Predict.with_call(request, timeout=10, metadata=metadata)
            headers = dict(call.initial_metadata())
            track = headers[rollout_lib.TRACK_HEADER.lower()]
            answered[(pin, track, response.model_spec.version.value)] += 1
    # Pinned calls reach the canary (version 2); of the 150 others about 10%
    # do (15 expected; fewer than 3 has a chance under 1e-4).
    assert answered[("canary", "canary", 2)] == 5, answered
    assert answered[(None, "canary", 2)] >= 3 and answered[(None, "stable", 1)] >= 110, answered
    assert {(track, version) for _, track, version in answered} <= {("canary", 2), ("stable", 1)}


def _wait_a_window(setup: Setup) -> None:
    """Until the current weight has served for the gate's whole window."""
    last = rollout_lib.event_time(setup.registry.deployments()[-1])
    age = (datetime.datetime.now(datetime.timezone.utc) - last).total_seconds()
    time.sleep(max(0.0, WINDOW_S + 1 - age))


def _traffic_seen(setup: Setup, sent: dict[tuple[str, bool], int]) -> None:
    """Sends predicts per (track, good) and waits until Prometheus has scraped them all."""
    before = {key: setup.seen_by_prometheus(key[0], errors=not key[1]) for key in sent}
    for (track, good), count in sent.items():
        setup.predict(track, count, good)
    for (track, good), count in sent.items():
        target = before[(track, good)] + count
        assert prometheus_server.wait_for(
            lambda t=track, g=good, n=target: setup.seen_by_prometheus(t, errors=not g) >= n, 30
        )


def test_promote_steps_up_while_prometheus_shows_the_canary_within_margins(setup, capsys):
    # A version's first call traces its function (tens of ms): TF Serving's
    # warmup requests take it; here one call each, before the window.
    setup.predict("stable", 1)
    setup.predict("canary", 1)
    _wait_a_window(setup)
    _traffic_seen(setup, {("stable", True): 40, ("canary", True): 30})
    events = len(setup.registry.deployments())
    assert setup.rollout("promote") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "promoted: stable version 1 takes 50%, canary version 2 50%" in out
    assert "canary " in out and "requests" in out  # the figures judged
    event = setup.registry.deployments()[-1]
    assert len(setup.registry.deployments()) == events + 1
    assert event["action"] == "promote" and event["weight"] == 50
    assert event["gate"]["passed"] is True and event["gate"]["canary"]["requests"] >= 20
    time.sleep(1)
    seen = setup.tracks(200)
    assert 60 <= seen["canary"] <= 140, seen


def test_promote_waits_a_window_steps_once_and_refuses_rising_errors(setup, capsys):
    events = setup.registry.deployments()
    routes = Path(setup.front.folder / "routes" / "routes.conf").read_text()
    # Just stepped: the window still holds the 10% traffic.
    assert setup.rollout("promote") == 1
    assert "less than the gate's window" in capsys.readouterr().err
    # A retried job that meant the step from 10% does nothing.
    assert setup.rollout("promote", "--from", "10") == 0
    assert "not at 10%" in capsys.readouterr().out
    _wait_a_window(setup)
    # The canary's errors are a new series: counted whole, not from its second sample.
    _traffic_seen(setup, {("stable", True): 20, ("canary", True): 10, ("canary", False): 20})
    assert setup.rollout("promote") == 1
    err = capsys.readouterr().err
    assert "canary version 2 stays at 50%" in err and "error rate: canary" in err, err
    assert setup.registry.deployments() == events
    assert (setup.front.folder / "routes" / "routes.conf").read_text() == routes


def test_abort_sends_everything_to_stable_and_the_history_says_what_served(setup, capsys):
    assert setup.rollout("abort", "--reason", "errors on the canary") == 0
    assert "aborted: canary version 2 takes no traffic" in capsys.readouterr().out
    time.sleep(1)
    assert setup.tracks(50) == {"stable": 50}
    assert setup.registry.labels() == {"stable": 1}
    event = setup.registry.deployments()[-1]
    assert (event["action"], event["aborted"], event["reason"]) == (
        "abort",
        2,
        "errors on the canary",
    )
    assert setup.rollout("abort") == 0
    assert "nothing to abort" in capsys.readouterr().out
    start = setup.registry.deployments()[0]["time"].replace("+00:00", "Z")
    assert main(["rollout", "status", "--at", start, *setup.args[:4]]) == 0
    assert "stable version 1 takes 90%, canary version 2 10%" in capsys.readouterr().out
    assert main(["rollout", "status", "-o", "json", *setup.args[:4]]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["stable"], status["canary"], status["weight"]) == (1, None, 0)
    assert [e["action"] for e in status["events"]] == ["start", "promote", "abort"]


def test_the_last_step_makes_the_canary_stable(setup, capsys):
    assert setup.rollout("start", "2", "--weight", "50") == 0, capsys.readouterr().err
    loading = _load_later(setup.stable, 2, setup.v2)
    assert setup.rollout("promote", "--no-gate") == 0, capsys.readouterr().err
    loading.join()
    out = capsys.readouterr().out
    assert "waiting for the stable track to load version 2" in out
    assert "promoted: version 2 is stable and takes all traffic" in out
    assert setup.model_versions(setup.stable_track) == [2]
    assert setup.registry.labels() == {"stable": 2}
    event = setup.registry.deployments()[-1]
    assert (event["stable"], event["canary"], event["weight"]) == (2, None, 0)
    assert (event["promoted"], event["replaced"], event["gate"]) == (2, 1, "skipped")
    time.sleep(1)
    assert setup.tracks(30) == {"stable": 30}


def test_refusals_name_the_reason_and_change_nothing(setup, capsys, tmp_path):
    events = setup.registry.deployments()
    assert setup.rollout("start", "2") == 2  # version 2 is stable now
    assert "version 2 is the stable version already" in capsys.readouterr().err
    assert setup.rollout("promote", "--no-gate") == 2
    assert "no canary to promote" in capsys.readouterr().err
    assert setup.rollout("start", "7") == 2
    assert "no version 7 of 'taxi'" in capsys.readouterr().err
    failing = ["--set", 'rollout.apply_command=["false"]']
    assert main(["rollout", "start", "1", *setup.args, *failing]) == 1
    assert "rollout.apply_command ['false'] exited 1" in capsys.readouterr().err
    assert setup.registry.deployments() == events


def test_a_failed_load_at_the_last_step_puts_the_stable_track_back(tmp_path):
    model = write_constant_model(str(tmp_path / "m"), 0.5, COLUMNS)
    registry = Registry(str(tmp_path / "registry"), "taxi")
    for _ in range(2):
        registry.publish(model, {})
    registry.set_label("stable", 1)
    shipped = RolloutConfig()
    tracks = {}
    for name, track in (("stable", shipped.stable), ("canary", shipped.canary)):
        path = tmp_path / f"{name}.config"
        shutil.copy(REPO_ROOT / track.model_config, path)
        tracks[name] = RolloutTrack(track.rest, track.grpc, str(path))
    config = RolloutConfig(
        stable=tracks["stable"],
        canary=tracks["canary"],
        routes_file=str(tmp_path / "routes.conf"),
    )

    def wait(track: str, version: int) -> None:
        if track == "stable":
            raise rollout_lib.RolloutFailed(f"version {version} failed to load: NOT_FOUND")

    rollout = rollout_lib.Rollout(registry, config, wait, say=lambda line: None)
    rollout.start("2", 50)
    events = registry.deployments()
    with pytest.raises(rollout_lib.RolloutFailed, match="back on version 1"):
        rollout.promote(None)
    stable = model_config.read_model(tracks["stable"].model_config, "taxi")
    assert list(stable.model_version_policy.specific.versions) == [1]
    assert registry.deployments() == events
    assert rollout_lib.current(registry) == rollout_lib.State(1, 2, 50)
    assert "50% canary" in (tmp_path / "routes.conf").read_text()
