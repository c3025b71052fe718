"""The one description of something labdeck runs, and what a backend reports about it.

A ``Workload`` is a replica template (a command, or an image on a cluster; environment,
named ports, a readiness check, resources) plus how many replicas to keep. Its
``revision`` names the template: when it changes, a backend replaces the replicas one at
a time, each new one ready before an old one stops, and stops the rollout when new
replicas cannot become ready. States are explicit enums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ReplicaState(StrEnum):
    STARTING = "STARTING"  # started, not ready yet
    READY = "READY"  # answering its readiness check: may take traffic
    STOPPING = "STOPPING"  # draining before it exits
    CRASHED = "CRASHED"  # exited or stopped answering; restarted after a back-off


class RolloutState(StrEnum):
    PROGRESSING = "PROGRESSING"  # replicas of the current revision are being started
    COMPLETE = "COMPLETE"  # every replica runs the current revision and is ready
    FAILED = "FAILED"  # replicas of the current revision could not become ready


@dataclass(frozen=True)
class Resources:
    """Requests and limits, in Kubernetes' notation ("500m", "1Gi"); the local backend
    records them but does not enforce them."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None


@dataclass(frozen=True)
class Workload:
    """A replica template and how many replicas to keep.

    ``program`` is what runs, ``args`` the command line after it. An empty ``program`` means
    labdeck itself: on this machine the local backend runs ``<python> -m labdeck <args>``,
    on a cluster the image's entrypoint gets the arguments. ``{port:<name>}`` in an argument
    is replaced by the port of that name (a free loopback port locally,
    ``container_ports[name]`` in a pod) and ``{host}`` by the address to listen on (loopback
    locally, every address in a pod). The first port takes the traffic and answers the
    readiness check at ``readiness_path``.
    """

    name: str
    revision: str
    args: tuple[str, ...]
    ports: tuple[str, ...] = ("http",)
    container_ports: dict[str, int] = field(default_factory=dict)
    readiness_path: str = "/v2/health/ready"
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    resources: Resources = Resources()
    labels: dict[str, str] = field(default_factory=dict)
    # how long a new replica may take to become ready before the rollout is called failed
    ready_deadline_s: float = 120.0
    # folders each replica writes and may lose when it stops (a model cache): an emptyDir
    # in a pod, whose root filesystem is read-only; plain folders on this machine
    scratch: tuple[str, ...] = ()
    # what runs instead of labdeck, e.g. ("/envs/base/bin/python", "-m", "jupyterlab")
    program: tuple[str, ...] = ()
    workdir: str | None = None  # where a replica runs; None: wherever the backend runs
    # how long a replica may take to exit after SIGTERM before it is killed; None: the backend's default
    stop_grace_s: float | None = None
    # whether a replica sees the server's own environment variables besides ``env``: model
    # servers do (the artifact store's credentials); a user's notebook must not
    inherit_env: bool = True


@dataclass(frozen=True)
class Replica:
    replica_id: str
    revision: str
    state: ReplicaState
    endpoints: dict[str, str]  # port name -> "host:port"
    started_at: int  # ms
    restarts: int = 0
    pid: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class WorkloadStatus:
    name: str
    revision: str  # the revision the backend is converging to
    desired: int
    replicas: tuple[Replica, ...]
    rollout: RolloutState
    message: str | None = None  # why a rollout failed, with the replica's last words

    @property
    def ready(self) -> tuple[Replica, ...]:
        return tuple(r for r in self.replicas if r.state is ReplicaState.READY)

    @property
    def updated_ready(self) -> int:
        return sum(1 for r in self.ready if r.revision == self.revision)
