"""PipelineConfig: loading, overrides and errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.config import (
    DEFAULT_CONFIG,
    ConfigError,
    PipelineConfig,
    load_config,
    parse_override,
    to_dict,
    valid_keys,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_default_config_loads_with_absolute_paths(tmp_path):
    config = load_config(base_dir=tmp_path)
    assert isinstance(config, PipelineConfig)
    assert config.run.pipeline_root == str(tmp_path / "build" / "pipeline_root")
    assert config.metadata.sqlite_path == str(tmp_path / "build" / "metadata.sqlite")
    assert config.registry.uri == str(tmp_path / "build" / "registry")
    assert os.path.isfile(os.path.join(config.data.root, "data.csv"))
    assert os.path.isfile(config.data.schema_file)
    assert config.serving_model_dir == str(tmp_path / "build" / "registry" / "taxi")


def test_default_yaml_sets_every_key():
    import yaml

    tree = yaml.safe_load(DEFAULT_CONFIG.read_text())
    leaves = set(valid_keys())

    def flatten(values: dict, prefix: str) -> set[str]:
        keys = set()
        for key, value in values.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and dotted not in leaves:
                keys |= flatten(value, dotted + ".")
            else:
                keys.add(dotted)
        return keys

    keys = flatten(tree, "")
    documented_elsewhere = {
        "model.label.column",  # the taxi label is derived; init writes a column
        "model.label.positive",
        "model.params",  # for custom model packages
        "metadata.host",
        "metadata.port",
        "metadata.database",
        "metadata.user",
        "metadata.password_env",
    }
    kubeflow_keys = {k for k in valid_keys() if k.startswith("kubeflow.")}  # kubeflow.yaml
    assert keys | documented_elsewhere | kubeflow_keys == set(valid_keys())


def test_kubeflow_yaml_loads_with_remote_paths_untouched():
    from pipeline.config import CONFIG_DIR

    config = load_config(CONFIG_DIR / "kubeflow.yaml")
    assert config.run.pipeline_root.startswith("gs://")
    assert config.metadata.kind == "grpc"
    assert config.kubeflow.resources.trainer.cpu_limit == 8.0
    assert config.kubeflow.resources.schema_importer.cpu_request == 0.0


def test_resource_request_above_limit_is_named():
    with pytest.raises(ConfigError, match=r"trainer.cpu_request=8.0 exceeds .*cpu_limit=4.0"):
        load_config(
            None,
            ["kubeflow.resources.trainer.cpu_request=8", "kubeflow.resources.trainer.cpu_limit=4"],
        )


def test_overrides_are_typed():
    config = load_config(
        None,
        [
            "trainer.train_steps=7",
            "trainer.hidden_units=[3, 2]",
            "evaluator.min_value=0.5",
            "run.enable_cache=false",
            "beam.args=[--direct_num_workers=2]",
        ],
    )
    assert config.trainer.train_steps == 7
    assert config.trainer.hidden_units == (3, 2)
    assert config.evaluator.min_value == 0.5
    assert config.run.enable_cache is False
    assert config.beam.args == ("--direct_num_workers=2",)


def test_int_is_accepted_for_float():
    assert load_config(None, ["evaluator.min_value=1"]).evaluator.min_value == 1.0


def test_remote_paths_are_left_alone():
    config = load_config(None, ["registry.uri=gs://bucket/models", "data.root=s3://b/data"])
    assert config.registry.uri == "gs://bucket/models"
    assert config.data.root == "s3://b/data"


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(ConfigError) as raised:
        load_config(None, ["trainer.trian_steps=3"])
    message = str(raised.value)
    assert "trainer.trian_steps" in message and "trainer.train_steps" in message


def test_unknown_key_in_file_names_it_and_lists_the_section(tmp_path):
    path = _write(tmp_path, "trainer:\n  train_step: 3\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "trainer.train_step" in message
    assert "valid keys: trainer.train_steps, trainer.eval_steps" in message
    assert str(path) in message


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown key\\(s\\) trainers at the top level"):
        load_config(_write(tmp_path, "trainers: {}\n"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.train_steps=ten", "trainer.train_steps: expected an integer, got 'ten'"),
        ("trainer.train_steps=1.5", "trainer.train_steps: expected an integer, got 1.5"),
        ("trainer.train_steps=0", "trainer.train_steps must be >= 1, got 0"),
        ("evaluator.min_value=1.5", "evaluator.min_value must be in \\[0, 1\\], got 1.5"),
        ("evaluator.metric=accuracy", "evaluator.metric='accuracy' does not suit a binary label"),
        ("model.package=", "model.package must be a dotted module path"),
        ("model.features.fare.kind=date", "model.features.fare.kind must be one of numeric"),
        ("model.features.fare.max_tokens=9", "model.features.fare.max_tokens: a numeric feature"),
        ("model.features.company.buckets=3", "model.features.company.buckets: a categorical"),
        ("model.features.company.oov_buckets=0", "model.features.company.oov_buckets must be >= 1"),
        ("model.features.fare.fill=x", "model.features.fare.fill: a numeric feature fills"),
        ("model.label.task=regression", "model.label.task must be one of binary, multiclass"),
        ("model.label.column=tips", "set exactly one of model.label.column"),
        ("model.label.positive=pos", "model.label.positive applies to a binary label column"),
        ("model.features={}", "model.features: configure at least one feature"),
        ("data.root=", "data.root is empty"),
        (
            "model.features={Bill Length: {kind: numeric}}",
            "column 'Bill Length' cannot be a served",
        ),
        ("run.enable_cache=yes please", "run.enable_cache: expected true or false"),
        ("trainer.hidden_units=64", "trainer.hidden_units: expected a list, got 64"),
        ("trainer.hidden_units=[64, x]", "trainer.hidden_units\\[1\\]: expected an integer"),
        ("metadata.kind=postgres", "metadata.kind must be one of sqlite, mysql, grpc"),
        ("beam.args=[direct]", "beam.args entries must look like --flag=value"),
        ("run.pipeline_name=my pipeline", "run.pipeline_name must be letters"),
        ("trainer.workers=0", "trainer.workers must be >= 1, got 0"),
        ("trainer.launcher=mpi", "trainer.launcher must be one of local, indexed_job, tfjob"),
        ("trainer.max_restarts=-1", "trainer.max_restarts must be >= 0"),
        (["trainer.tpu=local", "trainer.workers=2"], "a TPU slice trains as one worker"),
        ("trainer.kubernetes.port=0", "trainer.kubernetes.port must be in 1..65535"),
        ("trainer.kubernetes.node_selector=[a]", "node_selector: expected a mapping"),
        ("trainer.kubernetes.node_selector={a: 1}", "node_selector.a: expected a string"),
        (
            [
                "trainer.kubernetes.resources.cpu_request=4",
                "trainer.kubernetes.resources.cpu_limit=2",
            ],
            "trainer.kubernetes.resources.cpu_request=4.0 exceeds",
        ),
        ("data.eval_buckets=0", "data.train_buckets and data.eval_buckets must be >= 1"),
        ("kubeflow.image=repo/x:v1", "kubeflow.image must be a repository without a tag"),
        ("kubeflow.endpoint=kfp.local", "kubeflow.endpoint must be an http\\(s\\) URL"),
        ("kubeflow.resources.pusher.memory_limit_gb=-1", "pusher.memory_limit_gb must be >= 0"),
        ("kubeflow.resources.example_gen.cpu_limit=1", "unknown key"),
    ],
)
def test_bad_values_are_named(override, message):
    overrides = override if isinstance(override, list) else [override]
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_trainer_workers_and_pod_settings_load():
    config = load_config(
        None,
        [
            "trainer.workers=4",
            "trainer.launcher=tfjob",
            "trainer.kubernetes.node_selector={cloud.google.com/gke-accelerator: nvidia-l4}",
            "trainer.kubernetes.resources.accelerator_count=1",
        ],
    )
    assert config.trainer.workers == 4 and config.trainer.launcher == "tfjob"
    assert config.trainer.kubernetes.node_selector == {
        "cloud.google.com/gke-accelerator": "nvidia-l4"
    }
    assert config.trainer.kubernetes.resources.accelerator_count == 1


def test_malformed_override():
    with pytest.raises(ConfigError, match=r"--set expects dotted\.key=value"):
        parse_override("trainer.train_steps")


def test_override_into_a_value_is_rejected():
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["trainer.train_steps.x=1"])


def test_missing_file():
    with pytest.raises(ConfigError, match=r"cannot read config file /nonexistent\.yaml"):
        load_config("/nonexistent.yaml")


def test_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(_write(tmp_path, "trainer: [\n"))


def test_section_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="trainer: expected a mapping"):
        load_config(_write(tmp_path, "trainer: 3\n"))


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(AttributeError):
        config.trainer.train_steps = 3  # type: ignore[misc]


def test_to_dict_round_trips(tmp_path):
    import yaml

    config = load_config(None, ["trainer.hidden_units=[5]"], base_dir=tmp_path)
    path = _write(tmp_path, yaml.safe_dump(to_dict(config)))
    assert load_config(path, base_dir=tmp_path) == config


def test_a_bad_override_names_set_not_the_file():
    with pytest.raises(ConfigError) as raised:
        load_config(None, ["trainer.train_steps=abc"])
    message = str(raised.value)
    assert message.startswith("--set trainer.train_steps=abc: ")
    assert "expected an integer, got 'abc'" in message and "local.yaml" not in message


def test_old_threshold_names_still_work_for_auc_only():
    config = load_config(None, ["evaluator.min_auc=0.7", "evaluator.max_auc_drop=0.02"])
    assert (config.evaluator.min_value, config.evaluator.max_drop) == (0.7, 0.02)
    with pytest.raises(ConfigError, match=r"apply to evaluator.metric auc"):
        load_config(None, ["evaluator.metric=binary_accuracy", "evaluator.min_auc=0.7"])


def test_old_and_new_threshold_names_together_are_refused(tmp_path):
    path = _write(
        tmp_path,
        f"extends: {DEFAULT_CONFIG}\nevaluator: {{min_auc: 0.7, min_value: 0.8}}\n",
    )
    with pytest.raises(ConfigError, match=r"set evaluator.min_value or evaluator.min_auc"):
        load_config(path)


def test_extends_merges_sections_key_by_key(tmp_path):
    (tmp_path / "base.yaml").write_text(f"extends: {DEFAULT_CONFIG}\ntrainer: {{batch_size: 7}}\n")
    child = _write(tmp_path, "extends: base.yaml\ntrainer: {train_steps: 9}\n")
    config = load_config(child)
    assert (config.trainer.train_steps, config.trainer.batch_size) == (9, 7)
    assert config.model == load_config().model  # the taxi workload, from two levels up


def test_extends_in_a_circle_is_named(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="`extends` goes round in a circle"):
        load_config(tmp_path / "a.yaml")


def test_kubeflow_yaml_trains_the_local_workload():
    from pipeline.config import KUBEFLOW_CONFIG

    assert load_config(KUBEFLOW_CONFIG).model == load_config().model


@pytest.mark.parametrize(
    "uri, message",
    [
        ("pkg://no_such_package/x.csv", "no installed Python package 'no_such_package'"),
        ("pkg://tfx/no/such/folder", "package 'tfx' has no 'no/such/folder'"),
    ],
)
def test_package_paths_are_checked(uri, message):
    with pytest.raises(ConfigError, match=f"data.root={uri}: {message}"):
        load_config(None, [f"data.root={uri}"])


def test_features_can_be_added_with_set():
    config = load_config(None, ["model.features.trip_start_timestamp={kind: numeric}"])
    assert list(config.model.features)[-1] == "trip_start_timestamp"
    assert config.model.features["trip_start_timestamp"].kind == "numeric"


def test_a_config_of_an_earlier_version_gets_a_migration_message(tmp_path):
    """Files written before the model section trained the taxi default implicitly."""
    old = _write(
        tmp_path, "data:\n  root: ''\nrun:\n  pipeline_name: taxi\ntrainer:\n  train_steps: 5\n"
    )
    with pytest.raises(
        ConfigError, match=r"has no `model` section.*extends: pkg://pipeline/configs/local\.yaml"
    ):
        load_config(old)
    migrated = _write(
        tmp_path, "extends: pkg://pipeline/configs/local.yaml\ntrainer:\n  train_steps: 5\n"
    )
    config = load_config(migrated)
    assert config.trainer.train_steps == 5 and config.model == load_config().model
    assert config.data.root.endswith("chicago_taxi_pipeline/data/simple")
