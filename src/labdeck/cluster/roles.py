"""``Leadership``: what a server replica runs, leading or following, when several replicas
serve one platform (``cluster.leader_election.enabled``).

Every replica serves the API, the gateway and the notebook proxy. The leader (the holder
of the Lease, ``labdeck.cluster.leader``) also runs the deployment controller's and the
workspace hub's reconcile loops and the culler, and keeps the routing tables as it
observes the backends. A follower runs none of them; every ``refresh_s`` it rebuilds its
gateway's routing table and its proxy's workspace routes from what the leader recorded in
the database, and writes the workspace traffic its proxy saw there for the leader's culler.

A replica that wins the Lease stops following and starts the loops (the backend adopts
what runs, as after a restart: nothing lives only in the old leader's memory); one that
loses it stops them and follows again. With leader election off none of this exists:
the Platform starts the loops itself, as a single process always has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from labdeck.cluster.leader import LeaseElector
from labdeck.config import LeaderElectionSettings
from labdeck.deployments.controller import DeploymentController
from labdeck.workspaces.hub import WorkspaceHub

log = logging.getLogger(__name__)


class Leadership:
    def __init__(
        self,
        settings: LeaderElectionSettings,
        controller: DeploymentController,
        hub: WorkspaceHub,
        *,
        kubeconfig: str | None,
    ):
        """No I/O: ``start`` begins following and competing for the Lease."""
        self.settings = settings
        self.controller = controller
        self.hub = hub
        self.elector = LeaseElector(
            settings, kubeconfig=kubeconfig, on_started_leading=self._lead, on_stopped_leading=self._follow
        )
        self._following: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._start_following()
        await self.elector.start()

    async def stop(self) -> None:
        """Stop the loops of whichever role this replica has, then release the Lease
        (the elector does, after ``_follow``), so that a successor leads at once."""
        self._closing = True
        await self.elector.stop()
        await self._stop_following()

    def describe(self) -> dict[str, Any]:
        """What ``/health?detail`` says of this replica."""
        return {
            "role": "leader" if self.elector.leading else "follower",
            "identity": self.elector.identity,
            "lease": f"{self.elector.namespace}/{self.elector.name}",
            "holder": self.elector.holder,
            "controllers": self.controller.reconciling,
            "workspace_hub": self.hub.reconciling,
        }

    # ------------------------------------------------------------------ the roles

    async def _lead(self) -> None:
        await self._stop_following()
        await self.controller.start()
        await self.hub.start()

    async def _follow(self) -> None:
        await self.hub.pause()
        await self.controller.pause()
        if not self._closing:
            self._start_following()

    def _start_following(self) -> None:
        if self._following is None:
            self._following = asyncio.create_task(self._follow_loop(), name="follower-routes")

    async def _stop_following(self) -> None:
        if self._following is not None:
            self._following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._following
            self._following = None

    async def _follow_loop(self) -> None:
        while True:
            try:
                await self.controller.follow()
                await self.hub.follow(self.settings.activity_write_s)
            except asyncio.CancelledError:
                raise
            except Exception:  # the next refresh tries again; the routes meanwhile stay as they were
                log.exception("refreshing the routes from the database failed")
            await asyncio.sleep(self.settings.refresh_s)
