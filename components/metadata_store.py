"""ML Metadata connections, built from one plain description of the store.

Components receive the description as a JSON parameter (no password: for
MySQL it names the environment variable that holds it, so no secret is
written into the pipeline IR or into ML Metadata).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

# metadata_store_pb2.ConnectionConfig or metadata_store_pb2.MetadataStoreClientConfig.
ConnectionProto = Any


def connection_config(spec: Mapping[str, Any]) -> ConnectionProto:
    """Builds the ML Metadata connection proto for a store description.

    Args:
        spec: `kind` (sqlite, mysql, grpc) and that kind's fields:
            `sqlite_path`; `host`, `port`, `database`, `user`, `password_env`;
            `host`, `port`. `read_only` opens a SQLite file read-only.

    Returns:
        A ConnectionConfig (sqlite, mysql) or a MetadataStoreClientConfig
        (grpc).

    Raises:
        ValueError: Unknown kind, or the MySQL password variable is unset.
    """
    kind = spec.get("kind")
    if kind == "sqlite":
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(spec["sqlite_path"])
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
            if spec.get("read_only")
            else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        )
        return config
    if kind == "mysql":
        password_env = str(spec.get("password_env", ""))
        if password_env and password_env not in os.environ:
            raise ValueError(
                f"MySQL ML Metadata: environment variable {password_env} (metadata.password_env) "
                "is not set; export the database password there"
            )
        config = metadata_store_pb2.ConnectionConfig()
        config.mysql.host = str(spec["host"])
        config.mysql.port = int(spec["port"])
        config.mysql.database = str(spec["database"])
        config.mysql.user = str(spec["user"])
        config.mysql.password = os.environ.get(password_env, "") if password_env else ""
        return config
    if kind == "grpc":
        client = metadata_store_pb2.MetadataStoreClientConfig()
        client.host = str(spec["host"])
        client.port = int(spec["port"])
        return client
    raise ValueError(f"unknown ML Metadata store kind {kind!r}; expected sqlite, mysql or grpc")


def connect(spec: Mapping[str, Any] | str) -> metadata_store.MetadataStore:
    """Opens the store described by `spec` (a mapping or its JSON)."""
    parsed: Mapping[str, Any] = json.loads(spec) if isinstance(spec, str) else spec
    return metadata_store.MetadataStore(connection_config(parsed))
