"""``LeaseElector``: which replica of the server leads, decided by a Kubernetes ``Lease``.

Every replica is a candidate. Each ``retry_period_s`` it reads the ``coordination.k8s.io/v1``
Lease: when nobody holds it, or its holder has not renewed it for ``lease_duration_s``
(timed on this replica's own clock, from when it last saw the Lease change: clocks of
different machines are never compared), it writes itself in as the holder. The leader
writes a new ``renewTime`` every period. Every write is a ``replace`` carrying the
``resourceVersion`` that was read (or a ``create``, when there is no Lease yet), so when
two candidates try at once the API server accepts one and answers 409 to the other: two
can never both win.

A leader that cannot renew for ``renew_deadline_s`` (shorter than the lease duration, so
that it gives up before anyone may take over), or that finds someone else's name in the
Lease, stops leading. ``stop()`` on a clean shutdown releases the Lease (no holder, one
second long), so a follower takes over at its next try rather than a lease duration later.

The client's own ``kubernetes.leaderelection`` has a ``LeaseLock``, but runs one blocking
election per process with the global client configuration, cannot be stopped and never
releases the Lease; this is the same algorithm (client-go's), async, on
``CoordinationV1Api``.

What leading means is the caller's: ``on_started_leading`` and ``on_stopped_leading``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labdeck.compute.kubernetes import Refused, call, load_client
from labdeck.config import LeaderElectionSettings
from labdeck.errors import Unavailable

log = logging.getLogger(__name__)

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

Callback = Callable[[], Awaitable[None]]


def default_identity() -> str:
    """The host name (in a pod, the pod's name) and a random suffix: a restarted
    container must not mistake its predecessor's Lease for its own."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def lease_namespace(settings: LeaderElectionSettings) -> str:
    if settings.namespace:
        return settings.namespace
    try:
        return IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _now() -> str:
    """A Lease's MicroTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        settings: LeaderElectionSettings,
        *,
        kubeconfig: str | None,
        on_started_leading: Callback,
        on_stopped_leading: Callback,
        identity: str | None = None,
        api_client: Any = None,
    ):
        """No I/O: the client is made on the first try."""
        self.settings = settings
        self.identity = identity or settings.identity or default_identity()
        self.name = settings.lease_name
        self.namespace = lease_namespace(settings)
        self._kubeconfig = kubeconfig
        self._client = api_client
        self._started = on_started_leading
        self._stopped = on_stopped_leading
        self.leading = False
        self.holder: str | None = None  # who held the Lease when it was last read
        self._seen: tuple[Any, ...] | None = None  # the Lease's record when it last changed
        self._seen_at = 0.0  # monotonic: when it did
        self._renewed_at = 0.0  # monotonic: this leader's last successful write
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        """Stop competing; a leader stops leading, then releases the Lease."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.leading:
            self.leading = False
            await self._callback(self._stopped, "stopping to lead")
            try:
                await asyncio.to_thread(self._release)
            except (Unavailable, Refused) as error:  # it then expires on its own
                log.warning("could not release the leader Lease", extra={"reason": str(error)})
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    async def _run(self) -> None:
        period = self.settings.retry_period_s
        while True:
            try:
                await self.try_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: the next try runs anyway
                log.exception("leader election failed")
            await asyncio.sleep(period)

    async def try_once(self) -> bool:
        """One try to acquire or renew the Lease, and what follows from it; whether this
        replica leads afterwards."""
        try:
            won = await asyncio.to_thread(self._try)
        except (Unavailable, Refused) as error:
            log.warning("cannot reach the leader Lease", extra={"lease": self.name, "reason": str(error)})
            won = False
        now = time.monotonic()
        if won:
            self._renewed_at = now
            if not self.leading:
                self.leading = True
                log.info("leading: this replica runs the controllers", extra={"identity": self.identity, "lease": self.name})
                await self._callback(self._started, "starting to lead")
        elif self.leading:
            taken = self.holder is not None and self.holder != self.identity
            if taken or now - self._renewed_at > self.settings.renew_deadline_s:
                self.leading = False
                log.warning(
                    "no longer leading: the controllers stop here",
                    extra={"identity": self.identity, "holder": self.holder, "taken": taken},
                )
                await self._callback(self._stopped, "stopping to lead")
        return self.leading

    async def _callback(self, callback: Callback, what: str) -> None:
        try:
            await callback()
        except Exception:  # what leading runs reports its own failures; the election goes on
            log.exception(f"{what} failed")

    # ------------------------------------------------------------------ the Lease (blocking: run in a thread)

    def _api(self) -> Any:
        from kubernetes import client

        if self._client is None:
            self._client = load_client(self._kubeconfig)
        return client.CoordinationV1Api(self._client)

    def _call(self, method: str, *args: Any) -> dict[str, Any]:
        """One request, within the retry period (a hung API server must not hold a
        leader past its renew deadline); 4xx: ``Refused``, else ``Unavailable``."""
        timeout = max(1.0, self.settings.retry_period_s)
        return call(getattr(self._api(), method), *args, timeout=(timeout, timeout))

    def _read(self) -> dict[str, Any] | None:
        try:
            return self._call("read_namespaced_lease", self.name, self.namespace)
        except Refused as exc:
            if exc.status == 404:
                return None
            raise

    def _try(self) -> bool:
        lease = self._read()
        now = _now()
        duration = max(1, round(self.settings.lease_duration_s))
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": duration,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            }
            return self._write("create_namespaced_lease", self.namespace, body)
        spec = lease.get("spec") or {}
        self.holder = spec.get("holderIdentity") or None
        record = (self.holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._seen:
            self._seen, self._seen_at = record, time.monotonic()
        mine = self.holder == self.identity
        if self.holder is not None and not mine:
            held_for = float(spec.get("leaseDurationSeconds") or duration)
            if time.monotonic() - self._seen_at < held_for:
                return False
        transitions = int(spec.get("leaseTransitions") or 0)
        lease["spec"] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": duration,
            "acquireTime": spec.get("acquireTime") if mine and spec.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": transitions if mine else transitions + 1,
        }
        return self._write("replace_namespaced_lease", self.name, self.namespace, lease)

    def _write(self, method: str, *args: Any) -> bool:
        """Create or replace; False when another candidate wrote first (409)."""
        try:
            written = self._call(method, *args)
        except Refused as exc:
            if exc.status == 409:
                return False
            raise
        spec = written.get("spec") or {}
        self.holder = spec.get("holderIdentity")
        self._seen = (self.holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        self._seen_at = time.monotonic()
        return True

    def _release(self) -> None:
        lease = self._read()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return  # someone else's already: nothing of ours to give up
        now = _now()
        spec = {k: v for k, v in lease["spec"].items() if k != "holderIdentity"}
        lease["spec"] = {**spec, "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now}
        try:
            self._call("replace_namespaced_lease", self.name, self.namespace, lease)
            log.info("released the leader Lease", extra={"identity": self.identity, "lease": self.name})
        except Refused as exc:
            if exc.status != 409:  # 409: written by another meanwhile, so not ours any more
                raise
