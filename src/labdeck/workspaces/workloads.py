"""How a workspace server becomes a ``Workload``: JupyterLab's command line, its folders,
its environment variables and ports, decided in one place; and the names servers may have.

- Program: the environment's own interpreter, ``<env>/bin/python -m jupyterlab``, on a
  loopback port, with base URL ``/user/<name>/[<server>/]`` (the proxy forwards paths
  unchanged), the user's home as its root and working folder, the envkit's identity
  provider (it trusts only requests carrying the server's secret), and nothing that goes
  online (news, extension manager, update checks).
- Folders: the home ``<data-dir>/homes/<name>`` is shared by the user's servers and
  survives them; Jupyter's runtime, data and config folders are per server, under
  ``<data-dir>/workspaces/<name>/<server or _default>/`` (no shared cookie secret).
- Environment: only what is set here, never the labdeck server's own variables (its
  secrets must not be readable from a notebook): the secret, the environment and
  workspace names (MLflow runs are tagged with them), MLflow's tracking URI and the
  user's token, Spark's settings in a Spark environment.

Nothing here touches storage or a compute backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from labdeck.compute.workload import Resources, Workload
from labdeck.config import EnvironmentSettings, WorkspaceSettings
from labdeck.errors import InvalidParameter
from labdeck.workspaces.entities import base_url, label
from labdeck.workspaces.environments import BuiltEnvironment, spark_settings

WORKLOAD_PREFIX = "ws-"  # workspaces' workloads, among everything a backend runs
IDENTITY_PROVIDER = "labdeck_workspace.identity.LabdeckIdentityProvider"
SECRET_ENV = "LABDECK_WORKSPACE_SECRET"
JUPYTER_PORT = "http"
SPARK_UI_PORT = "spark-ui"
MAX_SERVER_NAME = 32
SERVER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
# The first path segments JupyterLab and its usual extensions answer under a base URL: a
# server of that name would hide them (/user/alice/api/... must reach alice's default server).
RESERVED_SERVER_NAMES = frozenset(
    {
        "api", "auth", "console", "custom", "doc", "edit", "extensions", "files", "hub", "kernels",
        "kernelspecs", "lab", "login", "logout", "lsp", "metrics", "nbclassic", "nbconvert",
        "nbextensions", "notebook", "notebooks", "spark-ui", "static", "terminals", "tree",
        "user", "view", "voila",
    }
)
# Variables of the server's environment a notebook gets too: where programs are, the
# language and time zone, Java for Spark. Nothing that may hold a secret.
PASSED_ON = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "JAVA_HOME", "USER", "LOGNAME")


def check_server_name(name: str) -> None:
    """A named server's name: a DNS label of at most 32 characters that JupyterLab does not
    use itself."""
    if not SERVER_NAME.match(name):
        raise InvalidParameter(
            f"Invalid server name {name!r}: use 1 to {MAX_SERVER_NAME} lowercase letters, digits and '-' "
            "(starting and ending with a letter or digit)."
        )
    if name in RESERVED_SERVER_NAMES:
        raise InvalidParameter(f"Invalid server name {name!r}: JupyterLab uses /user/<name>/{name}/ itself.")


def check_user_name(user: str) -> None:
    """Usernames may hold dots: never one that is a path of its own (the home is a folder)."""
    if user in (".", "..") or "/" in user:
        raise InvalidParameter(f"User {user!r} cannot have a workspace: the name is not a folder name.")


def workload_name(user: str, server: str) -> str:
    """``ws-<user>`` or ``ws-<user>:<server>``, one name per server: usernames may hold '-'
    (and single sign-on ones almost anything), so the user is percent-encoded wherever it
    holds something else than letters, digits and ``_.-~@+``; that leaves ':' (never in a
    server name) to separate the two."""
    user_part = quote(user, safe="@+")
    return f"{WORKLOAD_PREFIX}{user_part}:{server}" if server else f"{WORKLOAD_PREFIX}{user_part}"


def home_dir(data_dir: Path, user: str) -> Path:
    return data_dir / "homes" / user


def jupyter_dir(data_dir: Path, user: str, server: str) -> Path:
    """The server's own Jupyter folders (runtime, data, config) and Spark's settings."""
    return data_dir / "workspaces" / user / (server or "_default")


def jupyterlab_args(url: str, root_dir: str, *, host: str = "{host}", port: str = f"{{port:{JUPYTER_PORT}}}") -> list[str]:
    """JupyterLab's flags, here and in a pod (``manifests``): served under ``url``, trusting
    only labdeck's proxy, offline. Never --allow-root: the caller adds it when it must."""
    return [
        "--no-browser",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # a port taken meanwhile is a failure to see, not another port
        f"--ServerApp.base_url={url}",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.identity_provider_class={IDENTITY_PROVIDER}",
        "--ServerApp.trust_xheaders=True",
        # users reach it by labdeck's public host name; it listens where it is told, and only
        # requests with the workspace's secret get in
        "--ServerApp.allow_remote_access=True",
        "--LabApp.news_url=None",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


def jupyterlab_workload(
    *,
    user: str,
    server: str,
    environment: EnvironmentSettings,
    built: BuiltEnvironment,
    data_dir: Path,
    settings: WorkspaceSettings,
    secret: str,
    tracking_uri: str,
    tracking_token: str | None,
) -> Workload:
    """The workload of one server; its revision is a digest of all of it, so the same
    inputs give the same workload (what a restarted hub adopts)."""
    url = base_url(user, server)
    home = home_dir(data_dir, user)
    own = jupyter_dir(data_dir, user, server)
    args = jupyterlab_args(url, str(home))
    if os.geteuid() == 0:
        args.append("--allow-root")
    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    env |= {
        "PATH": f"{built.path / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "VIRTUAL_ENV": str(built.path),
        "HOME": str(home),
        "JUPYTER_RUNTIME_DIR": str(own / "runtime"),
        "JUPYTER_DATA_DIR": str(own / "data"),
        "JUPYTER_CONFIG_DIR": str(own / "config"),
        SECRET_ENV: secret,
        "LABDECK_ENVIRONMENT": environment.name,
        "LABDECK_WORKSPACE": label(user, server),
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    if tracking_token is not None:
        env["MLFLOW_TRACKING_TOKEN"] = tracking_token
    ports = [JUPYTER_PORT]
    if environment.spark:
        ports.append(SPARK_UI_PORT)
        # The UI's port is known once JupyterLab runs: the hub writes it then (spark_conf).
        env |= spark_conf(data_dir, user, server, str(built.python), ui_port=0)
    workload = Workload(
        name=workload_name(user, server),
        revision="",
        args=tuple(args),
        ports=tuple(ports),
        readiness_path=f"{url}api",  # answers without credentials
        env=env,
        resources=Resources(
            cpu_request=environment.cpu_request,
            cpu_limit=environment.cpu_limit,
            memory_request=environment.memory_request,
            memory_limit=environment.memory_limit,
        ),
        ready_deadline_s=settings.start_timeout_s,
        program=(str(built.python), "-m", "jupyterlab"),
        workdir=str(home),
        stop_grace_s=settings.stop_grace_s,
        inherit_env=False,
    )
    return replace(workload, revision=_digest(to_json(workload)))


def spark_conf(data_dir: Path, user: str, server: str, python: str, *, ui_port: int) -> dict[str, str]:
    """Write the server's Spark settings (the UI on ``ui_port``, its links under
    ``<base_url>spark-ui/``); the environment variables pointing at them. Spark reads the
    file when a notebook starts a session, so it is written again with the real port once
    the server runs."""
    return spark_settings(
        jupyter_dir(data_dir, user, server) / "spark",
        ui_port=ui_port,
        ui_proxy_base=f"{base_url(user, server)}{SPARK_UI_PORT}/",
        python=python,
    )


def secret_of(workload: Workload) -> str:
    return workload.env[SECRET_ENV]


def to_json(workload: Workload) -> dict[str, Any]:
    return asdict(workload)


def from_json(data: dict[str, Any]) -> Workload:
    fields = dict(data)
    for name in ("args", "ports", "scratch", "program"):
        fields[name] = tuple(fields.get(name, ()))
    fields["resources"] = Resources(**fields.get("resources", {}))
    return Workload(**fields)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
