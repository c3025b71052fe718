"""``LocalProcessBackend``: workloads as processes on this machine (the embedded default).

Each replica is the workload's program (``<python> -m labdeck`` unless it names another)
with its arguments, on free loopback ports, in a session of its own so that it outlives a
restart of the server, its output appended to ``<log_dir>/<workload>/<replica>.log``.
Every replica is recorded (pid and the pid's start time, ports, state), so a restarted
server adopts what still runs instead of starting duplicates or leaving orphans.

Each ``apply`` observes (reaps exits, probes readiness) and then takes one step:

- a replica that dies after having been ready is restarted after a back-off (1 s doubling
  to 60 s);
- a new revision replaces replicas one at a time: one new replica starts, and an old one
  is stopped only once a new one is ready;
- a replica of the new revision that exits before it is ever ready, or misses its ready
  deadline, fails the revision: with old replicas still serving, no more replicas of it
  start (the controller rolls back); with none, it is retried with the back-off;
- a replica being stopped first leaves the pool of ready replicas (``DRAIN_S``, so the
  gateway stops choosing it), then gets SIGTERM (it finishes what it is answering), then
  SIGKILL after the workload's ``stop_grace_s`` (``STOP_GRACE_S`` by default), and so do
  the processes it started (they would otherwise outlive it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from labdeck.clock import now_ms
from labdeck.compute.backend import ComputeBackend
from labdeck.compute.store import ReplicaRow, ReplicaStore
from labdeck.compute.workload import Replica, ReplicaState, RolloutState, Workload, WorkloadStatus

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
DRAIN_S = 1.0
STOP_GRACE_S = 30.0
PROBE_TIMEOUT_S = 2.0
FAILED_PROBES_TO_UNREADY = 3
LAST_WORDS = 20  # log lines quoted when a replica fails


@dataclass
class _Process:
    row: ReplicaRow
    popen: subprocess.Popen[bytes] | None  # None when adopted from an earlier server
    ever_ready: bool = False
    failed_probes: int = 0
    restart_at: float = 0.0  # when a crashed replica starts again (monotonic)
    stop_at: float | None = None  # when a stopping replica gets SIGTERM (monotonic)
    term_sent_at: float | None = None

    @property
    def state(self) -> ReplicaState:
        return ReplicaState(self.row.state)


@dataclass
class _Tracked:
    spec: Workload | None = None
    processes: dict[str, _Process] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # revision -> why it failed


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pid_started(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, names it uniquely."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if fields[0] != "Z" else None  # field 22 of proc(5); zombies are dead


class LocalProcessBackend(ComputeBackend):
    name = "local"

    def __init__(self, store: ReplicaStore, log_dir: Path, *, python: str = sys.executable, host: str = "127.0.0.1"):
        self.store = store
        self.log_dir = log_dir
        self.python = python
        self.host = host
        self._tracked: dict[str, _Tracked] = {}
        self._http = httpx.AsyncClient(timeout=PROBE_TIMEOUT_S)
        self._adopted = False

    # ------------------------------------------------------------------ the interface

    async def start(self) -> None:
        if self._adopted:  # one backend serves several controllers: adopt once
            return
        self._adopted = True
        for row in await self.store.all():
            process = _Process(row, None)
            if not self._alive(process):
                if row.state == ReplicaState.STOPPING:
                    await self.store.remove(row.replica_id)
                    continue
                row.state, row.message = ReplicaState.CRASHED, "it had exited while the server was down"
            elif row.state == ReplicaState.READY:
                process.ever_ready = True  # probed again before it is trusted with traffic
                row.state = ReplicaState.STARTING
            elif row.state == ReplicaState.STOPPING:
                process.stop_at = time.monotonic()
            self._tracked.setdefault(row.workload, _Tracked()).processes[row.replica_id] = process
            log.info("adopted replica", extra={"workload": row.workload, "replica": row.replica_id, "pid": row.pid})

    async def apply(self, workload: Workload) -> WorkloadStatus:
        tracked = self._tracked.setdefault(workload.name, _Tracked())
        tracked.spec = workload
        await self._observe(tracked)
        await self._converge(tracked, workload)
        return self._status(tracked, workload)

    async def delete(self, name: str) -> None:
        tracked = self._tracked.get(name)
        if tracked is None:
            return
        for process in tracked.processes.values():
            if process.state is not ReplicaState.STOPPING:
                await self._begin_stop(process, drain=DRAIN_S)
        deadline = time.monotonic() + DRAIN_S + _grace(tracked) + 5
        while tracked.processes and time.monotonic() < deadline:
            await self._observe(tracked)
            await asyncio.sleep(0.1)
        self._tracked.pop(name, None)

    async def names(self) -> list[str]:
        return list(self._tracked)

    async def logs(self, name: str, tail: int) -> dict[str, list[str]]:
        tracked = self._tracked.get(name)
        if tracked is None:
            return {}
        return {rid: _tail(self._log_path(name, rid), tail) for rid in tracked.processes}

    async def close(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ observing

    async def _observe(self, tracked: _Tracked) -> None:
        now = time.monotonic()
        spec = tracked.spec
        probes = []
        for process in list(tracked.processes.values()):
            row = process.row
            if row.state == ReplicaState.STOPPING:
                await self._continue_stop(tracked, process, now)
            elif row.state == ReplicaState.CRASHED:
                continue
            elif not self._alive(process):
                await self._crashed(tracked, process, self._exit_reason(process))
            elif row.state == ReplicaState.STARTING and spec is not None and not process.ever_ready and (
                now_ms() - row.started_at > spec.ready_deadline_s * 1000
            ):
                self._signal(process, signal.SIGKILL)
                await self._crashed(tracked, process, f"it did not become ready within {spec.ready_deadline_s:g} s")
            else:
                probes.append(process)
        if probes:
            path = spec.readiness_path if spec is not None else "/v2/health/ready"
            answers = await asyncio.gather(*(self._probe(p, path) for p in probes))
            for process, ok in zip(probes, answers, strict=True):
                await self._probed(tracked, process, ok)

    async def _probe(self, process: _Process, path: str) -> bool:
        port = next(iter(process.row.ports.values()), None)
        if port is None:
            return False
        try:
            return (await self._http.get(f"http://{self.host}:{port}{path}")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _probed(self, tracked: _Tracked, process: _Process, ok: bool) -> None:
        row = process.row
        if ok:
            process.failed_probes = 0
            if row.state != ReplicaState.READY:
                process.ever_ready = True
                tracked.failed.pop(row.revision, None)
                row.state, row.message = ReplicaState.READY, None
                await self.store.save(row)
            return
        process.failed_probes += 1
        if row.state == ReplicaState.READY and process.failed_probes >= FAILED_PROBES_TO_UNREADY:
            row.state, row.message = ReplicaState.STARTING, "it stopped answering its readiness check"
            await self.store.save(row)

    async def _crashed(self, tracked: _Tracked, process: _Process, reason: str) -> None:
        row = process.row
        words = _tail(self._log_path(row.workload, row.replica_id), LAST_WORDS)
        message = f"replica {row.replica_id} {reason}" + (":\n" + "\n".join(words) if words else "")
        if not process.ever_ready:
            tracked.failed[row.revision] = message
        delay = BACKOFF_S[min(row.restarts, len(BACKOFF_S) - 1)]
        process.restart_at = time.monotonic() + delay
        process.popen = None
        row.state, row.message, row.pid, row.pid_started = ReplicaState.CRASHED, message, None, None
        await self.store.save(row)
        log.warning("replica exited", extra={"workload": row.workload, "replica": row.replica_id, "reason": reason})

    # ------------------------------------------------------------------ converging

    async def _converge(self, tracked: _Tracked, spec: Workload) -> None:
        active = [p for p in tracked.processes.values() if p.state is not ReplicaState.STOPPING]
        current = [p for p in active if p.row.revision == spec.revision]
        old = [p for p in active if p.row.revision != spec.revision]
        failed = spec.revision in tracked.failed
        if failed and old:
            # A failed rollout: the new revision gets no more chances; the old one serves.
            for process in current:
                await self._begin_stop(process, drain=0.0)
            current = []
        now = time.monotonic()
        for process in current:
            if process.state is ReplicaState.CRASHED and now >= process.restart_at:
                await self._restart(process, spec)
        for process in [p for p in old if p.state is ReplicaState.CRASHED and now >= p.restart_at]:
            await self._begin_stop(process, drain=0.0)  # a crashed old replica is replaced, not restarted
            old.remove(process)

        missing = spec.replicas - len(current)
        if missing > 0 and not (failed and old):
            if old:  # one at a time, so that an old replica stops only once a new one is ready
                missing = 0 if any(not p.ever_ready for p in current) else 1
            for _ in range(missing):
                current.append(await self._spawn(spec, uuid.uuid4().hex[:10], restarts=0))
        elif missing < 0:
            for process in _least_useful(current)[:-missing]:
                await self._begin_stop(process, drain=DRAIN_S)

        ready_current = sum(1 for p in current if p.state is ReplicaState.READY)
        keep_old = max(0, spec.replicas - ready_current)
        for process in _least_useful(old)[: max(0, len(old) - keep_old)]:
            await self._begin_stop(process, drain=DRAIN_S)

    async def _spawn(self, spec: Workload, replica_id: str, restarts: int) -> _Process:
        ports = {name: free_port(self.host) for name in spec.ports}
        args = [_with_ports(a, ports).replace("{host}", self.host) for a in spec.args]
        log_path = self._log_path(spec.name, replica_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting revision {spec.revision}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                [*(spec.program or (self.python, "-m", "labdeck")), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **spec.env} if spec.inherit_env else dict(spec.env),
                cwd=spec.workdir,
                start_new_session=True,  # outlives a restart of this server, and its Ctrl-C
            )
        row = ReplicaRow(
            replica_id, spec.name, spec.revision, popen.pid, _pid_started(popen.pid), ports,
            ReplicaState.STARTING, now_ms(), restarts, None,
        )
        await self.store.save(row)
        log.info("replica started", extra={"workload": spec.name, "replica": replica_id, "pid": popen.pid, "ports": ports})
        return self._track(spec.name, _Process(row, popen))

    async def _restart(self, process: _Process, spec: Workload) -> None:
        del self._tracked[spec.name].processes[process.row.replica_id]
        await self._spawn(spec, process.row.replica_id, process.row.restarts + 1)

    def _track(self, workload: str, process: _Process) -> _Process:
        self._tracked.setdefault(workload, _Tracked()).processes[process.row.replica_id] = process
        return process

    # ------------------------------------------------------------------ stopping

    async def _begin_stop(self, process: _Process, *, drain: float) -> None:
        row = process.row
        if row.state == ReplicaState.CRASHED:
            row.state = ReplicaState.STOPPING
            process.stop_at = time.monotonic()
        else:
            row.state = ReplicaState.STOPPING
            process.stop_at = time.monotonic() + drain
        await self.store.save(row)

    async def _continue_stop(self, tracked: _Tracked, process: _Process, now: float) -> None:
        if not self._alive(process):
            tracked.processes.pop(process.row.replica_id, None)
            await self.store.remove(process.row.replica_id)
            return
        if process.term_sent_at is None:
            if process.stop_at is not None and now >= process.stop_at:
                self._signal(process, signal.SIGTERM)
                process.term_sent_at = now
        elif now - process.term_sent_at > _grace(tracked):
            descendants = _descendants(process.row.pid) if process.row.pid is not None else []
            self._signal(process, signal.SIGKILL)
            for pid in descendants:
                _kill(pid)

    # ------------------------------------------------------------------ processes

    def _alive(self, process: _Process) -> bool:
        if process.popen is not None:
            return process.popen.poll() is None  # also reaps it
        pid, started = process.row.pid, process.row.pid_started
        return pid is not None and started is not None and _pid_started(pid) == started

    def _exit_reason(self, process: _Process) -> str:
        code = process.popen.returncode if process.popen is not None else None
        if code is None:
            return "exited"
        if code < 0:
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def _signal(self, process: _Process, signum: signal.Signals) -> None:
        if process.row.pid is not None and self._alive(process):
            try:
                os.kill(process.row.pid, signum)
            except ProcessLookupError:
                pass

    def _log_path(self, workload: str, replica_id: str) -> Path:
        return self.log_dir / workload / f"{replica_id}.log"

    # ------------------------------------------------------------------ reporting

    def _status(self, tracked: _Tracked, spec: Workload) -> WorkloadStatus:
        replicas = tuple(
            Replica(
                replica_id=p.row.replica_id,
                revision=p.row.revision,
                state=p.state,
                endpoints={name: f"{self.host}:{port}" for name, port in p.row.ports.items()},
                started_at=p.row.started_at,
                restarts=p.row.restarts,
                pid=p.row.pid,
                message=p.row.message,
            )
            for p in tracked.processes.values()
        )
        failure = tracked.failed.get(spec.revision)
        updated = sum(1 for r in replicas if r.revision == spec.revision and r.state is ReplicaState.READY)
        settled = all(r.revision == spec.revision for r in replicas) and len(replicas) == spec.replicas
        if failure is not None:
            rollout = RolloutState.FAILED
        elif updated == spec.replicas and settled:
            rollout = RolloutState.COMPLETE
        else:
            rollout = RolloutState.PROGRESSING
        return WorkloadStatus(spec.name, spec.revision, spec.replicas, replicas, rollout, failure)


def _least_useful(processes: list[_Process]) -> list[_Process]:
    """Which to stop first: those not ready, then the newest."""
    return sorted(processes, key=lambda p: (p.state is ReplicaState.READY, -p.row.started_at))


def _grace(tracked: _Tracked) -> float:
    """How long SIGTERM may take: the workload's own grace, else the default (also for a
    workload adopted and not applied since, whose spec is not known yet)."""
    if tracked.spec is not None and tracked.spec.stop_grace_s is not None:
        return tracked.spec.stop_grace_s
    return STOP_GRACE_S


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, then theirs), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _with_ports(arg: str, ports: dict[str, int]) -> str:
    for name, port in ports.items():
        arg = arg.replace(f"{{port:{name}}}", str(port))
    return arg


def _tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a file (read from its end: logs grow)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024 - lines * 200))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []
