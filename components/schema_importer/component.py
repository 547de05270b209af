"""`SchemaImporter`: publishes the curated schema as a Schema artifact.

TFX's ImportSchemaGen takes a file path, and its cache key is that path: an
edited schema at the same path is silently ignored in favour of the cached
copy (seen here). This component takes the schema's *text* as its parameter,
so the cache key is the content, and the compiled Kubeflow pipeline carries
the schema with it instead of depending on a path inside the image.
"""

import os

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx

SCHEMA_FILE = "schema.pbtxt"


def parse_schema(schema_text: str, source: str = "schema") -> schema_pb2.Schema:
    """Parses a text-format Schema proto.

    Raises:
        ValueError: The text is not a valid Schema, or it has no features;
            the message names `source`.
    """
    schema = schema_pb2.Schema()
    try:
        text_format.Parse(schema_text, schema)
    except text_format.ParseError as e:
        raise ValueError(f"{source} is not a valid tensorflow_metadata Schema: {e}") from e
    if not schema.feature:
        raise ValueError(f"{source} declares no features")
    return schema


@tfx.dsl.components.component
def SchemaImporter(
    schema_text: tfx.dsl.components.Parameter[str],
    schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
) -> None:
    """Writes `schema_text` (after checking it parses) as `<schema>/schema.pbtxt`."""
    parse_schema(schema_text)
    tf.io.gfile.makedirs(schema.uri)
    with tf.io.gfile.GFile(os.path.join(schema.uri, SCHEMA_FILE), "w") as f:
        f.write(schema_text)
