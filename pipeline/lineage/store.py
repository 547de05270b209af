"""Opening the configured ML Metadata store for the lineage queries.

The store is the configuration's (`metadata.*`): the local SQLite file, a
MySQL/MariaDB server (password from `metadata.password_env`), or Kubeflow's
metadata-grpc-service (`metadata.kind=grpc`, through `kubectl port-forward`).
ML Metadata loads only when a store is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.errors import UserError

if TYPE_CHECKING:
    from pipeline.config import MetadataConfig
    from pipeline.lineage.queries import Lineage


class StoreUnreachableError(RuntimeError):
    """The ML Metadata store cannot be opened or queried."""


def _where(metadata: MetadataConfig) -> str:
    if metadata.kind == "sqlite":
        return f"sqlite {metadata.sqlite_path}"
    return f"{metadata.kind} {metadata.host}:{metadata.port}"


def open_lineage(metadata: MetadataConfig) -> Lineage:
    """Opens the store read-only and makes one round trip, so that a dead store fails here.

    Args:
        metadata: The configuration's `metadata` section.

    Returns:
        The lineage queries over the store.

    Raises:
        StoreNotFoundError: The SQLite file does not exist (a UserError).
        StoreUnreachableError: The store cannot be opened or does not answer;
            the message names the store and the backend's error.
    """
    from components.mlmd import open_for_reading
    from pipeline.lineage.graph import MetadataGraph
    from pipeline.lineage.queries import Lineage

    try:
        store = open_for_reading(metadata)  # MySQL connects here, gRPC lazily
        store.get_context_types()  # the first real round trip
    except UserError:
        raise  # a SQLite file that is not there yet: the user's to fix, not an outage
    except Exception as e:  # MLMD raises its own error types per backend
        raise StoreUnreachableError(f"ML Metadata ({_where(metadata)}) unreachable: {e}") from e
    return Lineage(MetadataGraph(store))
