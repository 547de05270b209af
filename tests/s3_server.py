"""A real S3 API server on 127.0.0.1 for the registry's object-store tests: moto's.

moto's server (`python -m moto.server`, in the lock as `moto[s3]` with
Flask) speaks the S3 REST API that tensorflow-io's AWS SDK client talks:
object PUT/GET/HEAD/DELETE, ListObjectsV2 with prefixes and delimiters,
multipart uploads. It is an emulator, not AWS: it keeps objects in memory
and checks no IAM policy.

Every S3 operation of the tests runs in a subprocess (`python -m pipeline
...` or a script ending through `components.process.run_and_exit`): a
process that loaded tensorflow-io's S3 filesystem aborts when it exits
(tensorflow/io#2039), and that process must not be pytest's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What tensorflow-io's S3 client (and boto3) read to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "S3_ENDPOINT": self.endpoint,
            "S3_USE_HTTPS": "0",
            "S3_VERIFY_SSL": "0",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`, sorted."""
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def s3_server(bucket: str = "models") -> Iterator[S3Server]:
    """Starts moto's S3 server on a free port with one bucket; stops it after."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on {endpoint}") from None
                time.sleep(0.2)
        server = S3Server(endpoint, bucket)
        server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
