"""The culler with short timeouts, against real JupyterLab servers started by the hub:

- of three servers of one user, the one nobody uses is stopped (an event says for how long
  it was idle), while the one whose kernel runs ``time.sleep(30)`` is kept (a busy kernel
  is computing: jupyterhub#1498) and so is the one visited through the proxy;
- a server older than the maximum age is stopped although its kernel is busy.

The kernels are created over REST and run code over their WebSocket, on JupyterLab
directly with the headers the proxy sends.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from websockets.sync.client import ClientConnection

from labdeck.workspaces.environments import BuiltEnvironment
from tests.workspaces.hub_kit import Hub, hub_server, jupyter_headers, kinds
from tests.workspaces.kernels import Kernel, execute_request

IDLE_S = 4
CULL_EVERY_S = 1


@contextmanager
def busy_kernel(hub: Hub, user: str, server: str = "") -> Iterator[float]:
    """A kernel of the server running ``time.sleep(30)``; yields when it became busy
    (seconds since the epoch)."""
    route = hub.route(user, server)
    assert route is not None
    kernel = Kernel.create(f"http://{route.endpoints['http']}{route.base_url}", jupyter_headers(route))
    with kernel.open() as ws:
        yield _execute_until_busy(ws, kernel, "import time; time.sleep(30)")


def _execute_until_busy(ws: ClientConnection, kernel: Kernel, code: str) -> float:
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps(execute_request(code, msg_id, kernel.session)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=120))
        if (
            message.get("parent_header", {}).get("msg_id") == msg_id
            and message["msg_type"] == "status"
            and message["content"]["execution_state"] == "busy"
        ):
            return time.time()
    raise AssertionError(f"the kernel never got busy with {code!r}")


def test_an_idle_server_is_stopped_and_busy_or_visited_ones_are_kept(
    tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment
) -> None:
    workspaces = {"idle_timeout_s": IDLE_S, "cull_interval_s": CULL_EVERY_S, "max_servers_per_user": 3}
    with hub_server(tmp_path_factory.mktemp("cull"), workspaces=workspaces) as hub:
        for name in ("idle", "busy", "visited"):
            hub.start("alice", name)
        for name in ("idle", "busy", "visited"):
            hub.wait_state("alice", name, "RUNNING")
        alice = hub.as_("alice")
        with busy_kernel(hub, "alice", "busy") as became_busy:
            # Visits through the proxy until the idle server is gone, and for long enough
            # after that for the busy one to have been culled, were a busy kernel idle.
            while (
                hub.status("alice", "idle")["state"] == "RUNNING"
                or time.time() < became_busy + IDLE_S + 3 * CULL_EVERY_S
            ):
                visit = alice.get("/user/alice/visited/api/contents")
                assert visit.status_code == 200, visit.text
                time.sleep(0.5)
            assert hub.status("alice", "busy")["state"] == "RUNNING"
            assert hub.status("alice", "visited")["state"] == "RUNNING"

        idle = hub.wait_state("alice", "idle", "STOPPED")
        culled = [e["message"] for e in idle["events"] if e["kind"] == "Culled"]
        assert len(culled) == 1 and re.fullmatch(r"idle for \d+ s", culled[0]), idle["events"]
        assert int(culled[0].split()[2]) >= IDLE_S
        assert idle["message"] == f"stopped: {culled[0]}"
        for name in ("busy", "visited"):
            assert "Culled" not in kinds(hub.status("alice", name))


def test_a_server_older_than_the_maximum_age_is_stopped_even_when_busy(
    tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment
) -> None:
    workspaces = {"max_age_s": 15, "idle_timeout_s": 0, "cull_interval_s": CULL_EVERY_S}
    with hub_server(tmp_path_factory.mktemp("old"), workspaces=workspaces) as hub:
        hub.run("alice")
        with busy_kernel(hub, "alice"):
            stopped = hub.wait_state("alice", "", "STOPPED")
        assert [e["message"] for e in stopped["events"] if e["kind"] == "Culled"] == ["older than 15 s"]
        assert stopped["message"] == "stopped: older than 15 s"
