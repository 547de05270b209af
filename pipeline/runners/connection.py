"""The ML Metadata connection the local runner records in; light, so preflight can use it."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from components.errors import ConfigError
from components.mlmd import connection_config
from pipeline.config import PipelineConfig


def local_connection_config(config: PipelineConfig) -> Any:
    """The ConnectionConfig the local runner records in (sqlite or mysql).

    Raises:
        ConfigError: metadata.kind is grpc, which TFX's local runner cannot write to.
    """
    if config.metadata.kind == "grpc":
        raise ConfigError(
            "metadata.kind=grpc: the local runner writes ML Metadata directly and needs "
            "kind sqlite or mysql; grpc is for stores behind a metadata-grpc-service"
        )
    if config.metadata.kind == "sqlite":
        os.makedirs(os.path.dirname(config.metadata.sqlite_path) or ".", exist_ok=True)
    return connection_config(asdict(config.metadata))
