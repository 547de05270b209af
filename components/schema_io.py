"""Reading the curated schema (a tensorflow_metadata Schema text proto), without TensorFlow.

One reader for the pipeline definition (which embeds the text), the
SchemaImporter component, the preflight checks and the serving clients.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.errors import ConfigError


def parse_schema(schema_text: str, source: str = "schema") -> schema_pb2.Schema:
    """Parses a text-format Schema proto.

    Raises:
        ConfigError: The text is not a valid Schema, or it has no features;
            the message names `source`.
    """
    schema = schema_pb2.Schema()
    try:
        text_format.Parse(schema_text, schema)
    except text_format.ParseError as e:
        raise ConfigError(f"{source} is not a valid tensorflow_metadata Schema: {e}") from None
    if not schema.feature:
        raise ConfigError(f"{source} declares no features")
    return schema


def read_schema(path: str, key: str = "data.schema_file") -> tuple[str, schema_pb2.Schema]:
    """The curated schema file's text and its parsed Schema.

    Args:
        path: The file.
        key: The configuration key that named it, for messages.

    Raises:
        ConfigError: The file cannot be read or is not a valid Schema.
    """
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the curated schema {key}={path}: {e.strerror}") from None
    return text, parse_schema(text, source=f"{key}={path}")
