"""How a client reaches TF Serving behind the TLS front: CA, client certificate, API key.

The front (kubernetes/serving/components/front) ends TLS and lets a request
through with a client certificate its client CA signed, or with an API key:
HTTP Basic credentials `<key id>:<key>`, checked against the hashed keys of
its htpasswd Secret. Over gRPC the key travels as the `authorization`
metadata, which is the same HTTP/2 header. A key is never sent in clear:
an API key over plain http:// or an insecure gRPC channel is refused.
"""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import UserError


class CredentialsError(UserError, ValueError):
    """A certificate file, key or key variable that no request can be sent with."""


@dataclass(frozen=True)
class Credentials:
    """What a client presents and trusts.

    Attributes:
        ca_cert: PEM bundle that signed the server's certificate; None: the
            system's trusted roots (REST), grpcio's bundled roots (gRPC).
        client_cert: PEM client certificate (mutual TLS), with `client_key`.
        client_key: Its PEM private key.
        api_key: `<key id>:<key>`, sent as HTTP Basic credentials.
    """

    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    api_key: str | None = None

    @classmethod
    def from_options(
        cls,
        ca_cert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        api_key_env: str | None = None,
    ) -> Credentials:
        """Checks the files and reads the key from its environment variable.

        Raises:
            CredentialsError: A file is missing, only one of the client
                certificate and key is given, the variable is unset, or its
                value is not `<key id>:<key>`.
        """
        for flag, path in (
            ("--ca-cert", ca_cert),
            ("--client-cert", client_cert),
            ("--client-key", client_key),
        ):
            if path is not None and not Path(path).is_file():
                raise CredentialsError(f"{flag} {path}: no such file")
        if (client_cert is None) != (client_key is None):
            raise CredentialsError("--client-cert and --client-key go together")
        api_key = None
        if api_key_env is not None:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise CredentialsError(
                    f"--api-key-env {api_key_env}: the variable is not set (expected "
                    "<key id>:<key>)"
                )
            if ":" not in api_key or api_key.startswith(":"):
                raise CredentialsError(
                    f"{api_key_env}: expected <key id>:<key>, found a value without a key id"
                )
        credentials = cls(ca_cert, client_cert, client_key, api_key)
        credentials.ssl_context()  # a file that is no PEM, or a key of another certificate
        return credentials

    @property
    def any(self) -> bool:
        return any((self.ca_cert, self.client_cert, self.api_key))

    def authorization(self) -> str | None:
        """The `Authorization` header value for the API key, or None."""
        if self.api_key is None:
            return None
        return "Basic " + base64.b64encode(self.api_key.encode()).decode()

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying TLS context: the CA bundle (or system roots), the client certificate."""
        try:
            context = ssl.create_default_context(cafile=self.ca_cert)
        except ssl.SSLError as error:
            raise CredentialsError(
                f"--ca-cert {self.ca_cert}: not a PEM CA bundle ({error})"
            ) from None
        if self.client_cert and self.client_key:
            try:
                context.load_cert_chain(self.client_cert, self.client_key)
            except ssl.SSLError as error:
                raise CredentialsError(
                    f"--client-cert {self.client_cert} / --client-key {self.client_key}: not a "
                    f"PEM certificate and its private key ({error})"
                ) from None
        return context

    def grpc_channel_credentials(self) -> Any:
        import grpc

        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_cert),
            private_key=read(self.client_key),
            certificate_chain=read(self.client_cert),
        )

    def grpc_metadata(self) -> list[tuple[str, str]]:
        header = self.authorization()
        return [("authorization", header)] if header else []

    def check_rest(self, endpoint: str) -> None:
        """Refuses credentials that plain http:// would send in clear or ignore.

        Raises:
            CredentialsError: A key or certificate with an http:// endpoint.
        """
        if self.any and not endpoint.startswith("https://"):
            raise CredentialsError(
                f"{endpoint}: TLS options or an API key need an https:// endpoint (over "
                "http:// the key would travel in clear)"
            )
