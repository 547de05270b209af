"""Baseline lookup over a real ML Metadata store, and its resolution."""

from __future__ import annotations

import json

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from components import contracts
from components.baseline.lookup import Baseline, find_latest_blessed_model
from components.evaluator.executor import resolve_baseline
from components.mlmd import connect, connection_config


class Store:
    """Writes records shaped like TFX's into a fresh SQLite store."""

    def __init__(
        self, path: str, context_type: str = "pipeline", blessing_type: str = "ModelBlessing"
    ):
        self.store = connect(json.dumps({"kind": "sqlite", "sqlite_path": path}))
        self.model_type = self._artifact_type("Model")
        self.blessing_type = self._artifact_type(blessing_type)
        self.context_type_name = context_type
        self.context_type = self.store.put_context_type(
            metadata_store_pb2.ContextType(name=context_type)
        )
        self.exec_type = self.store.put_execution_type(
            metadata_store_pb2.ExecutionType(name="Evaluator")
        )

    def _artifact_type(self, name: str) -> int:
        return self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))

    def context(self, name: str) -> int:
        existing = self.store.get_context_by_type_and_name(self.context_type_name, name)
        if existing:
            return existing.id
        [cid] = self.store.put_contexts(
            [metadata_store_pb2.Context(type_id=self.context_type, name=name)]
        )
        return cid

    def model(self, pipeline: str, uri: str, state=metadata_store_pb2.Artifact.LIVE) -> int:
        return self._put(
            pipeline, metadata_store_pb2.Artifact(type_id=self.model_type, uri=uri, state=state)
        )

    def blessing(self, pipeline: str, model_id: int, blessed: bool) -> int:
        artifact = metadata_store_pb2.Artifact(
            type_id=self.blessing_type,
            uri=f"/blessing/{model_id}",
            state=metadata_store_pb2.Artifact.LIVE,
        )
        artifact.custom_properties[contracts.BLESSED].int_value = int(blessed)
        artifact.custom_properties[contracts.CURRENT_MODEL_ID].int_value = model_id
        return self._put(pipeline, artifact)

    def _put(self, pipeline: str, artifact: metadata_store_pb2.Artifact) -> int:
        [aid] = self.store.put_artifacts([artifact])
        self.store.put_attributions_and_associations(
            [metadata_store_pb2.Attribution(artifact_id=aid, context_id=self.context(pipeline))], []
        )
        return aid


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "mlmd.sqlite"))


def test_empty_store_has_no_baseline(tmp_path):
    empty = connect(json.dumps({"kind": "sqlite", "sqlite_path": str(tmp_path / "x.sqlite")}))
    assert find_latest_blessed_model(empty, "taxi") is None


def test_latest_blessed_model_wins(store):
    m1 = store.model("taxi", "/m1")
    store.blessing("taxi", m1, blessed=True)
    m2 = store.model("taxi", "/m2")
    b2 = store.blessing("taxi", m2, blessed=True)
    m3 = store.model("taxi", "/m3")
    store.blessing("taxi", m3, blessed=False)
    assert find_latest_blessed_model(store.store, "taxi") == Baseline(m2, "/m2", b2)


def test_candidate_is_excluded(store):
    m1 = store.model("taxi", "/m1")
    b1 = store.blessing("taxi", m1, blessed=True)
    m2 = store.model("taxi", "/m2")
    store.blessing("taxi", m2, blessed=True)
    assert find_latest_blessed_model(store.store, "taxi", frozenset({m2})) == Baseline(
        m1, "/m1", b1
    )


def test_other_pipelines_do_not_count(store):
    m1 = store.model("other", "/m1")
    store.blessing("other", m1, blessed=True)
    store.context("taxi")
    assert find_latest_blessed_model(store.store, "taxi") is None


def test_deleted_model_is_skipped(store):
    m1 = store.model("taxi", "/m1")
    b1 = store.blessing("taxi", m1, blessed=True)
    m2 = store.model("taxi", "/m2", state=metadata_store_pb2.Artifact.DELETED)
    store.blessing("taxi", m2, blessed=True)
    assert find_latest_blessed_model(store.store, "taxi") == Baseline(m1, "/m1", b1)


