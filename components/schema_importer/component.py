"""`SchemaImporter`: publishes the curated schema as a Schema artifact.

TFX's ImportSchemaGen takes a file path, and its cache key is that path: an
edited schema at the same path is silently ignored in favour of the cached
copy (seen here). This component takes the schema's *text* as its parameter,
so the cache key is the content, and the compiled Kubeflow pipeline carries
the schema with it instead of depending on a path inside the image.
"""

import os

import tensorflow as tf
from tfx import v1 as tfx

from components.contracts import SCHEMA_FILE
from components.schema_io import parse_schema


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
