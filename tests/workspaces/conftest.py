"""Fixtures of the workspace tests.

Environments are built with the real builder into a folder that outlives the test run
(``~/.cache/labdeck-tests``, uv's cache beside it), so each is built once per machine and
every later run, CI's included, reuses it (its marker matches). Their package lists are
cut down to what the tests use inside a workspace.

- ``env_builder``: the builder of that shared folder.
- ``built_env``: the ``base`` environment (mlflow-skinny and pandas; JupyterLab, ipykernel
  and the envkit as in every environment).
- ``spark_env``: a ``spark`` environment (base plus pyspark and pyarrow).
- ``workspace_settings(*envs)``: the ``workspaces`` settings of a server that uses those
  builds, for ``start_server(workspaces=workspace_settings(BASE_ENV))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labdeck.config import EnvironmentSettings
from labdeck.workspaces.environments import BuiltEnvironment, EnvironmentBuilder

TEST_CACHE = Path.home() / ".cache" / "labdeck-tests"
ENVS_DIR = TEST_CACHE / "envs"
UV_CACHE_DIR = TEST_CACHE / "uv"

BASE_ENV = EnvironmentSettings(
    name="base", description="Python data science (cut down for the tests)", packages=["mlflow-skinny", "pandas<3"]
)
SPARK_ENV = EnvironmentSettings(
    name="spark",
    description="base, plus PySpark (cut down for the tests)",
    packages=["mlflow-skinny", "pandas<3", "pyspark", "pyarrow"],
    spark=True,
)


def workspace_settings(*envs: EnvironmentSettings) -> dict[str, Any]:
    return {
        "environments": [env.model_dump() for env in envs or (BASE_ENV,)],
        "envs_dir": ENVS_DIR,
        "uv_cache_dir": UV_CACHE_DIR,
    }


@pytest.fixture(scope="session")
def env_builder() -> EnvironmentBuilder:
    return EnvironmentBuilder(ENVS_DIR, uv_cache_dir=UV_CACHE_DIR)


@pytest.fixture(scope="session")
def built_env(env_builder: EnvironmentBuilder) -> BuiltEnvironment:
    return env_builder.build(BASE_ENV)


@pytest.fixture(scope="session")
def spark_env(env_builder: EnvironmentBuilder) -> BuiltEnvironment:
    return env_builder.build(SPARK_ENV)
