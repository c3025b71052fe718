"""Fixtures of the deployment scenarios: trained models (once per session), labdeck servers
that run real ``labdeck serve`` replicas, and the guarantee that no replica outlives its
test.

- ``models``: the iris models of ``deploy_kit.train``, in folders.
- ``lab``: one labdeck server (SQLite) per test module, for scenarios that do not get in
  each other's way (each uses deployments of its own).
- ``clean_lab``: ``lab``, with the test's deployments deleted after it.
- ``new_lab``: starts labdeck servers for one test (``new_lab(data_dir=..., database=...)``):
  for a restart on the same data folder, or another database.

Teardown of every server: delete every deployment through the API (which must stop their
replicas), stop the server, then look for any ``labdeck serve`` process still running with
that server's model cache on its command line. Any found is killed (the last resort) and
the test fails: a replica that outlives its deployment is a leak.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labdeck.config import Settings
from tests.conftest import start_labdeck
from tests.deployments.deploy_kit import Lab, Models, kill_leftovers, train


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return train(tmp_path_factory.mktemp("deploy-models"))


def _mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


class Labs:
    """The servers one test (or module) started; all torn down together."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
        self.tmp_path_factory = tmp_path_factory
        self.monkeypatch = monkeypatch
        self.started: list[Lab] = []

    def __call__(self, **overrides: Any) -> Lab:
        overrides.setdefault("data_dir", self.tmp_path_factory.mktemp("lab"))
        lab = Lab(start_labdeck(Settings.load(None, **overrides)))
        self.started.append(lab)
        return lab

    def point_mlflow(self, lab: Lab) -> Any:
        """The real ``mlflow`` client, pointed at ``lab``."""
        import mlflow

        self.monkeypatch.setenv("MLFLOW_TRACKING_URI", lab.url)
        mlflow.set_tracking_uri(lab.url)
        # mlflow remembers the active experiment across servers; each server has Default (0)
        mlflow.set_experiment(experiment_id="0")
        return mlflow.MlflowClient(lab.url)

    def teardown(self) -> None:
        problems = []
        cache_dirs: list[Path] = []
        for lab in reversed(self.started):
            cache_dirs.append(lab.cache_dir)
            if lab.server.thread.is_alive():
                try:
                    lab.delete_everything()
                except Exception as exc:  # still stop the server and look for leftovers
                    problems.append(f"deleting the deployments of {lab.url} failed: {exc!r}")
                lab.server.stop()
            lab.close()
        for cache_dir in dict.fromkeys(cache_dirs):
            leftovers = kill_leftovers(cache_dir)
            if leftovers:
                problems.append(f"replicas outlived their deployments (killed now): {leftovers}")
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def module_labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labs]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _mlflow_env(monkeypatch)
        labs = Labs(tmp_path_factory, monkeypatch)
        yield labs
        labs.teardown()


@pytest.fixture(scope="module")
def lab(module_labs: Labs) -> Lab:
    return module_labs()


@pytest.fixture
def new_lab(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Labs]:
    _mlflow_env(monkeypatch)
    labs = Labs(tmp_path_factory, monkeypatch)
    yield labs
    labs.teardown()


@pytest.fixture
def clean_lab(lab: Lab) -> Iterator[Lab]:
    """The module's server; the test's deployments are deleted after it (their replicas
    stop), so that the next scenario has the machine to itself."""
    yield lab
    lab.delete_everything()
