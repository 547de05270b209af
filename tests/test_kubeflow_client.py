"""`submit` and `schedule` against a local fake of the KFP v2beta1 REST API.

The server (tests/fake_kfp_server.py) is a test double: no KFP API server or
Kubernetes runs here. What is real: kfp.Client and kfp_server_api building
the requests, our CLI, the compiled package the fake parses strictly, and
the `kfp` command line itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.cli import main
from pipeline.kubeflow import client as kfp_client
from pipeline.kubeflow.client import version_name
from pipeline.kubeflow.cron import CronError, check_cron
from tests.fake_kfp_server import PREFIX, FakeKfp

IMAGE = "registry.example/taxi:abc123def456"
KUBEFLOW_ARGS = ["--image", IMAGE]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    assert main(["compile", *KUBEFLOW_ARGS, "--output", str(path)]) == 0
    return path


@pytest.fixture
def kfp(monkeypatch: pytest.MonkeyPatch):
    server = FakeKfp()
    monkeypatch.setenv("KFP_ENDPOINT", server.url)
    monkeypatch.setenv("KFP_NAMESPACE", "team-a")
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    yield server
    server.close()


def _spec_proto(spec: dict) -> pipeline_spec_pb2.PipelineSpec:
    return json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())


def _submit(package: Path, *extra: str) -> int:
    return main(["submit", *KUBEFLOW_ARGS, "--package", str(package), "--poll", "0", *extra])


def _schedule(package: Path, *extra: str) -> int:
    return main(["schedule", *KUBEFLOW_ARGS, "--package", str(package), *extra])


def test_submit_uploads_a_version_and_starts_a_typed_run(kfp, package):
    assert _submit(package, "--run-name", "r1", "--set", "trainer.train_steps=250") == 0

    [created] = kfp.requests("POST", "/pipelines")
    assert created.body["display_name"] == "taxi"
    [upload] = kfp.requests("POST", "/pipelines/upload_version")
    assert upload.query["name"].startswith("abc123def456-")
    assert yaml.safe_load(upload.body["uploadfile"]) == yaml.safe_load(package.read_text())
    [experiment] = kfp.requests("POST", "/experiments")
    assert experiment.body == {"display_name": "taxi", "namespace": "team-a"}

    [run] = kfp.requests("POST", "/runs")
    assert run.headers["authorization"] == "Bearer secret-token"
    body = run.body
    assert body["display_name"] == "r1"
    version = kfp.state.versions[body["pipeline_version_reference"]["pipeline_version_id"]]
    assert version["display_name"] == upload.query["name"]
    config = body["runtime_config"]
    assert config["pipeline_root"] == "gs://YOUR_BUCKET/taxi/pipeline_root"
    assert config["parameters"] == {
        "data_root": "gs://YOUR_BUCKET/taxi/data",
        "train_steps": 250,
        "eval_steps": 100,
        "min_value": 0.8,
        "max_drop": 0.01,
    }
    assert isinstance(config["parameters"]["train_steps"], int)
    assert isinstance(config["parameters"]["min_value"], float)


def test_second_submit_adds_a_version_to_the_same_pipeline_and_experiment(kfp, package):
    assert _submit(package, "--run-name", "r1") == 0
    assert _submit(package, "--run-name", "r2", "--experiment", "taxi") == 0
    assert len(kfp.state.pipelines) == 1 and len(kfp.state.experiments) == 1
    assert len(kfp.state.versions) == 2 and len(kfp.state.runs) == 2


def test_wait_succeeds_when_the_run_does(kfp, package, capsys):
    assert _submit(package, "--run-name", "ok", "--wait") == 0
    out = capsys.readouterr().out
    assert "RUNNING" in out and "SUCCEEDED" in out


def test_submit_as_json_puts_the_progress_on_stderr(kfp, package, capsys):
    assert _submit(package, "--run-name", "js", "--wait", "-o", "json") == 0
    captured = capsys.readouterr()
    assert "RUNNING" in captured.err and "SUCCEEDED" in captured.err
    answer = json.loads(captured.out)
    [run_id] = kfp.state.runs
    assert answer["format"] == 1 and answer["run_id"] == run_id and answer["run_name"] == "js"
    assert answer["state"] == "SUCCEEDED" and answer["experiment"] == "taxi"
    assert answer["version_id"] in kfp.state.versions and answer["parameters"]["eval_steps"] == 100
    assert answer["url"].endswith(run_id)


def test_wait_fails_with_the_failed_task_name(kfp, package, capsys):
    kfp.state.outcomes["bad"] = ("FAILED", "trainer", "OOMKilled")
    assert _submit(package, "--run-name", "bad", "--wait") == 1
    err = capsys.readouterr().err
    assert "FAILED at task trainer (OOMKilled)" in err


def test_in_cluster_service_account_token(kfp, package, monkeypatch, tmp_path):
    monkeypatch.delenv("KFP_TOKEN")
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    assert _submit(package, "--run-name", "sa") == 0
    [run] = kfp.requests("POST", "/runs")
    assert run.headers["authorization"] == "Bearer sa-token"


def test_wait_rereads_a_service_account_token_the_kubelet_rotates(
    kfp, package, monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("KFP_TOKEN")
    monkeypatch.setattr(kfp_client, "UNAUTHORIZED_RETRY_S", 0.0)
    token = tmp_path / "token"
    token.write_text("first\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    kfp.tokens = {"first"}
    polls = []

    def rotate(request):
        # While the run is followed, the kubelet rotates the token: from the
        # second poll on the server takes only the new one, and the file
        # changes just after that poll was sent with the old one (a 401).
        if request.method == "GET" and request.path.startswith(f"{PREFIX}/runs/"):
            polls.append(request.headers.get("authorization"))
            if len(polls) == 2:
                kfp.tokens = {"second"}
                token.write_text("second\n")

    kfp.before = rotate
    assert _submit(package, "--run-name", "long", "--wait") == 0, capsys.readouterr().err
    assert polls == ["Bearer first", "Bearer first", "Bearer second"]
    assert "SUCCEEDED" in capsys.readouterr().out


def test_a_second_401_fails_naming_the_server_message(kfp, package, monkeypatch, capsys):
    monkeypatch.setattr(kfp_client, "UNAUTHORIZED_RETRY_S", 0.0)

    def revoke(request):
        if request.method == "GET" and request.path.startswith(f"{PREFIX}/runs/"):
            kfp.tokens = set()

    kfp.before = revoke
    assert _submit(package, "--run-name", "revoked", "--wait") == 1
    err = capsys.readouterr().err
    assert "FAILED: KFP API 401" in err and "Failed to authenticate token review" in err
    assert len([r for r in kfp.state.requests if r.path.startswith(f"{PREFIX}/runs/")]) == 2


def test_kfs_own_endpoint_variable_is_read(kfp, package, monkeypatch):
    monkeypatch.delenv("KFP_ENDPOINT")
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", kfp.url)
    assert _submit(package, "--run-name", "kf") == 0
    assert len(kfp.state.runs) == 1


def test_submit_without_an_endpoint_is_a_config_error(monkeypatch, package, capsys):
    monkeypatch.delenv("KFP_ENDPOINT", raising=False)
    assert _submit(package) == 2
    assert "KFP_ENDPOINT" in capsys.readouterr().err


def test_a_package_that_is_not_there_is_a_user_error(kfp, tmp_path, capsys):
    assert _submit(tmp_path / "absent.yaml") == 2
    err = capsys.readouterr().err
    assert err == f"error: --package {tmp_path / 'absent.yaml'}: no such file\n"
    assert not kfp.requests("POST", "/pipelines/upload_version")


def test_submit_compiles_when_no_package_is_given(kfp):
    assert main(["submit", *KUBEFLOW_ARGS, "--run-name", "fresh"]) == 0
    [upload] = kfp.requests("POST", "/pipelines/upload_version")
    spec = yaml.safe_load(upload.body["uploadfile"])
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE}


def test_schedule_creates_a_recurring_run(kfp, package, capsys):
    assert _schedule(package, "--cron", "0 0 2 * * *", "--name", "nightly") == 0
    [create] = kfp.requests("POST", "/recurringruns")
    body = create.body
    assert body["display_name"] == "nightly"
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert body["mode"] == "ENABLE" and int(body["max_concurrency"]) == 1
    assert body["no_catchup"] is True
    assert body["runtime_config"]["pipeline_root"] == "gs://YOUR_BUCKET/taxi/pipeline_root"
    assert body["runtime_config"]["parameters"]["train_steps"] == 1000
    assert "created" in capsys.readouterr().out


def test_schedule_is_idempotent_and_updates_in_place(kfp, package, capsys):
    assert _schedule(package, "--cron", "0 0 2 * * *", "--name", "nightly") == 0
    assert _schedule(package, "--cron", "0 0 2 * * *", "--name", "nightly") == 0
    assert "unchanged" in capsys.readouterr().out
    assert len(kfp.requests("POST", "/recurringruns")) == 1
    assert len(kfp.requests("POST", "/pipelines/upload_version")) == 1

    assert _schedule(package, "--cron", "0 30 3 * * *", "--name", "nightly") == 0
    assert "replaced" in capsys.readouterr().out
    [remaining] = kfp.state.recurring.values()
    assert remaining["display_name"] == "nightly"
    assert remaining["trigger"]["cron_schedule"]["cron"] == "0 30 3 * * *"
    assert len(kfp.state.versions) == 2, "a changed schedule runs a freshly uploaded version"


def test_schedule_disable_and_delete(kfp, package, capsys):
    assert _schedule(package, "--cron", "0 0 2 * * *", "--name", "nightly") == 0
    [rid] = kfp.state.recurring
    assert _schedule(package, "--name", "nightly", "--disable") == 0
    assert kfp.requests("POST", f"/recurringruns/{rid}:disable")
    assert kfp.state.recurring[rid]["status"] == "DISABLED"
    assert _schedule(package, "--name", "nightly", "--delete") == 0
    assert not kfp.state.recurring
    assert _schedule(package, "--name", "nightly", "--delete") == 0
    assert "absent" in capsys.readouterr().out
    assert _schedule(package, "--name", "nightly", "--disable") == 1


def test_schedule_enable_turns_a_disabled_one_back_on(kfp, package, capsys):
    assert _schedule(package, "--cron", "0 0 2 * * *", "--name", "nightly") == 0
    [rid] = kfp.state.recurring
    assert _schedule(package, "--name", "nightly", "--disable") == 0
    assert _schedule(package, "--name", "nightly", "--enable") == 0
    assert kfp.requests("POST", f"/recurringruns/{rid}:enable")
    assert kfp.state.recurring[rid]["status"] == "ENABLED"
    assert f"enabled ({rid})" in capsys.readouterr().out
    assert _schedule(package, "--name", "other", "--enable") == 1
    assert "no recurring run named 'other'" in capsys.readouterr().err


def test_schedule_concurrency_and_catchup_are_part_of_the_schedule(kfp, package, capsys):
    assert _schedule(package, "--cron", "0 0 2 * * *", "--name", "nightly") == 0
    nightly = ["--cron", "0 0 2 * * *", "--name", "nightly"]
    assert _schedule(package, *nightly, "--max-concurrency", "3", "--catchup") == 0
    assert "replaced" in capsys.readouterr().out
    [remaining] = kfp.state.recurring.values()
    assert int(remaining["max_concurrency"]) == 3 and remaining["no_catchup"] is False
    assert _schedule(package, *nightly, "--max-concurrency", "3", "--catchup") == 0
    assert "unchanged" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        _schedule(package, *nightly, "--max-concurrency", "0")
    assert exit_.value.code == 2
    assert "expected an integer of at least 1, found 0" in capsys.readouterr().err


def test_a_switch_with_trigger_settings_is_refused(kfp, package, capsys):
    assert _schedule(package, "--name", "nightly", "--disable", "--cron", "0 0 2 * * *") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --disable acts on the recurring run as it is; --cron would")
    assert not kfp.state.requests


def test_submit_as_json_prints_the_failed_state_and_exits_1(kfp, package, capsys):
    kfp.state.outcomes["bad-json"] = ("FAILED", "trainer", "OOMKilled\nafter 3 restarts")
    assert _submit(package, "--run-name", "bad-json", "--wait", "-o", "json") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["state"] == "FAILED"
    failed = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "FAILED at task trainer (OOMKilled after 3 restarts)" in failed[0]


def test_five_field_cron_shows_the_six_field_equivalent(kfp, package, capsys):
    assert _schedule(package, "--cron", "0 2 * * *") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --cron '0 2 * * *' has 5 fields") and "'0 0 2 * * *'" in err
    assert not kfp.state.requests


@pytest.mark.parametrize("bad", ["* * * *", "0 0 2 * * * *", "0 0 2 * * $"])
def test_other_bad_crons(bad):
    with pytest.raises(CronError):
        check_cron(bad)


def test_version_names_sort_by_time():
    from datetime import datetime, timezone

    first = version_name("abc", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert first == "abc-20260102T030405Z"
    assert first < version_name("abc", datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc))


def test_plain_kfp_cli_submits_the_compiled_file(kfp, package):
    # What the CI workflow runs: kfp 2.x `run submit` (alias of `run create`).
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "kfp"),
            "--endpoint",
            kfp.url,
            "run",
            "submit",
            "-e",
            "taxi-ci",
            "-r",
            "ci-run",
            "-f",
            str(package),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = kfp.requests("POST", "/runs")
    assert run.body["display_name"] == "ci-run"
    assert run.body["pipeline_spec"]["pipelineInfo"]["name"] == "taxi"
    # Equal as protos: kfp's own round trip drops proto3 defaults
    # (`enableCache: false` becomes `{}`, which KFP reads the same way).
    assert _spec_proto(run.body["pipeline_spec"]) == _spec_proto(
        yaml.safe_load(package.read_text())
    )
    [experiment] = kfp.state.experiments.values()
    assert experiment["display_name"] == "taxi-ci"


WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "pipeline.yml"


def _workflow_submit_step() -> str:
    """The CI workflow's submit step, as bash would run it on the runner."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    [step] = [
        s for s in workflow["jobs"]["deploy"]["steps"] if "pipeline submit" in s.get("run", "")
    ]
    script = step["run"].replace("${{ steps.image.outputs.ref }}", IMAGE)
    return script.replace(".venv/bin/python", sys.executable)


