"""Fixtures of the daemon tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[Any]:
    """moto's S3 server on a free loopback port; a boto3 client of it. s3fs finds it through the
    environment, as it finds a cluster's bucket."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()  # one made before would not know this server
        try:
            yield boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture
def bucket(s3_server: Any) -> str:
    """An empty bucket of this test's own; its URI with a prefix."""
    name = f"tl-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(Bucket=name)
    return f"s3://{name}/shared"
