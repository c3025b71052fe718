"""``labdeck serve``: fetch a model, load it in one or more worker processes, and answer
on REST (V2, Seldon v1, MLflow scoring, /metrics) and gRPC (V2).

Start-up order: the model's files are fetched once, in the parent; the HTTP port is bound
in the parent and shared by every worker (the kernel spreads connections), the gRPC port
is bound by each worker with SO_REUSEPORT. Each worker loads the model once and warms it
up; once every worker has, each reports ready (``/v2/health/ready``); they answer liveness
meanwhile. SIGTERM drains in-flight requests before exiting 0. A model that cannot be
fetched or loaded makes the server exit 1 with the reason in plain words.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from labdeck.errors import LabdeckError
from labdeck.model_uri import parse_model_uri
from labdeck.serving.dataplane import DataPlane
from labdeck.serving.fetch import fetch
from labdeck.serving.http import HttpServer
from labdeck.serving.metrics import ServingMetrics
from labdeck.serving.rest import ServingApp
from labdeck.serving.runtime import RuntimeSettings, choose

log = logging.getLogger("labdeck.serving")

LOAD_FAILED = 1
# how long a stopping server lets requests in flight finish
GRACE_SECONDS = 30


@dataclass
class ServeOptions:
    uri: str
    host: str = "127.0.0.1"
    port: int = 9000
    grpc_port: int | None = 9001
    name: str | None = None
    version: str | None = None
    workers: int = 1
    runtime: str | None = None
    method: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    max_batch_size: int = 0
    max_batch_time: float = 0.005
    max_body_mb: float = 64
    tracking_uri: str | None = None
    cache_dir: Path = Path("~/.cache/labdeck/models")
    access_log: bool = False
    # "onnx": convert scikit-learn/XGBoost/LightGBM models at load, verified, else the original (compile.py)
    compile: str | None = None


def _model_name(options: ServeOptions) -> str:
    """The name on the V2 paths: ``--name``, else what the URI names (the registered model,
    the logged model, the last part of a path less any archive suffix), never the name of
    the cache folder a download landed in."""
    if options.name:
        return options.name
    uri = parse_model_uri(options.uri)
    if uri.name or uri.model_id:
        return uri.name or uri.model_id or "model"
    parts = [p for p in (uri.path if uri.kind == "run" else urlparse(uri.raw).path).split("/") if p and p != "."]
    if len(parts) > 1 and parts[-1] == "artifacts" and parts[-2].startswith("m-"):
        parts.pop()  # an MLflow 3 logged model's files: .../models/m-<id>/artifacts
    tail = parts[-1] if parts else ""
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        tail = tail.removesuffix(suffix)
    return tail or "model"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Readiness:
    """Which workers have loaded the model, in memory the forked workers share (one flag
    each, so no lock): every worker reports ready only once all of them are."""

    def __init__(self, workers: int):
        self.flags = multiprocessing.RawArray("b", workers)

    def mark(self, index: int) -> None:
        self.flags[index] = 1

    def everyone(self) -> bool:
        return all(self.flags)


class Worker:
    """One process's server: the data plane, the HTTP app and the gRPC server."""

    def __init__(
        self,
        options: ServeOptions,
        model_dir: Path,
        version: str | None,
        sock: socket.socket,
        readiness: tuple[Readiness, int] | None = None,
    ):
        self.options = options
        self.sock = sock
        self.readiness = readiness
        name = _model_name(options)
        runtime_class = choose(model_dir, options.runtime)
        settings = RuntimeSettings(name, options.version or version, options.method, options.parameters)
        self.plane = DataPlane(
            runtime_class(model_dir, settings),
            ServingMetrics(name),
            max_batch_size=options.max_batch_size,
            max_batch_time=options.max_batch_time,
            compile=options.compile,
        )
        if readiness is not None:
            self.plane.peers_ready = readiness[0].everyone
        self.app = ServingApp(self.plane, max_body_bytes=int(options.max_body_mb * 1024 * 1024), log_requests=options.access_log)
        self.exit_code = 0
        self.http = HttpServer(self.app, max_body=int(options.max_body_mb * 1024 * 1024), keep_alive_timeout=30)
        self.stopping: asyncio.Event | None = None

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT (or a model that cannot load), then drain: the HTTP
        side lets requests in flight finish, then gRPC does, then the model is unloaded."""
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        grpc_server = None
        if self.options.grpc_port is not None:
            from labdeck.serving.grpc_server import build_server

            grpc_server = build_server(self.plane, int(self.options.max_body_mb * 1024 * 1024))
            await grpc_server.start(self.options.host, self.options.grpc_port)
        loading = asyncio.create_task(self._load())
        try:
            await self.http.start([self.sock])
            await self.stopping.wait()
            await self.http.shutdown(timeout=GRACE_SECONDS)
        finally:
            loading.cancel()
            if grpc_server is not None:
                await grpc_server.stop(grace=10)
            await self.plane.stop()
        return self.exit_code

    async def _load(self) -> None:
        try:
            await self.plane.start()
            if self.readiness is not None:
                self.readiness[0].mark(self.readiness[1])
            log.info("model ready", extra={"model": self.plane.name, "pid": os.getpid()})
        except Exception as exc:  # any loader error ends the server with the reason
            reason = exc.message if isinstance(exc, LabdeckError) else f"{type(exc).__name__}: {exc}"
            print(f"labdeck serve: cannot load the model {self.options.uri}: {reason}", file=sys.stderr)
            self.exit_code = LOAD_FAILED
            assert self.stopping is not None
            self.stopping.set()


def _worker_main(
    options: ServeOptions,
    model_dir: Path,
    version: str | None,
    sock: socket.socket,
    readiness: tuple[Readiness, int] | None = None,
) -> int:
    import uvloop

    uvloop.install()
    try:
        worker = Worker(options, model_dir, version, sock, readiness)
    except LabdeckError as error:
        print(f"labdeck serve: cannot load the model {options.uri}: {error.message}", file=sys.stderr)
        return LOAD_FAILED
    return asyncio.run(worker.run())


def serve(options: ServeOptions) -> int:
    """Run the server until it is told to stop; the process exit code."""
    try:
        fetched = asyncio.run(fetch(options.uri, options.cache_dir.expanduser(), options.tracking_uri))
    except LabdeckError as error:
        print(f"labdeck serve: cannot fetch the model {options.uri}: {error.message}", file=sys.stderr)
        return LOAD_FAILED
    sock = bind(options.host, options.port)
    print(f"labdeck serve: {options.uri} from {fetched.path}, http://{options.host}:{sock.getsockname()[1]}"
          + (f", gRPC {options.host}:{options.grpc_port}" if options.grpc_port is not None else ""), file=sys.stderr)
    if options.workers <= 1:
        return _worker_main(options, fetched.path, fetched.version, sock)
    return _supervise(options, fetched.path, fetched.version, sock)


def _share_metrics() -> None:
    """In a forked worker: count into PROMETHEUS_MULTIPROC_DIR. prometheus_client picks its
    value store when first imported, which happened before the fork (and before the
    folder was set), so pick again."""
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def _supervise(options: ServeOptions, model_dir: Path, version: str | None, sock: socket.socket) -> int:
    """Fork the workers and wait; SIGTERM/SIGINT go to every worker."""
    shared = tempfile.mkdtemp(prefix="labdeck-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
    readiness = Readiness(options.workers)
    children = []
    for index in range(options.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _share_metrics()
                code = _worker_main(options, model_dir, version, sock, (readiness, index))
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for child in children:
        _pid, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and code != -signal.SIGTERM and code != -signal.SIGINT:
            worst = worst or code
            forward(signal.SIGTERM, None)
    import shutil

    shutil.rmtree(shared, ignore_errors=True)
    return worst