@pytest.mark.parametrize("outcome", ["SUCCEEDED", "FAILED"])
def test_the_ci_workflows_submit_step_fails_when_the_run_fails(kfp, package, tmp_path, outcome):
    kfp.state.running_polls = 0
    run_name = "ci-abcdef123456-1"
    if outcome == "FAILED":
        kfp.state.outcomes[run_name] = ("FAILED", "trainer", "OOMKilled")
    (tmp_path / "pipeline.yaml").write_bytes(package.read_bytes())
    env = {
        **os.environ,
        "GITHUB_SHA": "abcdef1234567890",
        "GITHUB_RUN_ATTEMPT": "1",
        "IMAGE_REPOSITORY": IMAGE.rsplit(":", 1)[0],
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _workflow_submit_step()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    [run] = kfp.requests("POST", "/runs")
    assert run.body["display_name"] == run_name
    if outcome == "SUCCEEDED":
        assert done.returncode == 0, done.stderr
        submitted = json.loads((tmp_path / "submitted.json").read_text())
        assert submitted["state"] == "SUCCEEDED" and submitted["experiment"] == "taxi-ci"
    else:
        assert done.returncode == 1, done.stderr
        assert "FAILED at task trainer (OOMKilled)" in done.stderr


def test_kfps_own_watch_exits_0_on_a_failed_run(kfp, package):
    # Why the workflow follows the run with `submit --wait`: kfp 2.5's
    # `run create --watch` reports the final state and exits 0 whatever it is.
    kfp.state.running_polls = 0
    kfp.state.outcomes["watched"] = ("FAILED", "trainer", "OOMKilled")
    command = [str(Path(sys.executable).parent / "kfp"), "--endpoint", kfp.url, "run", "create"]
    done = subprocess.run(
        [*command, "-e", "taxi-ci", "-r", "watched", "-f", str(package), "--watch"],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Run is finished with state FAILED" in done.stdout
    assert done.returncode == 0


def test_api_errors_are_one_line_and_exit_1(kfp, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelineInfo: {name: taxi}\nnotAField: 1\n")
    assert _submit(bad, "--run-name", "x") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("FAILED: KFP API 400") and "invalid pipeline spec" in err[0]
    assert not kfp.requests("POST", "/runs")


def test_disable_and_delete_need_no_package(kfp, capsys):
    # No --package: only creating or updating compiles and uploads.
    assert main(["schedule", *KUBEFLOW_ARGS, "--name", "nightly", "--delete"]) == 0
    out = capsys.readouterr().out
    assert "compiled" not in out and "absent" in out
    assert not kfp.requests("POST", "/pipelines/upload_version")
