"""The container images: deploy/images/server.Dockerfile, the workspace images that
`labdeck envs dockerfile` writes, and the Makefile that builds them.

No Docker engine is at hand, so the Dockerfiles are read with a small parser of their
instructions and held to the invariants a cluster relies on: bases pinned by version and
digest, a final user that is not root, no secret-looking ENV or ARG, labdeck as the entry
point, extras that pyproject.toml defines. `make -n` shows the commands `make images` would run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import labdeck
from labdeck.cli.envs_cmd import envs
from labdeck.cluster.manifests import PORT as SERVER_PORT
from labdeck.compute.manifests import RUN_AS
from labdeck.config import DEFAULT_ENVIRONMENTS
from labdeck.deployments.workloads import CONTAINER_PORTS
from labdeck.workspaces.environments import PYTHON_BASE_IMAGES
from labdeck.workspaces.manifests import USER_ID as WORKSPACE_USER_ID

ROOT = Path(__file__).resolve().parents[2]
SERVER_DOCKERFILE = ROOT / "deploy" / "images" / "server.Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# name[:tag]@sha256:<64 hex>, the tag an exact release (3.11.15-slim-bookworm, not 3.11-slim)
PINNED = re.compile(r"^[a-z0-9./_-]+:(?P<version>\d+\.\d+\.\d+)[A-Za-z0-9._-]*@sha256:[0-9a-f]{64}$")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)
ROOT_USERS = {"root", "0"}


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    arguments: str  # the rest of the logical line, continuations joined


def parse(text: str) -> list[Instruction]:
    """The Dockerfile's instructions. Continuation lines (ending in a backslash) are joined,
    and comment lines are dropped, also between continuations, as Docker does."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = pending + line
        pending = ""
        keyword, _, arguments = logical.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    assert instructions and instructions[0].keyword == "FROM", "a Dockerfile starts with FROM"
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def variable_names(instruction: Instruction) -> list[str]:
    """The names an ENV or ARG sets: ``A=1 B=2``, ``A 1`` (ENV's old form) or ``NAME``."""
    words = shlex.split(instruction.arguments)
    if instruction.keyword == "ENV" and words and "=" not in words[0]:
        return [words[0]]
    return [word.split("=", 1)[0] for word in words]


def check_image(text: str) -> list[Instruction]:
    """The invariants every image of labdeck keeps; the final stage's instructions."""
    instructions = parse(text)
    all_stages = stages(instructions)
    for stage in all_stages:
        base = stage[0].arguments.split()
        assert len(base) in (1, 3), f"FROM {stage[0].arguments}"
        assert PINNED.match(base[0]), f"FROM {base[0]} is not pinned by exact version and digest"
    for instruction in instructions:
        if instruction.keyword in ("ENV", "ARG"):
            for name in variable_names(instruction):
                assert not SECRET_NAME.search(name), f"{instruction.keyword} {name} looks like a secret"
    final = all_stages[-1]
    users = [i.arguments.split(":")[0] for i in final if i.keyword == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    assert users[-1] not in ROOT_USERS, f"the final stage runs as {users[-1]}"
    return final


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.arguments)
    assert isinstance(value, list) and all(isinstance(word, str) for word in value)
    return value


def last(stage: list[Instruction], keyword: str) -> Instruction:
    return [i for i in stage if i.keyword == keyword][-1]


# ------------------------------------------------------------------ the parser itself


def test_the_parser_joins_continuations_and_finds_stages():
    text = (
        "# syntax note\n"
        "FROM a:1.2.3@sha256:" + "0" * 64 + " AS builder\n"
        "RUN one \\\n"
        "# a comment inside\n"
        "  && two\n"
        "FROM a:1.2.3@sha256:" + "0" * 64 + "\n"
        'ENV A=1 B="two words"\n'
        "ENV OLD form value\n"
        "USER 10001:10001\n"
    )
    instructions = parse(text)
    assert [i.keyword for i in instructions] == ["FROM", "RUN", "FROM", "ENV", "ENV", "USER"]
    assert instructions[1].arguments == "one  && two"
    assert [len(stage) for stage in stages(instructions)] == [2, 4]
    assert variable_names(instructions[3]) == ["A", "B"]
    assert variable_names(instructions[4]) == ["OLD"]
    check_image(text)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("FROM python:3.11-slim-bookworm\nUSER 1000\n", "not pinned"),
        ("FROM python:3.11.15-slim-bookworm\nUSER 1000\n", "not pinned"),
        ("FROM python:3.11.15@sha256:" + "a" * 64 + "\n", "sets no USER"),
        ("FROM python:3.11.15@sha256:" + "a" * 64 + "\nUSER 1000\nUSER root\n", "runs as root"),
        ("FROM python:3.11.15@sha256:" + "a" * 64 + "\nUSER 0:0\n", "runs as 0"),
        ("FROM python:3.11.15@sha256:" + "a" * 64 + "\nARG GITHUB_TOKEN\nUSER 1\n", "GITHUB_TOKEN looks like a secret"),
        ("FROM python:3.11.15@sha256:" + "a" * 64 + "\nENV DB_PASSWORD=x\nUSER 1\n", "DB_PASSWORD looks like a secret"),
    ],
)
def test_the_checks_refuse_what_they_should(text: str, complaint: str):
    with pytest.raises(AssertionError, match=complaint):
        check_image(text)


