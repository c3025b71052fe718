"""``labdeck k8s render -f FILE``: the Kubernetes objects a deployment becomes, as YAML.
``labdeck k8s render --values FILE``: the platform's own objects, from a values file
(``labdeck.cluster``; ``deploy/values.yaml`` documents every field).

Reads ModelDeployments or SeldonDeployments (several documents in one file render each)
and prints, per predictor, a Deployment, a Service and an HPA when it is autoscaled, and
with Istio a VirtualService per deployment: exactly what the Kubernetes backend applies
(``kubectl apply -f -`` takes the output). No server, database or cluster is needed: model
URIs are passed on as written, and ``labdeck serve`` in each pod resolves ``models:/`` and
``runs:/`` through ``MLFLOW_TRACKING_URI`` (``--tracking-uri``).

``labdeck k8s render-workspace USER``: the objects of one workspace server (its home's
PersistentVolumeClaim, Secret, Service, Pod and, for Spark, its ServiceAccount, RBAC,
ConfigMap and the driver's headless Service), as the hub would apply them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from labdeck.cli.options import load_settings


@click.group()
def k8s() -> None:
    """Model deployments and workspaces on Kubernetes."""


def _env(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--env")
        out[name] = rest
    return out


@k8s.command("render")
@click.option("-f", "--file", "file", help="YAML with ModelDeployment or SeldonDeployment documents ('-': stdin).")
@click.option("--values", "values_file", help="A values file: render the platform itself instead ('-': stdin); the other options are for -f.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="TOML settings file.")
@click.option("--namespace", help="Namespace of the objects [default: deployments.kubernetes.namespace].")
@click.option("--image", help="Model server image [default: deployments.kubernetes.image].")
@click.option("--istio/--no-istio", default=None, help="Also render an Istio VirtualService [default: deployments.kubernetes.istio].")
@click.option("--istio-gateway", help="Gateway the VirtualService binds to [default: deployments.kubernetes.istio_gateway].")
@click.option("--tracking-uri", help="labdeck's URL as the pods reach it: resolves models:/ and runs:/ (sets MLFLOW_TRACKING_URI).")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Environment of every model server (repeatable).")
def render(
    file: str | None,
    values_file: str | None,
    config_file: Path | None,
    namespace: str | None,
    image: str | None,
    istio: bool | None,
    istio_gateway: str | None,
    tracking_uri: str | None,
    env: tuple[str, ...],
) -> None:
    """Print the Kubernetes objects of the deployments in FILE (-f), or of the platform
    itself (--values), as multi-document YAML."""
    import yaml

    from labdeck.compute.manifests import to_yaml

    if (file is None) == (values_file is None):
        raise click.UsageError("give exactly one of -f FILE (deployments) and --values FILE (the platform)")
    if values_file is not None:
        _render_platform(values_file)
        return
    assert file is not None  # exactly one was given
    from labdeck.deployments.service import parse_document
    from labdeck.deployments.workloads import kubernetes_manifests
    from labdeck.errors import LabdeckError
    from labdeck.model_uri import parse_model_uri

    settings = load_settings(config_file).deployments.kubernetes
    overrides: dict[str, Any] = {"namespace": namespace, "image": image, "istio": istio, "istio_gateway": istio_gateway}
    settings = settings.model_validate(settings.model_dump() | {k: v for k, v in overrides.items() if v is not None})
    model_env = _env(env)

    text = sys.stdin.read() if file == "-" else _read(file)
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file} is not valid YAML: {exc}") from None
    if not documents:
        raise click.ClickException(f"{file} holds no deployment (a YAML object with kind ModelDeployment or SeldonDeployment).")
    objects: list[dict[str, Any]] = []
    for document in documents:
        try:
            deployment = parse_document(document).spec
        except LabdeckError as error:
            raise click.ClickException(error.message) from None
        remote = [p.model for p in deployment.spec.predictors if parse_model_uri(p.model).kind != "location"]
        if remote and not tracking_uri:
            click.echo(
                f"warning: {', '.join(remote)} need a tracking server in the pods: pass --tracking-uri "
                "(labdeck's URL as the cluster reaches it)",
                err=True,
            )
        objects += kubernetes_manifests(deployment, settings, tracking_uri=tracking_uri, env=model_env)
    click.echo(to_yaml(objects), nl=False)


def _render_platform(values_file: str) -> None:
    from labdeck.cluster.manifests import render_platform
    from labdeck.cluster.values import ValuesError, load_values
    from labdeck.compute.manifests import to_yaml

    text = sys.stdin.read() if values_file == "-" else _read(values_file)
    try:
        values = load_values(text)
    except ValuesError as error:
        raise click.UsageError(f"{values_file}:\n{error}") from None
    click.echo(to_yaml(render_platform(values)), nl=False)


def _read(file: str) -> str:
    try:
        return Path(file).read_text()
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None


@k8s.command("render-workspace")
@click.argument("user")
@click.option("--server", default="", help="A named server of USER [default: USER's default server].")
@click.option("--env", "env_name", help="Environment of the server [default: workspaces.default_environment].")
@click.option("--namespace", help="Namespace of the objects [default: workspaces.kubernetes.namespace].")
@click.option("--tracking-uri", help="labdeck's URL as the pods reach it (sets MLFLOW_TRACKING_URI).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="TOML settings file.")
def render_workspace(
    user: str,
    server: str,
    env_name: str | None,
    namespace: str | None,
    tracking_uri: str | None,
    config_file: Path | None,
) -> None:
    """Print the Kubernetes objects of USER's workspace server as multi-document YAML."""
    from labdeck.compute.manifests import to_yaml
    from labdeck.errors import LabdeckError
    from labdeck.workspaces.environments import find
    from labdeck.workspaces.manifests import render_workspace as render

    settings = load_settings(config_file)
    workspaces = settings.workspaces
    if namespace is not None:
        kubernetes = workspaces.kubernetes.model_copy(update={"namespace": namespace})
        workspaces = workspaces.model_copy(update={"kubernetes": kubernetes})
        settings = settings.model_copy(update={"workspaces": workspaces})
    try:
        environment = find(workspaces, env_name or workspaces.default_environment)
        objects = render(user, server, environment, settings, tracking_uri=tracking_uri)
    except LabdeckError as error:
        raise click.ClickException(error.message) from None
    if not tracking_uri:
        click.echo(
            "warning: without --tracking-uri (labdeck's URL as the cluster reaches it), mlflow in "
            "the notebook writes its runs to files in the home folder, not to labdeck",
            err=True,
        )
    click.echo(to_yaml(objects), nl=False)
