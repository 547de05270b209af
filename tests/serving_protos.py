"""The TF Serving config protos, to parse config files the way the model server does.

`model_server_config_pb2` (--model_config_file) comes with the
tensorflow-serving-api wheel. The wheel lacks `BatchingParameters`
(--batching_parameters_file) and `MonitoringConfig` (--monitoring_config_file).
Their .proto files are vendored from TF Serving 2.16.1 in tests/protos (see its
README). They are compiled here with grpc_tools.protoc, once per test session.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

VENDORED = Path(__file__).parent / "protos"
BATCHING_PROTO = "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"
MONITORING_PROTO = "tensorflow_serving/config/monitoring_config.proto"

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class ServingProtos:
    """The generated modules of the TF Serving config protos."""

    model_server_config_pb2: ModuleType
    session_bundle_config_pb2: ModuleType
    monitoring_config_pb2: ModuleType


def _package_dir(name: str) -> Path:
    # find_spec locates a package without importing it (TensorFlow is slow to import).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed in {sys.prefix}")
    return Path(next(iter(spec.submodule_search_locations)))


def _import_file(module_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@cache
def load() -> ServingProtos:
    """Compiles the vendored protos into a temporary folder and imports them.

    The generated modules import TensorFlow's own `config_pb2` and
    `named_tensor_pb2`, so the messages share TensorFlow's descriptors. They
    are imported under private module names, because the installed
    `tensorflow_serving` package owns the `tensorflow_serving.*` names.

    Returns:
        The three modules. The result is cached, because a proto file can be
        registered only once per process.

    Raises:
        RuntimeError: protoc failed; the message has its output.
    """
    from tensorflow_serving.config import model_server_config_pb2

    includes = [
        VENDORED,
        # tensorflow/core/protobuf/*.proto, imported by session_bundle_config.proto.
        _package_dir("tensorflow") / "include",
        # google/protobuf/wrappers.proto.
        _package_dir("grpc_tools") / "_proto",
    ]
    with tempfile.TemporaryDirectory(prefix="serving-protos-") as out:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                *(f"--proto_path={path}" for path in includes),
                f"--python_out={out}",
                BATCHING_PROTO,
                MONITORING_PROTO,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"protoc could not compile {BATCHING_PROTO} and {MONITORING_PROTO} "
                f"(include paths {[str(p) for p in includes]}): {result.stderr.strip()}"
            )
        generated = {
            name: _import_file(
                f"_vendored_serving_{name}", Path(out) / proto.replace(".proto", "_pb2.py")
            )
            for name, proto in (
                ("session_bundle_config_pb2", BATCHING_PROTO),
                ("monitoring_config_pb2", MONITORING_PROTO),
            )
        }
    return ServingProtos(model_server_config_pb2=model_server_config_pb2, **generated)


def parse(text: str, message: M, source: str) -> M:
    """Parses a text proto into `message` strictly, as the model server reads it.

    Unknown fields, bad values and syntax errors all fail.

    Args:
        text: The text proto.
        message: An empty message of the expected type; it is filled in.
        source: Where the text comes from, for the error message.

    Returns:
        `message`, filled in.

    Raises:
        ValueError: The text is not a valid text proto of `message`'s type; the
            message names `source`, the type and the parser's line and column.
    """
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise ValueError(f"{source}: not a valid {message.DESCRIPTOR.full_name}: {e}") from None
