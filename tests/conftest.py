"""Shared fixtures: real servers on 127.0.0.1, real PostgreSQL, a real S3-compatible server.

- ``postgres_url``: a fresh database on the PostgreSQL server at 127.0.0.1:5432 (the test
  command starts that server when it is not running), dropped at the end of the session.
- ``s3``: moto's S3 server on a free loopback port, with credentials in the environment.
- ``start_server``: starts a labdeck server (uvicorn in a thread, port 0) on any settings;
  every server started is stopped at the end of the test.
- ``server``: one server per backend (``backend`` is "sqlite" or "postgres"), the same
  tests run against both: this is the tracking store's contract suite.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from labdeck.app import create_app
from labdeck.config import Settings

PG_HOST = os.environ.get("LABDECK_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LABDECK_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("LABDECK_TEST_PG_USER", "postgres")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests must never go through a proxy from the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"labdeck_test_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A database of its own for tests that need an empty one."""
    name = f"labdeck_test_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class S3Server:
    endpoint: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def new_bucket(self) -> str:
        name = f"labdeck-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield S3Server(f"http://127.0.0.1:{port}")
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    settings: Settings
    app: Any
    thread: threading.Thread
    uvicorn: uvicorn.Server

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)


def start_labdeck(settings: Settings) -> RunningServer:
    # proto=IPPROTO_TCP, so that asyncio sets TCP_NODELAY on accepted connections (it checks
    # the protocol number); with proto 0 every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    port = sock.getsockname()[1]
    app = create_app(settings)
    config = uvicorn.Config(app, loop="asyncio", http="httptools", lifespan="on", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("labdeck server did not start")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", settings, app, thread, server)


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("labdeck"))
        server = start_labdeck(Settings.load(None, **overrides))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(backend: str, start_server: Callable[..., RunningServer], request: pytest.FixtureRequest) -> RunningServer:
    if backend == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
        return start_server(database={"url": url})
    return start_server()


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    """An httpx client on the MLflow REST API of ``server`` (base ``/api/2.0/mlflow``)."""
    with httpx.Client(base_url=server.url + "/api/2.0/mlflow", timeout=60) as client:
        yield client


@pytest.fixture
def mlflow_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[RunningServer], Any]:
    """Point the real ``mlflow`` client at a server; returns an ``MlflowClient``."""

    def point(server: RunningServer) -> Any:
        import mlflow

        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        mlflow.set_tracking_uri(server.url)
        return mlflow.MlflowClient(server.url)

    return point


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    Path(os.environ.setdefault("MPLCONFIGDIR", "/tmp/labdeck-mpl")).mkdir(parents=True, exist_ok=True)
