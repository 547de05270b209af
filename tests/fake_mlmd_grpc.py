"""A stand-in for Kubeflow's metadata-grpc-service: MLMD's gRPC API over a local store.

A test double for the server process only. Every RPC of the real
`MetadataStoreService` (the protos and stubs in the ml-metadata wheel) is
answered by ML Metadata's own C++ store library over a SQLite file, through
the same serialized entry points the Python client uses in-process. So the
client side, `MetadataStore(MetadataStoreClientConfig)`, speaks real gRPC to
real MLMD semantics; what is not exercised is the server binary itself and
its MySQL connection inside Kubeflow.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

_SERVICE = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]


def _status(error: errors.StatusError) -> grpc.StatusCode:
    by_value = {code.value[0]: code for code in grpc.StatusCode}
    return by_value.get(error.error_code, grpc.StatusCode.UNKNOWN)


class FakeMetadataGrpcService:
    """Serves one SQLite-backed ML Metadata store over gRPC on a free localhost port."""

    def __init__(self, sqlite_path: str):
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = sqlite_path
        self._store = metadata_store.MetadataStore(config)
        self.calls: list[str] = []
        handlers = {}
        for method in _SERVICE.methods:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._handler(method.name, method.output_type.name),
                request_deserializer=getattr(
                    metadata_store_service_pb2, method.input_type.name
                ).FromString,
                response_serializer=lambda message: message.SerializeToString(),
            )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers),)
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def _handler(self, name: str, response_type: str) -> Any:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            self.calls.append(name)
            response = getattr(metadata_store_service_pb2, response_type)()
            try:
                self._store._call_method(name, request, response)
            except errors.StatusError as e:
                context.abort(_status(e), str(e))
            return response

        return handle

    def close(self) -> None:
        self._server.stop(grace=None)

    def __enter__(self) -> FakeMetadataGrpcService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
