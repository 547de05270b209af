"""What a SavedModel promises the model server and its clients, checked before a push.

Two checks, both read from `saved_model.pb` alone (nothing is loaded):

- `unsupported_ops`: ops the stock TF Serving 2.16 model server does not
  register (`tf_serving_ops.txt`, from scripts/list_serving_ops.py): a
  custom op library, or a Python-kernel op such as `tf.py_function`'s
  EagerPyFunc. TF Serving would refuse to load such a version and keep
  serving the old one; better to refuse the push.
- `signature_changes`: how the serving signatures (input names and dtypes,
  output keys and dtypes) differ from another version's, such as the one
  labelled `stable`, whose clients would break.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from components import storage
from components.errors import UserError

SERVING_TAG = "serve"
OPS_FILE = Path(__file__).with_name("tf_serving_ops.txt")
# Signatures TensorFlow adds for its own use, not part of the serving API.
_INTERNAL_SIGNATURES = frozenset({"__saved_model_init_op"})


class ContractError(UserError, ValueError):
    """A version the model server cannot load, or whose signatures break its clients."""


@lru_cache(maxsize=1)
def serving_ops() -> frozenset[str]:
    """The ops stock TF Serving 2.16 registers."""
    return frozenset(
        line.strip()
        for line in OPS_FILE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


def _saved_model(path: str) -> Any:
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(storage.read_bytes(storage.join(path, "saved_model.pb")))
    return saved


def _serving_graph(saved: Any, path: str) -> Any:
    for meta_graph in saved.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ContractError(f"{path}: no meta graph tagged {SERVING_TAG!r}, TF Serving loads none")


def ops_of(path: str) -> set[str]:
    """Every op the SavedModel's serving graph and its functions use."""
    graph = _serving_graph(_saved_model(path), path).graph_def
    used = {node.op for node in graph.node}
    for function in graph.library.function:
        used.update(node.op for node in function.node_def)
    return used


def unsupported_ops(path: str, extra_ops: tuple[str, ...] = ()) -> list[str]:
    """The SavedModel's ops that neither TF Serving 2.16 nor `extra_ops` register, sorted."""
    known = serving_ops() | set(extra_ops)
    return sorted(op for op in ops_of(path) if op not in known)


def signatures_of(path: str) -> dict[str, dict[str, dict[str, str]]]:
    """Each serving signature: its inputs and outputs by name, with their dtype names."""
    from tensorflow.core.framework import types_pb2

    meta_graph = _serving_graph(_saved_model(path), path)
    return {
        name: {
            "inputs": {k: types_pb2.DataType.Name(v.dtype) for k, v in sig.inputs.items()},
            "outputs": {k: types_pb2.DataType.Name(v.dtype) for k, v in sig.outputs.items()},
        }
        for name, sig in sorted(meta_graph.signature_def.items())
        if name not in _INTERNAL_SIGNATURES
    }


def signature_changes(
    old: dict[str, dict[str, dict[str, str]]], new: dict[str, dict[str, dict[str, str]]]
) -> list[str]:
    """What a client of `old` would see change in `new`, one line each (none: compatible)."""
    changes = [f"signature {name!r} removed" for name in sorted(old.keys() - new.keys())]
    changes += [f"signature {name!r} added" for name in sorted(new.keys() - old.keys())]
    for name in sorted(old.keys() & new.keys()):
        for side, noun in (("inputs", "input"), ("outputs", "output")):
            before, after = old[name][side], new[name][side]
            changes += [f"{name}: {noun} {k!r} removed" for k in sorted(before.keys() - after)]
            changes += [f"{name}: {noun} {k!r} added" for k in sorted(after.keys() - before)]
            changes += [
                f"{name}: {noun} {k!r} dtype {before[k]} -> {after[k]}"
                for k in sorted(before.keys() & after.keys())
                if before[k] != after[k]
            ]
    return changes
