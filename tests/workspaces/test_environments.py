"""Environments: real uv builds, reused through their marker, their failures, the MLflow run
tags they add, Spark in a workspace, ``labdeck envs`` and the Dockerfiles.

The shared ``base`` and ``spark`` builds come from conftest (built once per machine, as is
``mlflow2``, base's MLflow 2 counterpart); the tests about building itself use small
environments of their own (JupyterLab and the envkit, plus a package or two) in a folder of
the module, hard-linked from the shared uv cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from labdeck.cli.envs_cmd import envs
from labdeck.config import DEFAULT_ENVIRONMENTS, EnvironmentSettings, WorkspaceSettings
from labdeck.errors import InvalidParameter, NotFound
from labdeck.wire.errors import http_status
from labdeck.workspaces.environments import (
    MARKER,
    PYTHON_BASE_IMAGES,
    BuildState,
    BuiltEnvironment,
    EnvironmentBuilder,
    EnvironmentBuildFailed,
    dockerfile,
    find,
    spark_settings,
    visible_to,
)
from tests.conftest import RunningServer, free_port
from tests.workspaces.conftest import BASE_ENV, ENVS_DIR, UV_CACHE_DIR

MISSING_PACKAGE = "labdeck-test-no-such-package-7f3a"


class CountingBuilder(EnvironmentBuilder):
    """Counts the builds it really runs (a build starts with ``uv venv``)."""

    def __init__(self, envs_dir: Path) -> None:
        super().__init__(envs_dir, uv_cache_dir=UV_CACHE_DIR, compile_bytecode=False)
        self.builds = 0
        self._count_lock = threading.Lock()

    def _run_uv(self, arguments: list[str], emit: Callable[[str], None]) -> int:
        if arguments[0] == "venv":
            with self._count_lock:
                self.builds += 1
        return super()._run_uv(arguments, emit)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


def child_environ() -> dict[str, str]:
    """This process's environment less its Python's and its mlflow's (``set_experiment``
    leaves MLFLOW_EXPERIMENT_ID behind): what an environment's own interpreter runs with."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("MLFLOW_")
    }


