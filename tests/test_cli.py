"""The command line, short of running the pipeline (see test_e2e.py).

The groups' own commands are tested with what they drive: registry in
test_registry.py, predict and loadtest in test_serving_clients.py, lineage
in test_lineage.py, submit and schedule in test_kubeflow_client.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from pipeline import config as config_lib
from pipeline.cli import main
from pipeline.cli import run as run_cli
from pipeline.progress import NodeResult
from pipeline.summary import RunSummary
from tests.conftest import PENGUINS_CSV, REPO_ROOT

COMMANDS = (
    "run",
    "init",
    "config",
    "schema",
    "compile",
    "image",
    "submit",
    "schedule",
    "registry",
    "predict",
    "loadtest",
    "status",
    "lineage",
    "completion",
)
LOCAL = [
    ["run"],
    ["config"],
    ["schema", "infer"],
    ["registry", "list"],
    ["registry", "rollback"],
    ["lineage", "model"],
    ["predict"],
    ["loadtest"],
    ["status"],
]
KUBEFLOW = [["compile"], ["image"], ["submit"], ["schedule"]]
# What the multiclass config below changes in the taxi default.
MULTICLASS = [
    "model.label.derive=",
    "model.label.inputs=[]",
    "model.label.name=",
    "model.label.column=species",
    "model.label.task=multiclass",
    "evaluator.metric=accuracy",
]


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_the_module_entry_point_is_the_package_main():
    from pipeline import __main__

    assert __main__.main is main


def test_help_lists_every_command_and_imports_no_tensorflow():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listed = {
        line.split()[0]: " ".join(line.split()[1:])
        for line in result.stdout.splitlines()
        if line.startswith("    ") and line.split()[0] in COMMANDS
    }
    assert sorted(listed) == sorted(COMMANDS)
    assert all(listed.values()), f"a command without a description: {listed}"
    assert "examples:" in result.stdout
    # -X importtime writes one `import time: self | cumulative | module` line per module.
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "pipeline.cli.cli" in imported, "the importtime output was not what was expected"
    heavy = sorted(m for m in imported if m.split(".")[0] in ("tensorflow", "tfx", "ml_metadata"))
    assert heavy == []


@pytest.mark.parametrize("command", LOCAL, ids=" ".join)
def test_local_commands_default_to_the_local_config(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one line per option: no path broken in two
    out = _help(capsys, *command)
    assert f"default: $PIPELINE_CONFIG if set, else {config_lib.DEFAULT_CONFIG})" in out


@pytest.mark.parametrize("command", KUBEFLOW, ids=" ".join)
def test_kubeflow_commands_default_to_the_kubeflow_config(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    out = _help(capsys, *command)
    assert f"default: $PIPELINE_CONFIG if set, else {config_lib.KUBEFLOW_CONFIG})" in out


def test_the_defaults_are_the_files_read(capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_CONFIG", raising=False)
    assert main(["image", "--set", "kubeflow.image_tag=v1"]) == 0
    kubeflow_image = config_lib.load_config(config_lib.KUBEFLOW_CONFIG).kubeflow.image
    assert capsys.readouterr().out == f"{kubeflow_image}:v1\n"
    assert main(["config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == config_lib.to_dict(config_lib.load_config(config_lib.DEFAULT_CONFIG))


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_list_every_command(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert all(command in script for command in COMMANDS)
    # Options of nested commands too: what the user would otherwise look up.
    assert "--model-config" in script and "--batch-size" in script
    if shell == "bash":
        checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert checked.returncode == 0, checked.stderr
        assert "-F _shtab_mlops mlops" in script


def test_version_prints_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert metadata.version("mlops-pipeline") in capsys.readouterr().out


def test_pipeline_config_is_read_when_no_config_is_given(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        f"extends: {config_lib.KUBEFLOW_CONFIG}\n"
        "run: {pipeline_name: from-env}\n"
        "kubeflow: {image_tag: v9}\n"
    )
    monkeypatch.setenv("PIPELINE_CONFIG", str(mine))
    assert main(["config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["run"]["pipeline_name"] == "from-env"
    assert main(["image"]) == 0
    assert capsys.readouterr().out.strip().endswith(":v9")
    # --config wins over the variable.
    assert main(["config", "--config", str(config_lib.DEFAULT_CONFIG)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["run"]["pipeline_name"] == "taxi"


def test_config_command_prints_resolved_yaml(capsys):
    assert main(["config", "--set", "trainer.train_steps=12"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["train_steps"] == 12
    assert printed["run"]["pipeline_root"].startswith("/")


def test_config_error_exits_2_with_the_valid_keys(capsys):
    assert main(["run", "--set", "trainer.trian_steps=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set trainer.trian_steps: unknown key")
    assert "trainer.train_steps" in err


def test_bad_value_exits_2(capsys):
    assert main(["run", "--set", "trainer.train_steps=many"]) == 2
    assert "trainer.train_steps: expected an integer, got 'many'" in capsys.readouterr().err


def test_a_user_error_is_one_line_and_exits_2(capsys):
    # Refused before anything connects to Kubeflow.
    assert main(["schedule", "--name", "nightly"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: --cron is required to create or update a recurring run\n"
    assert captured.out == ""


@pytest.mark.parametrize("error", [RuntimeError, ValueError, FileNotFoundError])
def test_an_unexpected_error_keeps_its_traceback(error, monkeypatch, capsys):
    def broken(_):  # type: ignore[no-untyped-def]
        raise error("a bug, not the user's mistake")

    monkeypatch.setattr(run_cli, "_show_config", broken)
    with pytest.raises(error, match="a bug") as raised:
        main(["config"])
    assert raised.traceback[-1].name == "broken"
    assert capsys.readouterr().err == ""


def test_unreadable_schema_exits_2_naming_the_file(capsys, tmp_path):
    missing = tmp_path / "nope.pbtxt"
    assert main(["run", "--set", f"data.schema_file={missing}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read the curated schema data.schema_file={missing}")
    assert len(err.splitlines()) == 1


def test_preflight_runs_before_the_log_file_and_the_runner(capsys, tmp_path):
    root = tmp_path / "root"
    code = main(
        [
            "run",
            "--set",
            f"data.root={tmp_path / 'no-data'}",
            "--set",
            f"run.pipeline_root={root}",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: data.root={tmp_path / 'no-data'} does not")
    assert not root.exists()


def test_grpc_store_is_refused_by_the_local_runner(capsys, tmp_path):
    code = main(
        ["run", "--set", "metadata.kind=grpc", "--set", f"run.pipeline_root={tmp_path / 'root'}"]
    )
    assert code == 2
    assert (
        "metadata.kind=grpc: the local runner writes ML Metadata directly"
        in capsys.readouterr().err
    )


def _nodes(pusher_state: str = "COMPLETE") -> list[NodeResult]:
    return [NodeResult("trainer", "COMPLETE", 3.0, 7), NodeResult("pusher", pusher_state, 1.0, 9)]


def test_binary_summary_names_the_label_and_its_metrics(capsys):
    config = config_lib.load_config()
    summary = RunSummary(
        nodes=_nodes("CACHED"),
        metrics={
            "auc": 0.91,
            "binary_accuracy": 0.85,
            "precision": 0.7,
            "recall": 0.6,
            "example_count": 3000.0,
        },
        baseline_metrics={"auc": 0.9},
        blessed=True,
        reasons=["auc 0.9100 >= 0.8000 (evaluator.min_value)"],
        baseline_model_id=4,
        pushed_uri="/registry/taxi/2",
    )
    run_cli._print_summary(summary, config)
    assert capsys.readouterr().out.splitlines() == [
        "eval metrics (big_tipper, 3000 eval examples): auc 0.9100, binary_accuracy 0.8500, "
        "precision 0.7000, recall 0.6000",
        "baseline (model 4): auc 0.9000",
        "BLESSED: auc 0.9100 >= 0.8000 (evaluator.min_value)",
        "pushed: /registry/taxi/2 (by an earlier run; this one reused it from cache)",
    ]


def test_multiclass_summary_prints_accuracy_and_the_recall_of_each_class(capsys):
    config = config_lib.load_config(None, MULTICLASS)
    summary = RunSummary(
        nodes=_nodes(),
        metrics={"accuracy": 0.97, "example_count": 68.0},
        blessed=False,
        reasons=["accuracy 0.6000 is below the floor 0.7200"],
        class_recall={"Adelie": 0.981, "Chinstrap": 0.9, "Gentoo": 1.0},
    )
    run_cli._print_summary(summary, config)
    assert capsys.readouterr().out.splitlines() == [
        "eval metrics (species, 68 eval examples): accuracy 0.9700",
        "recall by class: Adelie 0.98, Chinstrap 0.90, Gentoo 1.00",
        "NOT BLESSED: accuracy 0.6000 is below the floor 0.7200",
        "pushed: nothing (the model was not blessed)",
    ]


@pytest.fixture
def penguins(tmp_path: Path) -> Path:
    data = tmp_path / "penguins"
    data.mkdir()
    shutil.copy(PENGUINS_CSV, data / "penguins.csv")
    return data


def test_init_prints_its_decisions_and_the_next_command(penguins, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = str(tmp_path / "out" / "penguins.yaml")
    assert main(["init", "--data", str(penguins), "--label", "species", "--output", output]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("344 rows in 1 CSV file of ")
    assert (
        "label 'species': multiclass, 3 classes (Adelie 152, Gentoo 124, Chinstrap 68)"
        in (lines[0])
    )
    assert lines[1].split() == ["column", "kind", "parameters", "/", "reason"]
    table = {line.split()[0]: line.split()[1:] for line in lines[2:9]}
    assert table["island"] == ["categorical", "vocab_size=3,", "oov_buckets=1"]
    assert table["bill_length_mm"][0] == "numeric"
    assert lines[-3:] == [
        f"wrote {output}",
        f"wrote {tmp_path / 'out' / 'schema.pbtxt'}",
        f"next: python -m pipeline run --config {output}",
    ]
    # The config it wrote loads, and the check `run` starts with passes.
    from pipeline import preflight

    preflight.check(config_lib.load_config(output))


def test_init_errors_are_one_line_and_exit_2(penguins, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--data", str(penguins), "--label", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: label 'nope' is not a column") and len(err.splitlines()) == 1
    (tmp_path / "pipeline.yaml").write_text("")
    assert main(["init", "--data", str(penguins), "--label", "species"]) == 2
    assert capsys.readouterr().err.endswith("exists; pass --force to overwrite it\n")
