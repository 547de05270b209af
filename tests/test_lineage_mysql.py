"""ML Metadata on a real MariaDB server: a pipeline run records there, lineage reads it back."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from ml_metadata import metadata_store

from components.mlmd import connection_config
from components.registry.store import Registry
from pipeline.__main__ import main
from pipeline.config import load_config, to_dict
from pipeline.runners import local
from tests.conftest import csv_columns, read_csv_rows, write_csv
from tests.mariadb import MariaDB, _free_port, start_mariadb

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATABASE = "mlmd_lineage"
PASSWORD_ENV = "MLMD_TEST_MYSQL_PASSWORD"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    yield from start_mariadb(tmp_path_factory.mktemp("mariadb"))


@pytest.fixture(scope="module")
def password() -> Iterator[None]:
    # Root has no password on the test server; the variable must exist all the same.
    os.environ[PASSWORD_ENV] = ""
    yield
    del os.environ[PASSWORD_ENV]


def _overrides(root: Path, server: MariaDB, port: int | None = None) -> list[str]:
    return [
        f"data.root={root / 'data'}",
        f"run.pipeline_root={root / 'pipeline_root'}",
        f"registry.uri={root / 'registry'}",
        f"metadata.sqlite_path={root / 'must-not-exist.sqlite'}",
        "metadata.kind=mysql",
        f"metadata.host={server.host}",
        f"metadata.port={port or server.port}",
        f"metadata.database={DATABASE}",
        f"metadata.user={server.user}",
        f"metadata.password_env={PASSWORD_ENV}",
        "trainer.train_steps=100",
        "trainer.eval_steps=5",
        "trainer.batch_size=64",
        "evaluator.min_auc=0.5",
    ]


@pytest.fixture(scope="module")
def mysql_run(mariadb: MariaDB, password, tmp_path_factory: pytest.TempPathFactory):
    mariadb.sql(f"CREATE DATABASE {DATABASE}")
    root = tmp_path_factory.mktemp("mysql_run")
    write_csv(root / "data" / "data.csv", read_csv_rows(limit=2000), csv_columns())
    overrides = _overrides(root, mariadb)
    config = load_config(None, overrides)
    return config, local.run(config), root


def _args(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def test_the_run_records_in_mariadb(mysql_run, mariadb):
    config, summary, root = mysql_run
    assert summary.blessed is True and summary.pushed_uri
    assert not (root / "must-not-exist.sqlite").exists()
    executions = int(mariadb.sql(f"SELECT COUNT(*) FROM {DATABASE}.Execution").strip())
    assert executions >= 10
    contexts = mariadb.sql(f"SELECT name FROM {DATABASE}.Context").split()
    assert config.run.pipeline_name in contexts


def test_lineage_reads_the_mariadb_store_back(mysql_run, mariadb, capsys):
    config, summary, root = mysql_run
    args = _args(_overrides(root, mariadb))
    assert main(["lineage", "model", "latest", "--json", *args]) == 0
    lineage = json.loads(capsys.readouterr().out)
    registry = Registry(config.registry.uri, config.registry.model_name)
    manifest = registry.manifest(1)
    assert lineage["model"]["id"] == manifest["mlmd"]["model_id"]
    assert lineage["examples"]["id"] == manifest["mlmd"]["examples_id"]
    assert lineage["examples"]["uri"] == manifest["source"]["examples_uri"]
    assert lineage["pushed"][0]["destination"] == summary.pushed_uri
    # Checked against the server directly, through ML Metadata's own client.
    store = metadata_store.MetadataStore(connection_config(to_dict(config)["metadata"]))
    (model,) = store.get_artifacts_by_id([lineage["model"]["id"]])
    assert model.uri == lineage["model"]["uri"]
    assert main(["lineage", "runs", *args]) == 0
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and "version 1" in out
    assert main(["lineage", "examples", str(lineage["examples"]["id"]), *args]) == 0
    assert f"Model {model.id}" in capsys.readouterr().out


def test_an_unreachable_server_is_named(mysql_run, mariadb, capsys):
    _, _, root = mysql_run
    closed = _free_port()
    assert main(["lineage", "runs", *_args(_overrides(root, mariadb, closed))]) == 1
    err = capsys.readouterr().err
    assert f"FAILED: ML Metadata (mysql 127.0.0.1:{closed}) unreachable" in err