# ------------------------------------------------------------------ the server image


def test_the_server_image_keeps_the_invariants():
    final = check_image(SERVER_DOCKERFILE.read_text())
    assert exec_form(last(final, "ENTRYPOINT")) == ["labdeck"]
    assert exec_form(last(final, "CMD"))[0] == "server"
    # the uid the rendered pods run as (runAsUser, fsGroup) is the image's own user
    assert last(final, "USER").arguments == f"{RUN_AS}:{RUN_AS}"
    useradd = next(i.arguments for i in final if i.keyword == "RUN" and "useradd" in i.arguments)
    assert f"--uid {RUN_AS}" in useradd and f"--gid {RUN_AS}" in useradd
    exposed = {int(port) for i in final if i.keyword == "EXPOSE" for port in i.arguments.split()}
    assert exposed == {SERVER_PORT, *CONTAINER_PORTS.values()}
    assert not [i for i in final if i.keyword == "HEALTHCHECK"], "Kubernetes probes check health"


def test_the_server_image_is_built_in_two_stages_from_one_base():
    all_stages = stages(parse(SERVER_DOCKERFILE.read_text()))
    assert len(all_stages) == 2
    builder, final = all_stages
    assert builder[0].arguments.split()[1:] == ["AS", "builder"]
    # the venv made in the builder is copied as it is, so its interpreter must be the same one
    assert builder[0].arguments.split()[0] == final[0].arguments
    # ... and the same as the workspace images of this Python version
    assert final[0].arguments == PYTHON_BASE_IMAGES["3.11"]
    copies = [i.arguments for i in final if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/labdeck /opt/labdeck"], "only the venv reaches the final stage"
    path = next(i.arguments for i in final if i.keyword == "ENV" and "PATH=" in i.arguments)
    assert "PATH=/opt/labdeck/bin:$PATH" in path


def test_the_extras_installed_exist_and_cover_a_cluster():
    builder = stages(parse(SERVER_DOCKERFILE.read_text()))[0]
    installs = [i.arguments for i in builder if i.keyword == "RUN" and "pip install" in i.arguments]
    # pip install "${wheel}[postgres,s3,...]", the wheel built from this repository
    extras_lists = [found for text in installs for found in re.findall(r'"\$\{wheel\}\[([a-z0-9_,-]+)\]"', text)]
    assert len(extras_lists) == 1, installs
    extras = set(extras_lists[0].split(","))
    defined = set(PYPROJECT["project"]["optional-dependencies"])
    assert extras <= defined, f"extras not in pyproject.toml: {sorted(extras - defined)}"
    assert "test" not in extras
    # PostgreSQL, S3 and the Kubernetes client, and every serving runtime that needs an extra
    runtimes = set(PYPROJECT["project"]["entry-points"]["labdeck.runtimes"])
    needs = {"xgboost": "xgboost", "lightgbm": "lightgbm", "onnx": "onnx", "pyfunc": "mlflow"}
    assert runtimes - {"sklearn"} == set(needs), "a new runtime: say which extra it needs"
    assert {"postgres", "s3", "k8s", *needs.values()} <= extras


def test_the_build_context_holds_what_the_builder_copies_and_nothing_else():
    builder = stages(parse(SERVER_DOCKERFILE.read_text()))[0]
    sources = [
        source
        for i in builder
        if i.keyword == "COPY"
        for source in i.arguments.split()[:-1]
        if not source.startswith("--")
    ]
    assert sorted(sources) == ["README.md", "pyproject.toml", "src"]
    for source in sources:
        assert (ROOT / source).exists()
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "*", "everything is left out unless named"
    assert {line[1:].rstrip("/") for line in ignore if line.startswith("!")} == set(sources)


# ------------------------------------------------------------------ the workspace images


@pytest.mark.parametrize("env", DEFAULT_ENVIRONMENTS, ids=lambda env: env.name)
def test_labdeck_envs_dockerfile_keeps_the_invariants(env, tmp_path: Path):
    printed = CliRunner().invoke(envs, ["dockerfile", env.name, "--data-dir", str(tmp_path)])
    assert printed.exit_code == 0, printed.output
    final = check_image(printed.stdout)
    # the workspace pods run as this uid (workspaces/manifests.py)
    assert last(final, "USER").arguments == str(WORKSPACE_USER_ID)
    pip = next(i.arguments for i in final if i.keyword == "RUN" and i.arguments.startswith("pip install"))
    assert re.search(r'"uv==\d+\.\d+\.\d+"', pip), f"uv is not pinned: {pip}"


def test_every_pinned_workspace_base_is_its_python_version():
    for version, image in PYTHON_BASE_IMAGES.items():
        match = PINNED.match(image)
        assert match and match["version"].startswith(version + "."), image
        assert "-slim-bookworm@" in image  # bookworm: Java 17 for Spark (environments.dockerfile)


def test_a_python_without_a_pinned_base_is_refused_with_the_known_ones(tmp_path: Path):
    config = tmp_path / "labdeck.toml"
    config.write_text('[[workspaces.environments]]\nname = "old"\npython = "3.8"\npackages = ["pandas"]\n')
    result = CliRunner().invoke(envs, ["dockerfile", "old", "--config", str(config), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "Python 3.8, which has no pinned base image" in result.output
    assert ", ".join(PYTHON_BASE_IMAGES) in result.output


# ------------------------------------------------------------------ the Makefile


def make(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run make at the repository's root, with settings from nowhere but the arguments."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LABDECK_") and not k.startswith("MAKE")}
    environ["HOME"] = str(home)
    return subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def commands(output: str, program: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(program + " ")]


def test_make_images_builds_the_server_and_every_environment(tmp_path: Path):
    result = make("-n", "images", "IMAGE_REGISTRY=registry.example.com/ds", "IMAGE_TAG=2.0.1", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert commands(result.stdout, "docker") == [
        "docker info >/dev/null 2>&1 || { echo \"error: 'docker' cannot reach a container engine;"
        ' start Docker, or run this on a machine that has one" >&2; exit 1; }',
        "docker build -f deploy/images/server.Dockerfile -t registry.example.com/ds/labdeck:2.0.1 .",
        "docker build -t registry.example.com/ds/workspace-base:2.0.1 build/images/base",
        "docker build -t registry.example.com/ds/workspace-spark:2.0.1 build/images/spark",
    ]
    written = [line.split()[1:] for line in result.stdout.splitlines() if "envs dockerfile" in line]
    assert written == [
        ["envs", "dockerfile", "base", "--context", "build/images/base"],
        ["envs", "dockerfile", "spark", "--context", "build/images/spark"],
    ]


def test_make_names_the_images_as_the_values_file_does_by_default(tmp_path: Path):
    result = make("-n", "push", home=tmp_path)
    assert result.returncode == 0, result.stderr
    version = labdeck.__version__
    pushes = [line for line in commands(result.stdout, "docker") if line.startswith("docker push ")]
    assert pushes == [
        f"docker push ghcr.io/labdeck/labdeck:{version}",
        f"docker push ghcr.io/labdeck/workspace-base:{version}",
        f"docker push ghcr.io/labdeck/workspace-spark:{version}",
    ]
    values = (ROOT / "deploy" / "values.yaml").read_text()
    assert "repository: ghcr.io/labdeck/labdeck\n" in values
    assert f"image: ghcr.io/labdeck/workspace-base:{version}" in values


def test_make_takes_the_environments_of_a_settings_file(tmp_path: Path):
    config = tmp_path / "labdeck.toml"
    config.write_text('[[workspaces.environments]]\nname = "geo"\npackages = ["geopandas"]\n')
    result = make("-n", "images", f"CONFIG={config}", "IMAGE_TAG=1", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"envs dockerfile geo --context build/images/geo --config {config}" in result.stdout
    builds = [line for line in commands(result.stdout, "docker") if line.startswith("docker build")]
    assert builds[1:] == ["docker build -t ghcr.io/labdeck/workspace-geo:1 build/images/geo"]


def test_make_images_says_plainly_when_docker_is_missing_or_has_no_engine(tmp_path: Path):
    missing = make("images", "DOCKER=labdeck-test-no-such-docker", home=tmp_path)
    assert missing.returncode != 0
    assert "'labdeck-test-no-such-docker' was not found on PATH" in missing.stderr
    no_engine = make("images", "DOCKER=false", home=tmp_path)
    assert no_engine.returncode != 0
    assert "'false' cannot reach a container engine" in no_engine.stderr
