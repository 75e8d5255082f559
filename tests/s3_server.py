"""A real S3 API on loopback for the tests: moto's server on a free port, with a bucket and credentials.

`s3_server` starts `moto_server` once per session and points s3fs/botocore at it through the
`AWS_*` environment variables (restored afterwards); `s3_url` gives each test its own prefix in
the session's bucket.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

BUCKET = "synthgen-test"
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on port {port} within {START_TIMEOUT_S}s")


def s3_env(endpoint: str, empty_file: Path) -> dict[str, str]:
    """What s3fs, botocore and DVC need to talk to the loopback server (and to nothing real: no ~/.aws)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(empty_file), "AWS_SHARED_CREDENTIALS_FILE": str(empty_file),
    }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The endpoint URL of a moto S3 server on 127.0.0.1 holding the bucket `BUCKET`; stopped after the session."""
    port = free_port()
    folder = tmp_path_factory.mktemp("moto")
    log, empty = folder / "moto.log", folder / "aws-config"
    empty.touch()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(port, proc)
        with pytest.MonkeyPatch.context() as env:
            env.delenv("AWS_PROFILE", raising=False)
            for name, value in s3_env(endpoint, empty).items():
                env.setenv(name, value)
            import fsspec

            fsspec.filesystem("s3").mkdir(BUCKET)
            yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def s3_url(s3_server) -> str:
    """A fresh `s3://` prefix on the loopback server for one test."""
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
