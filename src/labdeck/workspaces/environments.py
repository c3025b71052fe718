"""Workspace environments: their definitions (settings), their local builds and their images.

An environment is a Python virtual environment that a workspace's JupyterLab runs from. Each
definition (Python, packages or the lock file's content, Spark, the envkit's files) is built
once with uv, in place, into a folder of its own named by its digest,
``<envs_dir>/<name>-<digest[:12]>``, and reused: the build writes ``labdeck-environment.json``
there last, so a folder without it is half built and is built again. ``<envs_dir>/<name>`` is
a symbolic link to the current build. A new definition never pulls the floor from under a
running workspace: its build goes to a new folder, and an older build is removed only once
no process runs from it (``remove_unused``, after each build). A real folder at
``<envs_dir>/<name>`` is a build from before builds had folders of their own: it is used
while its marker matches, and it gives way to the link like any older build.
Beside them, ``<name>.log`` holds the output of the last build, ``<name>.lock`` keeps two
processes from building it at once, and ``<name>.failed.json`` records a failed build until
the next one.

It also owns Spark's local set-up for a workspace (``spark_settings``) and the Dockerfile of an
environment's image for Kubernetes (``dockerfile``). Starting workspaces is the hub's job;
deciding who may use an environment is here (``visible_to``), checking who asks is auth's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import labdeck.workspaces
from labdeck.config import EnvironmentSettings, Settings, WorkspaceSettings
from labdeck.errors import InvalidParameter, InvalidState, NotFound

log = logging.getLogger(__name__)

ENVKIT_DIR = Path(labdeck.workspaces.__file__).parent / "envkit"
MARKER = "labdeck-environment.json"
# What every environment holds besides its own packages: what a workspace runs.
WORKSPACE_PACKAGES = ("jupyterlab>=4", "ipykernel")
LOG_TAIL_LINES = 20
DIGEST_CHARS = 12  # of a definition's digest, in the name of its build's folder
# Bumped when the way environments are built changes, so that older builds are redone.
BUILD_FORMAT = 2


class BuildState(StrEnum):
    NOT_BUILT = "not_built"
    BUILDING = "building"
    BUILT = "built"
    FAILED = "failed"


@dataclass(frozen=True)
class BuiltEnvironment:
    name: str
    path: Path  # the build's own folder, which stays while anything runs from it
    python: Path  # its interpreter: what JupyterLab and the kernels run with
    digest: str  # of the definition it was built from


@dataclass(frozen=True)
class EnvironmentStatus:
    name: str
    state: BuildState
    message: str | None  # why it is not built, or why the build failed
    log_tail: list[str]  # the last lines of the build's log, while building or after a failure
    built_at: int | None  # seconds since the epoch


class EnvironmentBuildFailed(InvalidState):
    """The build of an environment failed; the message ends with the tail of its log."""


class EnvironmentBuilder:
    """Builds environments into ``envs_dir`` with uv, each once, and tells their state."""

    def __init__(self, envs_dir: Path, *, uv_cache_dir: Path | None = None, compile_bytecode: bool = True):
        """``compile_bytecode=False`` leaves compiling to the first imports: quicker builds of
        environments that are thrown away, slower first starts of those that are used."""
        self.envs_dir = Path(envs_dir).expanduser()
        self.uv_cache_dir = Path(uv_cache_dir).expanduser() if uv_cache_dir else None
        self.compile_bytecode = compile_bytecode
        # Builds in flight, per event loop (asyncio tasks belong to one loop): concurrent
        # ensure() calls of one definition await the same build.
        self._inflight: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Task[BuiltEnvironment]]
        ] = weakref.WeakKeyDictionary()

    @classmethod
    def from_settings(cls, settings: Settings) -> EnvironmentBuilder:
        workspaces = settings.workspaces
        return cls(workspaces.envs_dir or settings.data_dir / "envs", uv_cache_dir=workspaces.uv_cache_dir)

    def path(self, name: str) -> Path:
        """The folder of the current build: where ``<envs_dir>/<name>`` points."""
        pointer = self._pointer(name)
        if pointer.is_symlink():
            return self.envs_dir / os.readlink(pointer)
        if not pointer.is_dir():
            return pointer  # nothing built yet
        # an old build in the link's place, kept while in use: the newest build is current
        complete = [build for build in self._builds(name) if _digest_of(build)]
        return max(complete, key=lambda build: _built_at(build) or 0, default=pointer)

    def build_path(self, name: str, digest: str) -> Path:
        return self.envs_dir / f"{name}-{digest[:DIGEST_CHARS]}"

    def log_path(self, name: str) -> Path:
        return self.envs_dir / f"{name}.log"

    def status(self, env: EnvironmentSettings) -> EnvironmentStatus:
        try:
            digest = definition_digest(env)
        except InvalidParameter as exc:
            return EnvironmentStatus(env.name, BuildState.NOT_BUILT, exc.message, [], None)
        built = self._complete_build(env.name, digest)
        if built is not None:
            return EnvironmentStatus(env.name, BuildState.BUILT, None, [], _built_at(built))
        marker = _read_json(self.path(env.name) / MARKER)
        if self._being_built(env.name):
            return EnvironmentStatus(env.name, BuildState.BUILDING, None, self._log_tail(env.name), None)
        failure = _read_json(self._failure_path(env.name))
        if failure is not None and failure.get("digest") == digest:
            return EnvironmentStatus(
                env.name, BuildState.FAILED, failure.get("message"), self._log_tail(env.name), None
            )
        message = "its definition changed since it was built" if marker is not None else None
        return EnvironmentStatus(env.name, BuildState.NOT_BUILT, message, [], None)

    async def ensure(self, env: EnvironmentSettings) -> BuiltEnvironment:
        """The environment, built first if it is not (in a thread: the event loop goes on)."""
        loop = asyncio.get_running_loop()
        inflight = self._inflight.setdefault(loop, {})
        key = (env.name, env.model_dump_json())
        task = inflight.get(key)
        if task is None:
            task = loop.create_task(asyncio.to_thread(self.build, env))
            inflight[key] = task
            task.add_done_callback(lambda done: _forget(inflight, key, done))
        # shield: a caller that gives up must not cancel the build the others wait for
        return await asyncio.shield(task)

    def build(self, env: EnvironmentSettings, *, on_line: Callable[[str], None] | None = None) -> BuiltEnvironment:
        """Build the environment unless it is built already; ``on_line`` gets uv's output."""
        digest = definition_digest(env)
        built = self._reusable(env.name, digest)
        if built is not None and built.path == self.path(env.name):
            return built
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        with self._build_lock(env.name):
            # Another process may have built it while this one waited for the lock; or it is
            # a definition that came back, whose build is current again.
            built = self._reusable(env.name, digest)
            if built is not None:
                self._point_to(env.name, built.path)
                return built
            return self._build(env, digest, on_line or (lambda line: None))

    def remove_unused(self, name: str) -> list[Path]:
        """Remove the builds of ``name`` other than the current one that no process runs from;
        the folders removed. A build something might still use is kept."""
        with self._build_lock(name):
            return self._remove_unused(name)

    def _build(self, env: EnvironmentSettings, digest: str, on_line: Callable[[str], None]) -> BuiltEnvironment:
        # Built in its own folder, never over another build: the previous one stays whole
        # for the workspaces still running from it, and a failed build leaves it untouched.
        path = self.build_path(env.name, digest)
        self._failure_path(env.name).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)  # what a build that was killed left
        started = time.monotonic()
        with self.log_path(env.name).open("w", encoding="utf-8") as log_file:

            def emit(line: str) -> None:
                log_file.write(line + "\n")
                log_file.flush()
                on_line(line)

            emit(f"labdeck: building environment {env.name!r} for {path}")
            if env.spark and shutil.which("java") is None:
                emit("labdeck: warning: no `java` on PATH; Spark needs Java 17 or 21 to start")
            interpreter, python = python_request(env), path / "bin" / "python"
            steps = [
                # only-system (and UV_PYTHON_DOWNLOADS=never): a Python of this machine, never a download
                ["venv", str(path), "--python", interpreter, "--python-preference", "only-system"],
                ["pip", "install", "--python", str(python), *install_arguments(env)],
            ]
            if self.compile_bytecode:  # now, rather than while the first workspace starts
                steps[1].insert(2, "--compile-bytecode")
            for step in steps:
                status = self._run_uv(step, emit)
                if status != 0:
                    emit(f"labdeck: `uv {step[0]}` exited with status {status}")
                    shutil.rmtree(path, ignore_errors=True)
                    raise self._failed(env.name, digest, f"uv {step[0]} exited with status {status}")
            marker = {"name": env.name, "digest": digest, "built_at": int(time.time()), "definition": _definition(env)}
            _write_json_atomically(path / MARKER, marker)
            self._point_to(env.name, path)
            emit(f"labdeck: built {env.name!r} in {time.monotonic() - started:.1f} s")
            for removed in self._remove_unused(env.name):
                emit(f"labdeck: removed the unused build {removed}")
        log.info("environment built", extra={"environment": env.name, "path": str(path)})
        return BuiltEnvironment(env.name, path, path / "bin" / "python", digest)

    def _point_to(self, name: str, path: Path) -> None:
        """Make ``path`` the current build: the link is replaced in one step. A real folder
        in the link's place (an old build) stays until ``_remove_unused`` may remove it."""
        pointer = self._pointer(name)
        if pointer.is_dir() and not pointer.is_symlink():
            return
        fresh = self.envs_dir / f".{name}.link"
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(path.name)  # relative: the folder of builds may move as a whole
        fresh.replace(pointer)

    def _builds(self, name: str) -> list[Path]:
        """The folders of ``name``'s builds, complete or not."""
        own = re.compile(rf"{re.escape(name)}-[0-9a-f]{{{DIGEST_CHARS}}}")
        found = self.envs_dir.glob(f"{name}-*")
        return [p for p in found if own.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]

    def _remove_unused(self, name: str) -> list[Path]:
        current = self.path(name)
        old = [build for build in self._builds(name) if build != current]
        pointer = self._pointer(name)
        legacy = pointer.is_dir() and not pointer.is_symlink() and pointer != current
        used = _used_folders([*old, pointer])
        if pointer in used:
            return []  # something runs through the link: which build it uses is not known
        removed = [folder for folder in old if folder not in used]
        if legacy:
            removed.append(pointer)
        for folder in removed:
            shutil.rmtree(folder)
            log.info("unused build removed", extra={"environment": name, "path": str(folder)})
        if legacy and current != pointer:
            self._point_to(name, current)
        return removed

    def _run_uv(self, arguments: list[str], emit: Callable[[str], None]) -> int:
        """Run one uv command, each line of its output to ``emit``; its exit status."""
        import uv

        environ = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
        environ.pop("VIRTUAL_ENV", None)  # the server's own venv is not the one being built
        if self.uv_cache_dir is not None:
            environ["UV_CACHE_DIR"] = str(self.uv_cache_dir)
        emit("$ uv " + shlex.join(arguments))
        try:
            process = subprocess.Popen(
                [uv.find_uv_bin(), *arguments],
                cwd=self.envs_dir,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            emit(f"labdeck: cannot run uv: {exc}")
            return -1
        with process:
            assert process.stdout is not None
            for line in process.stdout:
                emit(line.rstrip("\n"))
        return process.returncode

    def _failed(self, name: str, digest: str, reason: str) -> EnvironmentBuildFailed:
        tail = self._log_tail(name)
        headline = f"environment {name!r} failed to build ({reason}); the end of {self.log_path(name)}:"
        message = "\n".join([headline, *tail])
        record = {"digest": digest, "message": message, "failed_at": int(time.time())}
        _write_json_atomically(self._failure_path(name), record)
        log.warning("environment build failed", extra={"environment": name, "reason": reason})
        return EnvironmentBuildFailed(message, details={"environment": name, "log_tail": tail})

    def _reusable(self, name: str, digest: str) -> BuiltEnvironment | None:
        path = self._complete_build(name, digest)
        if path is None:
            return None
        return BuiltEnvironment(name, path, path / "bin" / "python", digest)

    def _complete_build(self, name: str, digest: str) -> Path | None:
        """The folder of the complete build of ``digest``, if there is one."""
        for path in (self.build_path(name, digest), self._pointer(name)):
            if not path.is_symlink() and _digest_of(path) == digest:
                return path
        return None

    def _pointer(self, name: str) -> Path:
        return self.envs_dir / name

    def _failure_path(self, name: str) -> Path:
        return self.envs_dir / f"{name}.failed.json"

    def _lock_path(self, name: str) -> Path:
        return self.envs_dir / f"{name}.lock"

    @contextlib.contextmanager
    def _build_lock(self, name: str) -> Iterator[None]:
        with self._lock_path(name).open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _being_built(self, name: str) -> bool:
        """Whether a build holds the lock (in this process or another)."""
        try:
            lock_file = self._lock_path(name).open("r")
        except FileNotFoundError:
            return False
        with lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            return False

    def _log_tail(self, name: str) -> list[str]:
        try:
            lines = self.log_path(name).read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return lines[-LOG_TAIL_LINES:]


def _digest_of(build: Path) -> str | None:
    marker = _read_json(build / MARKER)
    return marker.get("digest") if marker is not None else None


def _built_at(build: Path) -> int | None:
    marker = _read_json(build / MARKER)
    return marker.get("built_at") if marker is not None else None


def _used_folders(folders: list[Path]) -> set[Path]:
    """Those of ``folders`` some process runs from: its program, an argument of its command
    line (a workspace's ``<build>/bin/python``) or a file it maps (a library it imported) is
    inside. Without /proc, every folder counts as used."""
    proc = Path("/proc")
    if not (proc / "self" / "cmdline").exists():
        return set(folders)
    names = {folder: _names(folder) for folder in folders}
    used: set[Path] = set()
    for process in proc.iterdir():
        if process.name.isdigit() and len(used) < len(folders):
            seen = _paths_of(process)
            for folder, (exact, inside) in names.items():
                if any(path in exact or path.startswith(inside) for path in seen):
                    used.add(folder)
    return used


def _names(folder: Path) -> tuple[set[str], tuple[str, ...]]:
    """The folder's names (as given, and with the links above it resolved; never the link
    ``<name>`` itself resolved, which would be the current build), and what paths inside
    start with."""
    names = {str(folder), os.path.join(os.path.realpath(folder.parent), folder.name)}
    return names, tuple(name + "/" for name in names)


def _paths_of(process: Path) -> list[str]:
    """What a process runs from: its program, its arguments and the files it maps. A part
    that cannot be read (another user's process, or one that ended) adds nothing; cmdline
    is readable for every process."""
    paths: list[str] = []
    with contextlib.suppress(OSError):
        paths += (process / "cmdline").read_bytes().decode(errors="replace").split("\0")
    with contextlib.suppress(OSError):
        paths.append(os.readlink(process / "exe"))
    with contextlib.suppress(OSError):
        for line in (process / "maps").read_text(errors="replace").splitlines():
            mapped = line.split(maxsplit=5)
            if len(mapped) == 6 and mapped[5].startswith("/"):
                paths.append(mapped[5])
    return paths


def _forget(inflight: dict, key: tuple[str, str], task: asyncio.Task) -> None:
    if inflight.get(key) is task:
        del inflight[key]
    if not task.cancelled():
        task.exception()  # retrieved, so a failure nobody awaited any more is not reported twice


def python_request(env: EnvironmentSettings) -> str:
    """The ``--python`` of uv: the environment's, or the interpreter this server runs on.

    A virtual environment's interpreter stands for its base one (uv resolves it so too);
    naming the base keeps the digest the same across checkouts with venvs of their own.
    """
    if env.python:
        return env.python
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def install_arguments(env: EnvironmentSettings) -> list[str]:
    """What ``uv pip install`` gets: the workspace packages, the envkit, then the environment's."""
    own = ["-r", str(_lock_file(env))] if env.lock_file else list(env.packages)
    return [*WORKSPACE_PACKAGES, str(ENVKIT_DIR), *own]


def _lock_file(env: EnvironmentSettings) -> Path:
    assert env.lock_file is not None
    path = env.lock_file.expanduser().absolute()
    if not path.is_file():
        raise InvalidParameter(f"the lock file of environment {env.name!r}, {path}, does not exist")
    return path


def _definition(env: EnvironmentSettings) -> dict:
    """What a build depends on; its digest is the build's identity."""
    own: dict[str, str | list[str]]
    if env.lock_file:
        own = {"lock_file_sha256": hashlib.sha256(_lock_file(env).read_bytes()).hexdigest()}
    else:
        own = {"packages": list(env.packages)}
    return {
        "format": BUILD_FORMAT,
        "python": python_request(env),
        "workspace_packages": list(WORKSPACE_PACKAGES),
        **own,
        "spark": env.spark,
        "envkit_sha256": envkit_digest(),
    }


def definition_digest(env: EnvironmentSettings) -> str:
    return hashlib.sha256(json.dumps(_definition(env), sort_keys=True).encode()).hexdigest()


def envkit_digest() -> str:
    """Of the envkit's source files: an edited identity provider is a new environment."""
    digest = hashlib.sha256()
    for path in sorted(ENVKIT_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(ENVKIT_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomically(path: Path, data: dict) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def visible_to(env: EnvironmentSettings, teams: set[str], is_admin: bool) -> bool:
    """Whether someone in ``teams`` may use ``env``: an environment naming no team is everyone's."""
    return is_admin or not env.teams or bool(teams.intersection(env.teams))


def find(settings: WorkspaceSettings, name: str) -> EnvironmentSettings:
    for env in settings.environments:
        if env.name == name:
            return env
    known = ", ".join(env.name for env in settings.environments) or "none"
    raise NotFound(f"there is no environment named {name!r}; the known ones: {known}")


# Spark as a notebook wants it, here and in a pod: the default of 200 shuffle partitions
# makes notebook-sized data slow, the progress bar goes to the kernel's stderr and clutters
# the notebook, Arrow speeds up toPandas().
NOTEBOOK_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def spark_settings(
    conf_dir: Path, *, ui_port: int, ui_proxy_base: str, python: str | Path = "python", master: str = "local[*]"
) -> dict[str, str]:
    """Write ``<conf_dir>/spark-defaults.conf`` for a workspace; the environment variables it needs.

    With them, a plain ``SparkSession.builder.getOrCreate()`` in the workspace starts a driver
    bound to loopback whose UI listens on ``ui_port`` and writes its links under
    ``ui_proxy_base`` (where labdeck's proxy forwards it). ``python`` is the environment's
    interpreter, which Spark's Python workers must run too.
    """
    conf = {
        "spark.master": master,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.port": str(ui_port),
        "spark.ui.proxyBase": ui_proxy_base.rstrip("/"),
        **NOTEBOOK_SPARK_CONF,
    }
    conf_dir = Path(conf_dir)
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text("".join(f"{key} {value}\n" for key, value in conf.items()))
    return {
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_DRIVER_PYTHON": str(python),
    }


def image_python_version(env: EnvironmentSettings) -> str:
    """``3.11`` out of ``3.11``, ``python3.11`` or ``/usr/bin/python3.11``; else this server's."""
    match = re.search(r"(\d+\.\d+)", env.python or "")
    return match.group(1) if match else "{}.{}".format(*sys.version_info[:2])


# The base of a workspace image per Python version: the exact patch release and the digest of
# its multi-platform index (from docker-library/repo-info), so that an image rebuilt later is
# built on the same bytes. Bump a line deliberately, e.g. after
# `docker buildx imagetools inspect python:3.11.15-slim-bookworm`.
PYTHON_BASE_IMAGES = {
    "3.10": "python:3.10.21-slim-bookworm@sha256:673f009e3763f8d03953b525c89b03a9ee8ca315bf6b8006979b5c4a4e2e4d68",
    "3.11": "python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3",
    "3.12": "python:3.12.14-slim-bookworm@sha256:0f5b26b9518d002b6173fd61daad821fa340635ebfec5bba471013f9ca114579",
    "3.13": "python:3.13.14-slim-bookworm@sha256:67a1e1f215ccda113cfc024e8639049257e88f273898f595b61476d128d387e8",
    "3.14": "python:3.14.7-slim-bookworm@sha256:3299f3062a4f3da96c403bfeec3f042768c0bf8a72eee6dd5d90e3a1368ff334",
}
# uv inside the image, pinned like the base: the same Dockerfile builds the same tools.
IMAGE_UV_VERSION = "0.13.9"


def python_base_image(env: EnvironmentSettings) -> str:
    """The pinned ``FROM`` of ``env``'s image; a Python without a pinned base is refused."""
    version = image_python_version(env)
    try:
        return PYTHON_BASE_IMAGES[version]
    except KeyError:
        known = ", ".join(PYTHON_BASE_IMAGES)
        raise InvalidParameter(
            f"environment {env.name!r} asks for Python {version}, which has no pinned base image; "
            f"the known ones: {known}"
        ) from None


def dockerfile(env: EnvironmentSettings) -> str:
    """The Dockerfile of ``env``'s workspace image; its build context holds ``envkit/`` (and
    ``requirements.txt``, a copy of the lock file, when the environment has one). Its base is
    pinned by version and digest (``PYTHON_BASE_IMAGES``) and it runs as uid 1000, not root."""
    venv = "/opt/labdeck-env"
    staging = "/tmp/labdeck-build"
    copy_lock = ""
    own = list(env.packages)
    if env.lock_file:
        own = ["-r", f"{staging}/requirements.txt"]
        copy_lock = f"COPY requirements.txt {staging}/requirements.txt\n"
    uv_pip_install = ["uv", "pip", "install", "--no-cache", "--compile-bytecode", "--python", f"{venv}/bin/python"]
    install = [*uv_pip_install, *WORKSPACE_PACKAGES, f"{staging}/envkit", *own]
    # Bookworm: the last Debian release with Java 17, which Spark 4 supports.
    java = (
        "RUN apt-get update \\\n"
        " && apt-get install -y --no-install-recommends openjdk-17-jre-headless \\\n"
        " && rm -rf /var/lib/apt/lists/*\n"
        if env.spark
        else ""
    )
    described = ": " + " ".join(env.description.split()) if env.description else ""  # one comment line
    return f"""\
# The workspace image of labdeck's environment {env.name!r}{described}
# Written by `labdeck envs dockerfile {env.name} --context DIR`; build it with `docker build DIR`.
FROM {python_base_image(env)}

{java}RUN pip install --no-cache-dir "uv=={IMAGE_UV_VERSION}"
ENV UV_PYTHON_DOWNLOADS=never
RUN uv venv {venv} --python /usr/local/bin/python --python-preference only-system
COPY envkit {staging}/envkit
{copy_lock}RUN {shlex.join(install)} \\
 && rm -rf {staging}

RUN useradd --uid 1000 --create-home --home-dir /home/jovyan --shell /bin/bash jovyan
ENV PATH={venv}/bin:$PATH \\
    VIRTUAL_ENV={venv} \\
    HOME=/home/jovyan \\
    LABDECK_ENVIRONMENT={env.name}
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
# Kubernetes replaces this with labdeck's own command line (base URL, identity provider).
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser"]
"""
