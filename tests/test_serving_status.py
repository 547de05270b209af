"""`status`: whether TF Serving loaded a version, once or with --wait, over REST and gRPC.

Against the TF Serving double (tests/fake_serving.py), whose model-status
answers follow TF Serving's get_model_status_impl.cc: states, health,
NOT_FOUND for a version it has not seen. The registry is a real one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.registry.store import Registry
from pipeline.__main__ import main
from pipeline.serving import status as status_lib
from pipeline.serving.columns import columns_for
from tests.conftest import cli_in_fresh_process, taxi_config
from tests.fake_serving import FakeServing, write_constant_model

COLUMNS = columns_for(taxi_config())
PROTOCOLS = ("rest", "grpc")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    root = tmp_path_factory.mktemp("status")
    return {v: write_constant_model(str(root / f"m{v}"), 0.1 * v, COLUMNS) for v in (1, 2, 3)}


@pytest.fixture
def serving(models: dict[int, str]) -> Iterator[FakeServing]:
    with FakeServing("taxi", {1: models[1], 2: models[2]}) as fake:
        yield fake


@pytest.fixture
def registry(tmp_path: Path, models: dict[int, str]) -> Registry:
    registry = Registry(str(tmp_path / "registry"), "taxi")
    for number in (1, 2, 3):
        registry.publish(models[number], {"pipeline": {"name": "taxi", "run_id": f"r{number}"}})
    registry.set_label("stable", 2)
    return registry


def _endpoint(fake: FakeServing, protocol: str) -> list[str]:
    if protocol == "grpc":
        return ["--endpoint", fake.grpc_target, "--grpc"]
    return ["--endpoint", fake.rest_url]


def _status(fake: FakeServing, protocol: str, registry: Registry | None, *argv: str) -> int:
    where = ["--set", f"registry.uri={registry.uri}"] if registry else []
    return main(["status", *_endpoint(fake, protocol), *where, *argv])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_available_version_exits_0_and_lists_what_the_server_knows(serving, protocol, capsys):
    assert _status(serving, protocol, None, "--version", "2") == 0
    out = capsys.readouterr().out
    assert "version    2  AVAILABLE" in out
    assert out.strip().endswith("version 2 of taxi: AVAILABLE")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_json_names_the_version_and_every_state(serving, protocol, capsys):
    serving.set_state(3, "LOADING")
    assert _status(serving, protocol, None, "--version", "3", "-o", "json") == 1
    result = json.loads(capsys.readouterr().out)
    assert result["available"] is False and result["version"] == 3
    assert result["versions"] == [
        {"version": 3, "state": "LOADING", "error_code": "OK", "error_message": ""}
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wait_follows_a_version_from_unseen_through_loading_to_available(
    serving, models, protocol, capsys
):
    # Unseen (NOT_FOUND) at first, as when the server has not polled its base
    # path yet. The clock starts at the client's first request: a busy machine
    # can take longer than the whole progression to start the client.
    before = len(serving.received)

    def progress() -> None:
        deadline = time.monotonic() + 60
        while len(serving.received) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        serving.set_state(3, "START")
        time.sleep(0.4)
        serving.set_state(3, "LOADING")
        time.sleep(0.4)
        serving.load(3, models[3])

    threading.Thread(target=progress, daemon=True).start()
    code = _status(
        serving, protocol, None, "--version", "3", "--wait", "--interval", "0.1", "-o", "json"
    )
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 0, result
    assert result["available"] is True and result["waited_s"] >= 0.8
    assert ", waiting" in captured.err  # each new state, beside the JSON
    assert [(v["version"], v["state"]) for v in result["versions"]] == [(3, "AVAILABLE")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_failed_load_exits_1_with_the_servers_message(serving, protocol, capsys):
    message = "Op type not registered 'SentencepieceOp' in binary running on serving-0"
    serving.fail_load(3, "NOT_FOUND", message)
    assert _status(serving, protocol, None, "--version", "3", "--wait", "--timeout", "30") == 1
    captured = capsys.readouterr()
    assert message in captured.err and "failed to load" in captured.err
    assert "keeps serving" in captured.err
    # ... and it did not wait: a failed load is final.
    assert "timed out" not in captured.err
    # The server goes on with version 2, as TF Serving does.
    listed = status_lib.rest_status(serving.rest_url, "taxi")
    assert [(v.version, v.state, v.failed) for v in listed] == [
        (3, "END", True),
        (2, "AVAILABLE", False),
        (1, "AVAILABLE", False),
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wait_times_out_naming_the_last_state(serving, protocol, capsys):
    serving.set_state(3, "LOADING")
    code = _status(
        serving,
        protocol,
        None,
        "--version",
        "3",
        "--wait",
        "--timeout",
        "0.5",
        "--interval",
        "0.1",
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "timed out after 0.5s" in err and "LOADING" in err


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unseen_version_without_wait_is_not_found(serving, protocol, capsys):
    assert _status(serving, protocol, None, "--version", "9") == 1
    assert "Could not find version 9 of model taxi" in capsys.readouterr().err


def test_by_default_the_registrys_newest_version_is_asked_for(serving, registry, capsys):
    # The registry holds 3, the server only 1 and 2: the push is not loaded yet.
    assert _status(serving, "rest", registry) == 1
    captured = capsys.readouterr()
    assert "taxi version 3 (the registry's newest version" in captured.out
    assert "Could not find version 3" in captured.err


def test_a_label_is_looked_up_in_the_registry(serving, registry, capsys):
    assert _status(serving, "grpc", registry, "--label", "stable") == 0
    assert "version 2 (label 'stable'" in capsys.readouterr().out
    assert _status(serving, "rest", registry, "--label", "canary") == 2
    assert "labels: stable=2" in capsys.readouterr().err


def test_an_unreachable_server_fails_and_wait_keeps_trying_until_the_timeout(capsys):
    argv = ["status", "--endpoint", "http://127.0.0.1:9", "--version", "1"]
    assert main(argv) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
    assert main([*argv, "--wait", "--timeout", "0.3", "--interval", "0.1"]) == 1
    assert "timed out after 0.3s" in capsys.readouterr().err


def test_wait_stops_at_an_unload_by_the_version_policy():
    answers = iter(
        [
            [status_lib.VersionStatus(4, "LOADING")],
            [status_lib.VersionStatus(4, "END")],
        ]
    )
    now = [0.0]
    outcome = status_lib.wait_until_settled(
        lambda _: next(answers),
        "taxi",
        4,
        timeout_s=60,
        interval_s=5,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert not outcome.ok and "unloaded by the server's version policy" in outcome.message
    assert outcome.waited_s == 5


def test_rest_status_imports_no_tensorflow(serving):
    printed, loaded, _ = cli_in_fresh_process(
        "status", "--endpoint", serving.rest_url, "--version", "1"
    )
    assert loaded == "LOADED [] EXIT 0", loaded
    assert "AVAILABLE" in printed


def test_another_model_needs_an_explicit_version(serving, registry, capsys):
    assert _status(serving, "rest", registry, "--model", "other") == 2
    assert "--model other: the registry names versions of 'taxi'" in capsys.readouterr().err
