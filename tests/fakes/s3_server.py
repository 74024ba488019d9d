"""An S3-compatible server for the tests: moto's ThreadedMotoServer on 127.0.0.1 (a free port).

The factory talks to it through the real boto3 client, exactly as to AWS or MinIO: only
FACTORY_S3_ENDPOINT_URL differs. While the session fixture is up, the process has fake
credentials (boto3's standard env chain) and no shared config files, so nothing on the machine
(a developer's ~/.aws) leaks in; the previous environment comes back at the end.

Use `s3_server.bucket()` for a fresh, empty bucket per test or module.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-access-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class S3Server:
    endpoint_url: str

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url)

    def bucket(self, prefix: str = "media") -> str:
        """Creates and returns a new, empty bucket."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    saved = {name: os.environ.get(name) for name in FAKE_ENV}
    os.environ.update(FAKE_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