def run_python(python: Path, code: str, env: dict[str, str] | None = None) -> str:
    environ = child_environ()
    result = subprocess.run(
        [str(python), "-c", textwrap.dedent(code)],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def marker(built: BuiltEnvironment) -> dict:
    return json.loads((built.path / MARKER).read_text())


def test_base_is_built_with_jupyterlab_the_envkit_and_its_packages(
    env_builder: EnvironmentBuilder, built_env: BuiltEnvironment
):
    # the current build; on a machine whose shared build predates builds in folders of their
    # own, that older folder at envs/base while its definition holds
    assert built_env.path == env_builder.path("base") == (ENVS_DIR / "base").resolve()
    assert built_env.path.name in ("base", f"base-{built_env.digest[:12]}")
    assert built_env.python == built_env.path / "bin" / "python"
    assert marker(built_env)["digest"] == built_env.digest
    out = run_python(
        built_env.python,
        """
        import sys, ipykernel, jupyterlab, mlflow, pandas, labdeck_workspace.run_context
        print(sys.prefix, pandas.__version__.split(".")[0])
        """,
    )
    assert out.split() == [str(built_env.path), "2"]
    status = env_builder.status(BASE_ENV)
    assert (status.state, status.message) == (BuildState.BUILT, None)
    assert status.built_at == marker(built_env)["built_at"]


def test_a_built_environment_is_reused_without_running_uv(built_env: BuiltEnvironment):
    before = marker(built_env)
    # a new builder, as after a restart of the server
    builder = CountingBuilder(ENVS_DIR)
    again = asyncio.run(builder.ensure(BASE_ENV))
    assert again == built_env
    assert builder.builds == 0
    assert marker(built_env)["built_at"] == before["built_at"]


def test_a_changed_definition_rebuilds(scratch: Path):
    builder = CountingBuilder(scratch)
    pinned = EnvironmentSettings(name="changing", packages=["six==1.16.0"])
    first = builder.build(pinned)
    assert run_python(first.python, "import six; print(six.__version__)").strip() == "1.16.0"
    (first.path / "left-over").write_text("from the first build")

    lock_file = scratch / "changing.lock.txt"
    lock_file.write_text("six==1.17.0\n")
    locked = EnvironmentSettings(name="changing", lock_file=lock_file)
    status = builder.status(locked)
    assert status.state is BuildState.NOT_BUILT
    assert "definition changed" in (status.message or "")

    second = asyncio.run(builder.ensure(locked))
    assert second.digest != first.digest
    assert second.path == scratch / f"changing-{second.digest[:12]}" == (scratch / "changing").resolve()
    assert run_python(second.python, "import six; print(six.__version__)").strip() == "1.17.0"
    assert not first.path.exists()  # nothing ran from it any more
    assert builder.builds == 2
    assert builder.status(locked).state is BuildState.BUILT
    assert builder.status(pinned).state is BuildState.NOT_BUILT
    assert sorted(p.name for p in scratch.glob(".changing*")) == []  # no staging folder left behind

    # a rebuild that fails leaves the previous build whole for what still runs from it
    with pytest.raises(EnvironmentBuildFailed):
        builder.build(EnvironmentSettings(name="changing", packages=[MISSING_PACKAGE]))
    assert run_python(second.python, "import six; print(six.__version__)").strip() == "1.17.0"
    assert marker(second)["digest"] == second.digest
    assert sorted(p.name for p in scratch.glob(".changing*")) == []


def test_a_rebuild_keeps_the_build_a_process_runs_from_until_it_ends(scratch: Path):
    builder = CountingBuilder(scratch)
    first = builder.build(EnvironmentSettings(name="inuse", packages=["six==1.16.0"]))
    environ = child_environ()
    # as a workspace runs: from the build's interpreter, importing from it after the rebuild
    running = subprocess.Popen(
        [str(first.python), "-c", "import sys; sys.stdin.readline(); import six; print(six.__version__)"],
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        second = builder.build(EnvironmentSettings(name="inuse", packages=["six==1.17.0"]))
        assert builder.builds == 2
        assert second.path != first.path
        assert builder.path("inuse") == (scratch / "inuse").resolve() == second.path
        assert (first.path / MARKER).is_file()  # kept: a process runs from it
        assert builder.remove_unused("inuse") == []
        out, _ = running.communicate("go on\n", timeout=120)
    finally:
        running.kill()
        running.wait()
    assert running.returncode == 0 and out.strip() == "1.16.0"

    assert builder.remove_unused("inuse") == [first.path]  # nothing runs from it any more
    assert not first.path.exists()
    assert run_python(second.python, "import six; print(six.__version__)").strip() == "1.17.0"
    assert builder.status(EnvironmentSettings(name="inuse", packages=["six==1.17.0"])).state is BuildState.BUILT


def test_a_build_from_before_build_folders_is_used_then_gives_way_to_the_link(scratch: Path):
    builder = CountingBuilder(scratch)
    env = EnvironmentSettings(name="older", packages=["six==1.16.0"])
    first = builder.build(env)
    # as an older labdeck left it: the build itself at envs/<name>
    (scratch / "older").unlink()
    first.path.rename(scratch / "older")

    adopted = builder.build(env)
    assert adopted.path == scratch / "older" == builder.path("older")
    assert builder.builds == 1 and builder.status(env).state is BuildState.BUILT

    newer = builder.build(EnvironmentSettings(name="older", packages=["six==1.17.0"]))
    assert builder.builds == 2
    assert (scratch / "older").is_symlink() and builder.path("older") == newer.path  # nothing ran from it
    assert builder.status(env).state is BuildState.NOT_BUILT


def test_a_package_that_does_not_exist_fails_with_the_tail_of_the_log(scratch: Path):
    builder = EnvironmentBuilder(scratch, uv_cache_dir=UV_CACHE_DIR, compile_bytecode=False)
    broken = EnvironmentSettings(name="broken", packages=[MISSING_PACKAGE])
    with pytest.raises(EnvironmentBuildFailed) as failed:
        builder.build(broken)
    assert MISSING_PACKAGE in failed.value.message
    assert str(builder.log_path("broken")) in failed.value.message
    assert http_status(failed.value) == 400
    assert any(MISSING_PACKAGE in line for line in failed.value.details["log_tail"])

    # read back by another builder, as the hub reads it after a restart
    status = EnvironmentBuilder(scratch).status(broken)
    assert status.state is BuildState.FAILED
    assert MISSING_PACKAGE in (status.message or "")
    assert any(MISSING_PACKAGE in line for line in status.log_tail)
    assert len(status.log_tail) <= 20
    assert not (scratch / "broken").exists() and list(scratch.glob("broken-*")) == []

    with pytest.raises(EnvironmentBuildFailed):
        asyncio.run(builder.ensure(broken))


def test_a_missing_lock_file_is_bad_input(scratch: Path):
    builder = EnvironmentBuilder(scratch, uv_cache_dir=UV_CACHE_DIR)
    env = EnvironmentSettings(name="unlocked", lock_file=scratch / "nowhere.txt")
    with pytest.raises(InvalidParameter) as bad:
        builder.build(env)
    assert "nowhere.txt" in bad.value.message and http_status(bad.value) == 400
    status = builder.status(env)
    assert status.state is BuildState.NOT_BUILT and "nowhere.txt" in (status.message or "")


def test_concurrent_ensures_build_once(scratch: Path):
    env = EnvironmentSettings(name="together", packages=["six"])
    in_process = CountingBuilder(scratch)
    # another builder on the same folder stands for another process: the file lock keeps them apart
    other = CountingBuilder(scratch)

    async def scenario() -> tuple[list[BuiltEnvironment], int]:
        ticks = 0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.05)

        ticker = asyncio.create_task(tick())
        results = await asyncio.gather(*(in_process.ensure(env) for _ in range(3)), asyncio.to_thread(other.build, env))
        done.set()
        await ticker
        return list(results), ticks

    results, ticks = asyncio.run(scenario())
    assert in_process.builds + other.builds == 1
    assert all(result == results[0] for result in results)
    assert ticks > 1  # the event loop went on while the build ran
    assert in_process.status(env).state is BuildState.BUILT


def test_visible_to_by_teams():
    everyone = EnvironmentSettings(name="base")
    gpu = EnvironmentSettings(name="gpu", teams=["ml", "vision"])
    assert visible_to(everyone, set(), is_admin=False)
    assert visible_to(gpu, {"vision", "sales"}, is_admin=False)
    assert not visible_to(gpu, {"sales"}, is_admin=False)
    assert not visible_to(gpu, set(), is_admin=False)
    assert visible_to(gpu, set(), is_admin=True)


def test_find_names_the_known_environments():
    settings = WorkspaceSettings()
    assert find(settings, "spark").spark
    with pytest.raises(NotFound) as missing:
        find(settings, "gpu")
    assert http_status(missing.value) == 404
    assert "'gpu'" in missing.value.message and "base, spark" in missing.value.message


@pytest.mark.parametrize("mlflow_major", ["3", "2"])
def test_runs_logged_in_an_environment_are_tagged(
    mlflow_major: str,
    built_env: BuiltEnvironment,
    env_builder: EnvironmentBuilder,
    start_server: Callable[..., RunningServer],
):
    if mlflow_major == "3":
        built = built_env
    else:
        # kept with the shared builds: a later run reuses it
        built = env_builder.build(EnvironmentSettings(name="mlflow2", packages=["mlflow-skinny<3"]))
    server = start_server()
    out = run_python(
        built.python,
        """
        import os, platform, mlflow
        assert mlflow.__version__.split(".")[0] == os.environ["EXPECTED_MAJOR"], mlflow.__version__
        with mlflow.start_run() as tagged:
            mlflow.log_metric("accuracy", 0.9)
        del os.environ["LABDECK_ENVIRONMENT"]
        with mlflow.start_run() as plain:
            pass
        print(tagged.info.run_id, plain.info.run_id, platform.python_version())
        """,
        env={
            "MLFLOW_TRACKING_URI": server.url,
            "LABDECK_ENVIRONMENT": built.name,
            "LABDECK_WORKSPACE": "alice/big",
            "EXPECTED_MAJOR": mlflow_major,
        },
    )
    tagged_id, plain_id, python_version = out.splitlines()[-1].split()  # after mlflow's "View run" lines

    def tags(run_id: str) -> dict[str, str]:
        run = httpx.get(f"{server.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    tagged = tags(tagged_id)
    assert tagged["labdeck.environment"] == built.name
    assert tagged["labdeck.workspace"] == "alice/big"
    assert tagged["labdeck.python"] == python_version
    assert not any(key.startswith("labdeck.") for key in tags(plain_id))

    found = httpx.post(
        f"{server.url}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": ["0"], "filter": f"tags.`labdeck.environment` = '{built.name}'"},
    ).json()
    assert [run["info"]["run_id"] for run in found["runs"]] == [tagged_id]


@pytest.mark.timeout(900)  # a first build on a new machine compiles pyspark's 450 MB wheel
def test_spark_runs_a_group_by_with_the_workspace_settings(spark_env: BuiltEnvironment, tmp_path: Path):
    ui_port = free_port()
    environ = spark_settings(
        tmp_path / "spark-conf", ui_port=ui_port, ui_proxy_base="/user/alice/proxy/spark/", python=spark_env.python
    )
    assert environ["SPARK_CONF_DIR"] == str(tmp_path / "spark-conf")
    assert environ["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert environ["PYSPARK_PYTHON"] == environ["PYSPARK_DRIVER_PYTHON"] == str(spark_env.python)
    out = run_python(
        spark_env.python,
        f"""
        import json, urllib.request
        from pyspark.sql import SparkSession, functions as F
        spark = SparkSession.builder.getOrCreate()
        df = spark.createDataFrame([(i % 5, float(i)) for i in range(1000)], ["k", "v"])
        counts = df.groupBy("k").agg(F.count("*").alias("n")).orderBy("k").toPandas()
        conf = spark.sparkContext.getConf()
        page = urllib.request.urlopen("http://127.0.0.1:{ui_port}/jobs/", timeout=30).read().decode()
        print(json.dumps({{
            "n": counts["n"].tolist(),
            "master": spark.sparkContext.master,
            "driver": [conf.get("spark.driver.host"), conf.get("spark.driver.bindAddress")],
            "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
            "arrow": spark.conf.get("spark.sql.execution.arrow.pyspark.enabled"),
            "links_through_proxy": "/user/alice/proxy/spark/jobs" in page,
        }}))
        spark.stop()
        """,
        env=environ,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {
        "n": [200] * 5,
        "master": "local[*]",
        "driver": ["127.0.0.1", "127.0.0.1"],
        "partitions": "8",
        "arrow": "true",
        "links_through_proxy": True,
    }


def _config(path: Path, envs_dir: Path, *envs: EnvironmentSettings) -> Path:
    lines = ["[workspaces]", f'envs_dir = "{envs_dir}"', f'uv_cache_dir = "{UV_CACHE_DIR}"']
    for env in envs:
        lines += ["[[workspaces.environments]]", f'name = "{env.name}"', f"packages = {json.dumps(env.packages)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_builds_reports_failures_and_lists(tmp_path: Path):
    ok = EnvironmentSettings(name="ok", packages=["six"])
    broken = EnvironmentSettings(name="broken", packages=[MISSING_PACKAGE])
    config = _config(tmp_path / "labdeck.toml", tmp_path / "envs", ok, broken)
    runner = CliRunner()

    built = runner.invoke(envs, ["build", "--all", "--config", str(config)])
    assert built.exit_code == 1
    assert "$ uv venv" in built.stdout and " + six==" in built.stdout  # uv's own lines
    assert f"ok: built at {(tmp_path / 'envs' / 'ok').resolve()}" in built.stdout
    assert "failed to build: broken" in built.stderr and MISSING_PACKAGE in built.stderr

    listed = json.loads(runner.invoke(envs, ["list", "--json", "--config", str(config)]).stdout)
    assert [(row["name"], row["state"]) for row in listed] == [("ok", "built"), ("broken", "failed")]
    assert MISSING_PACKAGE in listed[1]["message"]

    again = runner.invoke(envs, ["build", "ok", "--config", str(config)])
    assert again.exit_code == 0 and again.stdout.startswith("ok: already built")

    unknown = runner.invoke(envs, ["build", "gpu", "--config", str(config)])
    assert unknown.exit_code == 1 and "'gpu'" in unknown.stderr and "ok, broken" in unknown.stderr
    assert runner.invoke(envs, ["build", "--config", str(config)]).exit_code == 2


def test_cli_lists_the_shared_build_and_the_defaults(built_env: BuiltEnvironment, tmp_path: Path):
    runner = CliRunner()
    config = _config(tmp_path / "labdeck.toml", ENVS_DIR, BASE_ENV)
    table = runner.invoke(envs, ["list", "--config", str(config)])
    assert table.exit_code == 0
    assert table.stdout.splitlines()[1].split()[:3] == ["base", "built", str(built_env.path)]

    defaults = json.loads(runner.invoke(envs, ["list", "--json", "--data-dir", str(tmp_path / "data")]).stdout)
    assert [(row["name"], row["state"], row["path"]) for row in defaults] == [
        ("base", "not_built", str(tmp_path / "data" / "envs" / "base")),
        ("spark", "not_built", str(tmp_path / "data" / "envs" / "spark")),
    ]


def test_cli_writes_a_docker_build_context(tmp_path: Path):
    runner = CliRunner()
    printed = runner.invoke(envs, ["dockerfile", "spark", "--data-dir", str(tmp_path)])
    assert printed.exit_code == 0 and printed.stdout == dockerfile(DEFAULT_ENVIRONMENTS[1])

    context = tmp_path / "context"
    written = runner.invoke(envs, ["dockerfile", "base", "--data-dir", str(tmp_path), "--context", str(context)])
    assert written.exit_code == 0, written.output
    assert (context / "Dockerfile").read_text() == dockerfile(DEFAULT_ENVIRONMENTS[0])
    assert (context / "envkit" / "pyproject.toml").is_file()
    assert (context / "envkit" / "labdeck_workspace" / "run_context.py").is_file()
    assert not list(context.rglob("__pycache__"))


def _instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfiles_of_base_and_spark():
    base, spark = DEFAULT_ENVIRONMENTS
    for env in (base, spark):
        instructions = _instructions(dockerfile(env))
        keywords = [line.split()[0] for line in instructions]
        assert keywords[0] == "FROM" and set(keywords) <= {
            "FROM",
            "RUN",
            "ENV",
            "COPY",
            "USER",
            "WORKDIR",
            "EXPOSE",
            "CMD",
        }
        assert instructions[0] == "FROM " + PYTHON_BASE_IMAGES["{}.{}".format(*sys.version_info[:2])]
        install = next(line for line in instructions if "uv pip install" in line)
        for package in (
            "'jupyterlab>=4'",
            "ipykernel",
            "/tmp/labdeck-build/envkit",
            "'pandas<3'",
            "scikit-learn",
            "mlflow",
        ):
            assert package in install.split()
        assert "COPY envkit /tmp/labdeck-build/envkit" in instructions
        assert "useradd --uid 1000" in dockerfile(env) and "USER 1000" in instructions
        assert "WORKDIR /home/jovyan" in instructions and "EXPOSE 8888" in instructions
        assert f"LABDECK_ENVIRONMENT={env.name}" in dockerfile(env)
        assert instructions[-1].startswith('CMD ["jupyter", "lab"')
    assert "openjdk-17-jre-headless" not in dockerfile(base)
    assert "openjdk-17-jre-headless" in dockerfile(spark)
    assert "pyspark" in dockerfile(spark) and "pyspark" not in dockerfile(base)


def test_dockerfile_of_a_locked_environment_on_another_python(tmp_path: Path):
    env = EnvironmentSettings(name="pinned", python="/usr/bin/python3.12", lock_file=tmp_path / "requirements.lock")
    instructions = _instructions(dockerfile(env))
    assert instructions[0].startswith("FROM python:3.12.") and "-slim-bookworm@sha256:" in instructions[0]
    assert "COPY requirements.txt /tmp/labdeck-build/requirements.txt" in instructions
    assert "-r /tmp/labdeck-build/requirements.txt" in next(line for line in instructions if "uv pip install" in line)
