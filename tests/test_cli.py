"""The command line, short of running the pipeline (see test_e2e.py)."""

from __future__ import annotations

import subprocess
import sys

import yaml

from pipeline.__main__ import main
from tests.conftest import REPO_ROOT


def test_config_command_prints_resolved_yaml(capsys):
    assert main(["config", "--set", "trainer.train_steps=12"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["train_steps"] == 12
    assert printed["run"]["pipeline_root"].startswith("/")


def test_config_error_exits_2_with_the_valid_keys(capsys):
    assert main(["run", "--set", "trainer.trian_steps=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: --set trainer.trian_steps: unknown key")
    assert "trainer.train_steps" in err


def test_bad_value_exits_2(capsys):
    assert main(["run", "--set", "trainer.train_steps=many"]) == 2
    assert "trainer.train_steps: expected an integer, got 'many'" in capsys.readouterr().err


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("run", "schema", "config"):
        assert command in result.stdout


def test_unreadable_schema_exits_2_naming_the_file(capsys, tmp_path):
    missing = tmp_path / "nope.pbtxt"
    assert main(["run", "--set", f"data.schema_file={missing}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read the curated schema") and str(missing) in err


def test_grpc_store_is_refused_by_the_local_runner(capsys, tmp_path):
    code = main(
        ["run", "--set", "metadata.kind=grpc", "--set", f"run.pipeline_root={tmp_path / 'root'}"]
    )
    assert code == 2
    assert (
        "metadata.kind=grpc: the local runner writes ML Metadata directly"
        in capsys.readouterr().err
    )
