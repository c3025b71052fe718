"""The hub with real JupyterLab servers, started in a real labdeck server with sign-in on:

- a start reaches RUNNING; JupyterLab answers when asked directly with the proxy's headers
  (and not without them) and through ``/user/<name>/``; it runs in the user's home with
  the environment it should have (MLflow's URI and a token of the user's, the workspace's
  names) and none of the server's own variables; a stop ends it, its route and its token;
  a file written in the home is there after the next start;
- a labdeck server restarted on the same data folder adopts the running JupyterLab (the
  same process, RUNNING, its route rebuilt with the same secret);
- a JupyterLab that dies is started again (an event says why); one that cannot start,
  and an environment that cannot build, fail the start with their last lines;
- in a Spark environment a kernel runs a groupBy with a plain ``getOrCreate()``, and the
  Spark UI answers through the proxy under ``<base_url>spark-ui/``;
- deployments and workspaces share the compute backend and leave each other alone;
- the local backend runs another program than labdeck, in its folder, with only the
  environment it is given, and kills a replica that ignores SIGTERM after its grace,
  with the processes it started;
- each server has a workload name of its own, whatever its user's name holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from labdeck.compute.local import LocalProcessBackend
from labdeck.compute.store import ReplicaStore
from labdeck.compute.workload import ReplicaState, Workload
from labdeck.config import EnvironmentSettings
from labdeck.db import Database
from labdeck.workspaces.environments import BuiltEnvironment
from labdeck.workspaces.workloads import WORKLOAD_PREFIX, workload_name
from tests.processes import alive
from tests.workspaces.conftest import BASE_ENV, SPARK_ENV
from tests.workspaces.hub_kit import (
    Hub,
    environ_of,
    hub_server,
    jupyter_headers,
    kinds,
    open_hub,
    processes_of,
    shut,
    wait_until,
)
from tests.workspaces.kernels import Kernel


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment) -> Iterator[Hub]:
    environments = [BASE_ENV.model_dump(), SPARK_ENV.model_dump()]  # spark is built by the test that uses it
    with hub_server(tmp_path_factory.mktemp("hub"), workspaces={"environments": environments}) as running:
        yield running


def test_a_workspace_runs_stops_and_keeps_its_home(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-servers-own-secret")  # the server's, never a notebook's
    started = hub.start("alice")
    assert (started["state"], started["url"], started["environment"]) == ("STARTING", "/user/alice/", BASE_ENV.name)
    running = hub.run("alice")
    assert (running["progress"], running["message"]) == (None, None)
    assert kinds(running) == ["StartRequested", "Running"], running["events"]

    route = hub.route("alice")
    assert route is not None and route.base_url == "/user/alice/"
    with hub.jupyter("alice") as jupyter:
        assert jupyter.get("api/status").status_code == 200
        assert jupyter.get("api/me").json()["identity"]["username"] == "alice"
        made = jupyter.put("api/contents/notes.txt", json={"type": "file", "format": "text", "content": "kept"})
        assert made.status_code == 201, made.text
    refused = httpx.get(f"http://{route.endpoints['http']}/user/alice/api/status", timeout=30)
    assert refused.status_code == 403  # nobody but the proxy gets in
    through_proxy = hub.as_("alice").get("/user/alice/api/status")
    assert through_proxy.status_code == 200, through_proxy.text

    home = hub.data_dir / "homes" / "alice"
    assert (home / "notes.txt").read_text() == "kept"
    pid = hub.jupyterlab_pid("alice")
    assert Path(f"/proc/{pid}/cwd").resolve() == home.resolve()
    env = environ_of(pid)
    assert env["MLFLOW_TRACKING_URI"] == hub.url
    assert (env["LABDECK_WORKSPACE"], env["LABDECK_ENVIRONMENT"], env["HOME"]) == ("alice", "base", str(home))
    assert env["JUPYTER_RUNTIME_DIR"] == str(hub.data_dir / "workspaces" / "alice" / "_default" / "runtime")
    assert "AWS_SECRET_ACCESS_KEY" not in env and not any(name.startswith("LABDECK_AUTH") for name in env)
    token = env["MLFLOW_TRACKING_TOKEN"]
    as_notebook = hub.ident.client(token)
    assert as_notebook.get("/api/v1/me").json()["username"] == "alice"

    stopping = hub.stop("alice")
    assert stopping["state"] == "STOPPING"
    stopped = hub.wait_state("alice", "", "STOPPED")
    assert kinds(stopped)[-2:] == ["StopRequested", "Stopped"]
    assert stopped["stopped_at"] is not None
    assert not alive(pid)
    assert hub.route("alice") is None
    assert as_notebook.get("/api/v1/me").status_code == 401  # the notebook's token went with it
    assert hub.as_("alice").get("/user/alice/api/status").status_code == 404

    hub.run("alice")
    with hub.jupyter("alice") as jupyter:
        assert jupyter.get("api/contents/notes.txt").json()["content"] == "kept"
    assert environ_of(hub.jupyterlab_pid("alice"))["MLFLOW_TRACKING_TOKEN"] != token
    hub.halt("alice")


def test_a_restarted_labdeck_adopts_running_workspaces(
    tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment
) -> None:
    data_dir = tmp_path_factory.mktemp("adopt")
    with hub_server(data_dir) as first:
        first.run("alice", "big")
        pid = first.jupyterlab_pid("alice", "big")
        route = first.route("alice", "big")
        assert route is not None
        token = environ_of(pid)["MLFLOW_TRACKING_TOKEN"]
        first.server.stop()  # labdeck stops; the workspace does not
        assert alive(pid)

        second = open_hub(data_dir)
        second.ident.tokens.update(first.ident.tokens)
        try:
            adopted = wait_until(lambda: second.route("alice", "big"), "the route rebuilt")
            assert (adopted.secret, adopted.endpoints) == (route.secret, route.endpoints)
            status = second.status("alice", "big")
            assert status["state"] == "RUNNING" and kinds(status).count("Running") == 1, status
            assert list(processes_of(data_dir)) == [pid]  # the same JupyterLab, and no other
            with second.jupyter("alice", "big") as jupyter:
                assert jupyter.get("api/status").status_code == 200
            assert second.as_("alice").get("/user/alice/big/api/status").status_code == 200
            assert second.ident.client(token).get("/api/v1/me").status_code == 200
        finally:
            shut(second)
        assert not alive(pid)


def test_a_jupyterlab_that_dies_is_started_again(hub: Hub) -> None:
    hub.run("bob", "crashy")
    pid = hub.jupyterlab_pid("bob", "crashy")
    os.kill(pid, signal.SIGKILL)
    back = hub.wait(
        "bob", "crashy", lambda s: s["state"] == "RUNNING" and kinds(s).count("Running") == 2, "RUNNING again"
    )
    crash = next(e for e in back["events"] if e["kind"] == "Crashed")
    assert "SIGKILL" in crash["message"], crash
    assert hub.jupyterlab_pid("bob", "crashy") != pid
    with hub.jupyter("bob", "crashy") as jupyter:
        assert jupyter.get("api/status").status_code == 200
    hub.halt("bob", "crashy")


def test_a_jupyterlab_that_cannot_start_fails_with_its_last_words(hub: Hub) -> None:
    config = hub.data_dir / "workspaces" / "bob" / "_default" / "config"
    config.mkdir(parents=True)
    (config / "jupyter_server_config.py").write_text('raise SystemExit("a config broken on purpose")\n')
    hub.start("bob")
    failed = hub.wait_state("bob", "", "FAILED")
    assert "a config broken on purpose" in failed["message"], failed
    assert failed["desired"] == "STOPPED" and kinds(failed)[-1] == "Failed"
    assert hub.route("bob") is None
    wait_until(
        lambda: not [argv for argv in hub.processes().values() if "--ServerApp.base_url=/user/bob/" in argv], "it gone"
    )

    (config / "jupyter_server_config.py").unlink()
    hub.run("bob")  # a new start tries again
    hub.halt("bob")


def test_an_environment_that_cannot_build_fails_the_start_with_its_log(
    tmp_path_factory: pytest.TempPathFactory, built_env: BuiltEnvironment
) -> None:
    broken = EnvironmentSettings(name="broken", packages=["labdeck-no-such-package-0xdead"])
    environments = [BASE_ENV.model_dump(), broken.model_dump()]
    with hub_server(tmp_path_factory.mktemp("broken"), workspaces={"environments": environments}) as hub:
        started = hub.start("alice", environment="broken")
        assert started["environment"] == "broken"
        failed = hub.wait_state("alice", "", "FAILED")
        assert "labdeck-no-such-package-0xdead" in failed["message"], failed
        assert kinds(failed)[-1] == "BuildFailed"
        listed = {e["name"]: e for e in hub.as_("alice").get("/api/v1/environments").json()["environments"]}
        assert (listed["broken"]["state"], listed["base"]["state"]) == ("failed", "built")


def test_a_spark_workspace_runs_spark_with_its_ui_behind_the_proxy(hub: Hub, spark_env: BuiltEnvironment) -> None:
    hub.start("alice", "sparky", environment=SPARK_ENV.name)
    hub.wait_state("alice", "sparky", "RUNNING", timeout=300)  # a first start may build it
    route = hub.route("alice", "sparky")
    assert route is not None and set(route.endpoints) == {"http", "spark-ui"}
    conf = (hub.data_dir / "workspaces" / "alice" / "sparky" / "spark" / "spark-defaults.conf").read_text()
    assert f"spark.ui.port {route.endpoints['spark-ui'].rpartition(':')[2]}" in conf
    assert "spark.ui.proxyBase /user/alice/sparky/spark-ui" in conf

    kernel = Kernel.create(f"http://{route.endpoints['http']}{route.base_url}", jupyter_headers(route))
    try:
        ran = kernel.run(
            "from pyspark.sql import SparkSession\n"
            "spark = SparkSession.builder.getOrCreate()\n"
            "df = spark.createDataFrame([(i % 3, i) for i in range(30)], ['k', 'v'])\n"
            "counts = sorted((r['k'], r['count']) for r in df.groupBy('k').count().collect())\n"
            "import mlflow\n"
            "with mlflow.start_run() as run:\n"
            "    mlflow.log_metric('groups', len(counts))\n"
            "print(counts, run.info.run_id)"
        )
        assert ran.status == "ok", ran
        # the last line: mlflow prints its "View run" links before it
        counts, run_id = ran.stdout.strip().splitlines()[-1].rsplit(" ", 1)
        assert counts == "[(0, 10), (1, 10), (2, 10)]", ran
        logged = hub.as_("alice").get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
        assert [(m["key"], m["value"]) for m in logged["data"]["metrics"]] == [("groups", 3.0)]
        assert {t["key"]: t["value"] for t in logged["data"]["tags"]}["labdeck.environment"] == SPARK_ENV.name
        ui = hub.as_("alice").get("/user/alice/sparky/spark-ui/jobs/")
        assert ui.status_code == 200 and "Spark Jobs" in ui.text, ui.text[:500]
    finally:
        kernel.delete()
    hub.halt("alice", "sparky")


def test_deployments_and_workspaces_leave_each_other_alone(hub: Hub, tmp_path: Path) -> None:
    from tests.deployments.deploy_kit import SETOSA, model_deployment, train, v2_body

    models = train(tmp_path)
    hub.run("alice", "withmodel")
    pid = hub.jupyterlab_pid("alice", "withmodel")
    alice = hub.as_("alice")
    made = alice.post(
        "/api/v1/deployments", json=model_deployment("iris", {"name": "main", "model": str(models["iris"])})
    )
    assert made.status_code == 201, made.text

    def available() -> dict[str, Any] | None:
        d = alice.get("/api/v1/deployments/iris").json()
        return d if d["state"] == "AVAILABLE" else None

    deployment = wait_until(available, "the deployment AVAILABLE")
    predicted = alice.post("/deployments/iris/v2/models/iris/infer", json=v2_body("iris", [SETOSA]))
    assert predicted.status_code == 200, predicted.text
    # the controller reconciled many times while the model server started: the workspace is untouched
    assert hub.jupyterlab_pid("alice", "withmodel") == pid
    assert kinds(hub.status("alice", "withmodel")) == ["StartRequested", "Running"]

    hub.halt("alice", "withmodel")  # and stopping the workspace leaves the model server serving
    replica = deployment["predictors"][0]["replicas"][0]
    assert alive(replica["pid"])
    assert alice.post("/deployments/iris/v2/models/iris/infer", json=v2_body("iris", [SETOSA])).status_code == 200
    assert alice.delete("/api/v1/deployments/iris").status_code == 200
    wait_until(lambda: alice.get("/api/v1/deployments/iris").status_code == 404, "the deployment deleted")


# ---------------------------------------------------------------------- the local backend

STUBBORN = """
import http.server, os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM, ignored", flush=True))
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, flush=True)
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready).serve_forever()
"""


def test_the_local_backend_runs_a_program_of_its_own_and_kills_it_after_its_grace(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'labdeck.db'}")
    db.migrate()
    db.start()
    workdir = tmp_path / "work"
    workdir.mkdir()
    workload = Workload(
        name="ws-stubborn",
        revision="r1",
        args=("{port:http}",),
        program=(sys.executable, "-c", STUBBORN),
        readiness_path="/",
        env={"ONLY_THIS": "1"},
        workdir=str(workdir),
        stop_grace_s=1.0,
        inherit_env=False,
    )

    async def scenario() -> tuple[int, dict[str, str], Path, Path]:
        backend = LocalProcessBackend(ReplicaStore(db), tmp_path / "logs")
        await backend.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                status = await backend.apply(workload)
                if status.ready:
                    break
                assert time.monotonic() < deadline and not any(
                    r.state is ReplicaState.CRASHED for r in status.replicas
                ), status
                await asyncio.sleep(0.1)
            replica = status.ready[0]
            assert replica.pid is not None
            seen = replica.pid, environ_of(replica.pid), Path(f"/proc/{replica.pid}/cwd").resolve()
            await backend.delete(workload.name)
            return (*seen, tmp_path / "logs" / workload.name / f"{replica.replica_id}.log")
        finally:
            await backend.close()

    try:
        pid, env, cwd, log = asyncio.run(scenario())
    finally:
        db.close()
    assert env == {"ONLY_THIS": "1"}
    assert cwd == workdir.resolve()
    said = log.read_text()
    assert "SIGTERM, ignored" in said
    child = int(next(line for line in said.splitlines() if line.startswith("child ")).split()[1])
    assert not alive(pid) and not alive(child), "the replica and the process it started are both gone"


def test_each_server_has_a_workload_name_of_its_own() -> None:
    # usernames may hold '-', '.', '@', '+' (and single sign-on ones anything): no two
    # servers share a name, and a default server's name is its user's, readable
    servers = [
        ("a-b", ""),
        ("a", "b"),
        ("a", "b-c"),
        ("a-b", "c"),
        ("a:b", ""),
        ("a", ""),
        ("a%3Ab", ""),
        ("a.b@c+d", "x"),
        ("é", ""),
        ("%C3%A9", ""),
    ]
    names = [workload_name(user, server) for user, server in servers]
    assert len(set(names)) == len(servers)
    assert workload_name("alice", "") == "ws-alice"
    assert workload_name("a.b@c+d", "x") == "ws-a.b@c+d:x"
    assert all(name.startswith(WORKLOAD_PREFIX) and "/" not in name for name in names)
