"""The push contract: ops TF Serving 2.16 registers, and signatures stable's clients rely on.

Real SavedModels throughout: the trained taxi model, stand-ins written by
tf.saved_model.save, one calling tf.py_function and one whose graph names
a custom op. Refusals go through the pusher's own check, against a real
registry, and publish nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf

from components.pusher.executor import check_contract
from components.registry import contract
from components.registry.store import Registry
from components.workload import ServingColumn
from pipeline.serving.columns import columns_for
from tests.conftest import taxi_config
from tests.fake_serving import write_constant_model

COLUMNS = columns_for(taxi_config())


def _py_function_model(path: Path) -> str:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}

    tf.saved_model.save(tf.Module(), str(path), signatures={"serving_default": serve})
    return str(path)


def _with_custom_op(source: str, path: Path, op: str) -> str:
    """A copy of `source` whose serving graph has one node of op `op` in a function."""
    from tensorflow.core.protobuf import saved_model_pb2

    tf.io.gfile.makedirs(str(path))
    for name in tf.io.gfile.listdir(source):
        if name != "saved_model.pb" and not tf.io.gfile.isdir(f"{source}/{name}"):
            tf.io.gfile.copy(f"{source}/{name}", f"{path}/{name}")
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(Path(source, "saved_model.pb").read_bytes())
    function = saved.meta_graphs[0].graph_def.library.function[0]
    node = function.node_def.add()
    node.name, node.op = "zero_out", op
    Path(path, "saved_model.pb").write_bytes(saved.SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def constant(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_constant_model(str(tmp_path_factory.mktemp("c") / "m"), 0.3, COLUMNS)


def test_the_list_holds_tensorflow_tf_text_and_tfdf_ops_but_no_python_kernels():
    ops = contract.serving_ops()
    assert {"MatMul", "StringToHashBucketFast", "ParseExampleV2", "LookupTableFindV2"} <= ops
    assert {
        "SentencepieceOp",
        "TFText>WhitespaceTokenizeWithOffsetsV2",
        "SimpleMLInferenceOp",
    } <= ops
    assert not {"PyFunc", "PyFuncStateless", "EagerPyFunc"} & ops


def test_the_trained_model_uses_only_ops_tf_serving_registers(trained_model):
    used = contract.ops_of(trained_model)
    assert {"ParseExampleV2", "StatefulPartitionedCall"} & used
    assert contract.unsupported_ops(trained_model) == []


def test_a_py_function_model_is_refused_and_nothing_is_published(tmp_path):
    model = _py_function_model(tmp_path / "py")
    assert contract.unsupported_ops(model) == ["EagerPyFunc"]
    registry = Registry(str(tmp_path / "registry"), "taxi")
    with pytest.raises(contract.ContractError, match=r"op\(s\) EagerPyFunc .*Nothing was pushed"):
        check_contract(registry, model, (), False)
    assert registry.versions() == []


def test_a_custom_op_is_named_unless_the_server_registers_it(constant, tmp_path):
    model = _with_custom_op(constant, tmp_path / "custom", "ZeroOut")
    assert contract.unsupported_ops(model) == ["ZeroOut"]
    with pytest.raises(contract.ContractError, match="ZeroOut"):
        check_contract(Registry(str(tmp_path / "r"), "taxi"), model, (), False)
    checked = check_contract(Registry(str(tmp_path / "r"), "taxi"), model, ("ZeroOut",), False)
    assert checked["extra_ops"] == ["ZeroOut"] and checked["compared_with"] is None


def _registry_with_stable(tmp_path: Path, model: str) -> Registry:
    registry = Registry(str(tmp_path / "registry"), "taxi")
    registry.publish(model, {"pipeline": {"name": "taxi", "run_id": "r1"}})
    registry.set_label("stable", 1)
    return registry


def test_a_signature_change_against_stable_is_refused_naming_each_change(constant, tmp_path):
    registry = _registry_with_stable(tmp_path, constant)
    # fare dropped, company sent as a number, tolls new.
    changed = [
        ServingColumn("company", "int", 0) if c.name == "company" else c
        for c in COLUMNS
        if c.name != "fare"
    ] + [ServingColumn("tolls", "float", 0.0)]
    candidate = write_constant_model(str(tmp_path / "candidate"), 0.4, changed)
    with pytest.raises(contract.ContractError) as refused:
        check_contract(registry, candidate, (), False)
    message = str(refused.value)
    assert "differ from version 1 (stable)" in message and "Nothing was pushed" in message
    assert "serving_raw: input 'fare' removed" in message
    assert "serving_raw: input 'tolls' added" in message
    assert "serving_raw: input 'company' dtype DT_STRING -> DT_INT64" in message
    assert [v.number for v in registry.versions()] == [1]


def test_an_allowed_change_is_recorded_for_the_manifest(constant, tmp_path):
    registry = _registry_with_stable(tmp_path, constant)
    fewer = write_constant_model(str(tmp_path / "fewer"), 0.4, COLUMNS[:-1])
    checked = check_contract(registry, fewer, (), True)
    assert checked["compared_with"] == {"label": "stable", "version": 1}
    assert checked["signature_changes"] == [f"serving_raw: input {COLUMNS[-1].name!r} removed"]


def test_the_same_signatures_pass_against_stable(constant, tmp_path):
    registry = _registry_with_stable(tmp_path, constant)
    again = write_constant_model(str(tmp_path / "again"), 0.9, COLUMNS)
    checked = check_contract(registry, again, (), False)
    assert checked["signature_changes"] == [] and checked["compared_with"]["version"] == 1


def test_signature_changes_cover_signatures_and_outputs():
    old = {
        "a": {"inputs": {"x": "DT_FLOAT"}, "outputs": {"p": "DT_FLOAT"}},
        "b": {"inputs": {}, "outputs": {}},
    }
    new = {
        "a": {"inputs": {"x": "DT_FLOAT"}, "outputs": {"q": "DT_FLOAT"}},
        "c": {"inputs": {}, "outputs": {}},
    }
    assert contract.signature_changes(old, new) == [
        "signature 'b' removed",
        "signature 'c' added",
        "a: output 'p' removed",
        "a: output 'q' added",
    ]


def test_a_stable_version_without_its_model_file_is_named(constant, tmp_path):
    registry = _registry_with_stable(tmp_path, constant)
    Path(registry.version(1).path, "saved_model.pb").unlink()
    with pytest.raises(contract.ContractError, match=r"version 1 \(stable\) .*no readable"):
        check_contract(registry, constant, (), False)