def test_kubeflow_v2_launcher_names_are_understood(tmp_path):
    kfp = Store(
        str(tmp_path / "kfp.sqlite"),
        context_type="system.Pipeline",
        blessing_type="tfx.ModelBlessing",
    )
    m1 = kfp.model("taxi", "gs://root/m1")
    b1 = kfp.blessing("taxi", m1, blessed=True)
    assert find_latest_blessed_model(kfp.store, "taxi") == Baseline(m1, "gs://root/m1", b1)


def _reference(found: bool, model_id: int = 0, uri: str = "") -> standard_artifacts.Model:
    reference = standard_artifacts.Model()
    reference.uri = "/pipeline_root/baseline_lookup/baseline/9"
    reference.set_int_custom_property(contracts.BASELINE_FOUND, int(found))
    reference.set_int_custom_property(contracts.BASELINE_MODEL_ID, model_id)
    reference.set_string_custom_property(contracts.BASELINE_MODEL_URI, uri)
    reference.set_int_custom_property(contracts.BASELINE_BLESSING_ID, 0)
    return reference


def test_resolve_reference_to_the_real_model():
    model = resolve_baseline(_reference(True, 12, "/pipeline_root/trainer/model/7"))
    assert model is not None and model.id == 12 and model.uri == "/pipeline_root/trainer/model/7"


def test_resolve_empty_reference():
    assert resolve_baseline(_reference(False)) is None


def test_inconsistent_reference_is_an_error():
    with pytest.raises(ValueError, match="says found but has model id 0"):
        resolve_baseline(_reference(True, 0, ""))


def test_mysql_connection_needs_the_password_variable(monkeypatch):
    monkeypatch.delenv("NO_SUCH_PASSWORD_VAR", raising=False)
    spec = {
        "kind": "mysql",
        "host": "db",
        "port": 3306,
        "database": "m",
        "user": "u",
        "password_env": "NO_SUCH_PASSWORD_VAR",
    }
    with pytest.raises(ValueError, match="NO_SUCH_PASSWORD_VAR"):
        connection_config(spec)
    monkeypatch.setenv("NO_SUCH_PASSWORD_VAR", "s3cret")
    assert connection_config(spec).mysql.password == "s3cret"


def test_unknown_store_kind():
    with pytest.raises(ValueError, match="unknown ML Metadata store kind 'postgres'"):
        connection_config({"kind": "postgres"})


def test_grpc_connection():
    config = connection_config({"kind": "grpc", "host": "metadata-grpc-service", "port": 8080})
    assert isinstance(config, metadata_store_pb2.MetadataStoreClientConfig)
    assert config.port == 8080


def test_reads_blessings_as_the_kfp_launcher_records_them(tmp_path):
    # Kubeflow v2: system.Pipeline context, tfx.ModelBlessing type, `blessed`
    # as a double, `current_model_id` as the model's id in a string.
    kfp = Store(str(tmp_path / "kfp.sqlite"), "system.Pipeline", "tfx.ModelBlessing")
    model = kfp.model("taxi", "/m1")
    artifact = metadata_store_pb2.Artifact(
        type_id=kfp.blessing_type, uri="/b1", state=metadata_store_pb2.Artifact.LIVE
    )
    artifact.custom_properties[contracts.BLESSED].double_value = 1.0
    artifact.custom_properties[contracts.CURRENT_MODEL_ID].string_value = str(model)
    kfp._put("taxi", artifact)
    found = find_latest_blessed_model(kfp.store, "taxi")
    assert found is not None and found.model_id == model and found.model_uri == "/m1"


def test_candidate_is_excluded_by_uri(store):
    # Under Kubeflow the executor sees its input's URI, not its ML Metadata id.
    m1 = store.model("taxi", "/m1")
    store.blessing("taxi", m1, blessed=True)
    assert find_latest_blessed_model(store.store, "taxi", exclude_uris=frozenset({"/m1"})) is None
