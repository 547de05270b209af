"""The configuration's JSON Schema: generated from the config classes, packaged, and
in agreement with the loader on what it accepts and refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.errors import ConfigError
from pipeline import config as config_lib
from pipeline import config_schema
from tests.conftest import cli_in_fresh_process

REGENERATE = "python -m pipeline config --schema > pipeline/configs/config.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return config_schema.json_schema()


def _errors(schema: dict[str, Any], tree: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(tree)
    ]


def test_the_schema_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_packaged_file_is_the_generated_schema(schema: dict[str, Any]) -> None:
    packaged = json.loads(config_schema.SCHEMA_FILE.read_text())
    assert packaged == schema, f"the packaged schema is stale: run `{REGENERATE}`"


@pytest.mark.parametrize("path", [config_lib.DEFAULT_CONFIG, config_lib.KUBEFLOW_CONFIG])
def test_shipped_configs_point_at_the_schema_and_pass_it(
    path: Path, schema: dict[str, Any]
) -> None:
    first = path.read_text().splitlines()[0]
    assert first == f"{config_schema.HEADER_PREFIX}{config_schema.SCHEMA_FILE.name}"
    assert _errors(schema, yaml.safe_load(path.read_text())) == []


def _schema_keys(schema: dict[str, Any], node: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, prop in node.get("properties", {}).items():
        target = prop
        if "$ref" in prop:
            target = schema["$defs"][prop["$ref"].rsplit("/", 1)[-1]]
        if "properties" in target:
            keys |= _schema_keys(schema, target, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_every_key_the_loader_takes_is_in_the_schema_with_a_description(
    schema: dict[str, Any],
) -> None:
    assert _schema_keys(schema, schema) == set(config_lib.valid_keys()) | {
        config_lib.EXTENDS,
        *config_lib.ALIASES,
    }
    undocumented = [
        f"{name}.{field}"
        for name, node in [("PipelineConfig", schema), *schema["$defs"].items()]
        for field, prop in node.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []


def _taxi_tree() -> dict[str, Any]:
    return yaml.safe_load(config_lib.DEFAULT_CONFIG.read_text())


def _with(key: str, value: Any) -> dict[str, Any]:
    tree = _taxi_tree()
    node = tree
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return tree


# Each refused by the loader, naming the key, and by the schema, at the same key.
REFUSED = [
    ("trainer.train_stpes", 100, "trainer"),
    ("color", "blue", ""),
    ("model.features.trip_miles.bukets", 4, "model.features.trip_miles"),
    ("trainer.train_steps", "many", "trainer.train_steps"),
    ("trainer.train_steps", 2.5, "trainer.train_steps"),
    ("run.enable_cache", "yes", "run.enable_cache"),
    ("metadata.kind", "postgres", "metadata.kind"),
    ("trainer.launcher", "slurm", "trainer.launcher"),
    ("model.label.task", "regression", "model.label.task"),
    ("model.features.trip_miles.kind", "float", "model.features.trip_miles.kind"),
    ("beam.args", "--runner=FnApiRunner", "beam.args"),
    ("evaluator.metric", "f1", "evaluator.metric"),
]


@pytest.mark.parametrize(("key", "value", "where"), REFUSED)
def test_schema_and_loader_refuse_the_same_values(
    key: str, value: Any, where: str, schema: dict[str, Any], tmp_path: Path
) -> None:
    tree = _with(key, value)
    errors = _errors(schema, tree)
    assert errors and all(e.startswith(f"{where}:") for e in errors), errors
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match=key.rsplit(".", 1)[-1]):
        config_lib.load_config(path, base_dir=tmp_path)


# Each accepted by both: integers as floats (JSON round trips), ints where numbers go.
ACCEPTED = [
    ("trainer.train_steps", 300.0),
    ("trainer.learning_rate", 1),
    ("model.features.trip_miles.fill", 0),
    ("kubeflow.resources.trainer.cpu_request", 2),
    ("registry.model_name", "tips"),
    ("evaluator", {"min_auc": 0.7}),  # the old spelling the loader still takes
]


@pytest.mark.parametrize(("key", "value"), ACCEPTED)
def test_schema_and_loader_accept_the_same_values(
    key: str, value: Any, schema: dict[str, Any], tmp_path: Path
) -> None:
    tree = _with(key, value)
    assert _errors(schema, tree) == []
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(tree))
    config_lib.load_config(path, base_dir=config_lib.CONFIG_DIR)


def test_descriptions_come_from_the_class_docstrings(schema: dict[str, Any]) -> None:
    registry = schema["$defs"]["RegistryConfig"]
    assert registry["description"].startswith("Where blessed models are pushed")
    assert (
        "TF Serving reads at most 1000" in registry["properties"]["warmup_requests"]["description"]
    )
    assert schema["$defs"]["MetadataConfig"]["properties"]["kind"]["enum"] == [
        "sqlite",
        "mysql",
        "grpc",
    ]


def test_config_schema_command_prints_it_without_tensorflow() -> None:
    printed, last, _ = cli_in_fresh_process("config", "--schema")
    assert last == "LOADED [] EXIT 0"
    assert json.loads(printed) == config_schema.json_schema()
