"""Rendering deployments to Kubernetes objects: every object validates against the
Kubernetes schema in strict mode (``kubernetes-validate``, two Kubernetes versions), the
VirtualService (a CRD the schema does not know) is checked against the Services it routes
to, and ``labdeck k8s render`` prints the same objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from labdeck.cli import cli
from labdeck.compute import manifests
from labdeck.compute.workload import Workload
from labdeck.config import KubernetesSettings
from labdeck.deployments.seldon import from_seldon
from labdeck.deployments.spec import parse_model_deployment
from labdeck.deployments.workloads import deployment_workloads, kubernetes_manifests
from tests.compute.k8s_kit import check_objects, check_virtual_service, parse_yaml
from tests.seed import SEED_SELDON_DEPLOYMENT

# The SeldonDeployment of the seed, as written there.

CANARY = """\
apiVersion: labdeck.dev/v1
kind: ModelDeployment
metadata: {name: churn, namespace: team-a}
spec:
  predictors:
  - {name: main, model: "models:/churn@production", replicas: 2, traffic: 80}
  - {name: candidate, model: "models:/churn/7", traffic: 20}
  - {name: mirror, model: "models:/churn/8", shadow: true}
"""

AUTOSCALED = """\
apiVersion: labdeck.dev/v1
kind: ModelDeployment
metadata: {name: fraud}
spec:
  predictors:
  - name: main
    model: s3://models/fraud/3
    runtime: xgboost
    minReplicas: 2
    maxReplicas: 10
    workers: 2
    batching: {maxBatchSize: 64}
    resources:
      requests: {cpu: 500m, memory: 1Gi}
      limits: {memory: 2Gi}
    env: {OMP_NUM_THREADS: "2", FEATURE_FLAGS: "a,b"}
"""

SETTINGS = KubernetesSettings(namespace="ml", image="ghcr.io/labdeck/labdeck:1.0")


def render(text: str, settings: KubernetesSettings = SETTINGS, **kwargs: Any) -> list[dict[str, Any]]:
    document = yaml.safe_load(text)
    deployment = from_seldon(document) if document["kind"] == "SeldonDeployment" else parse_model_deployment(document)
    return kubernetes_manifests(deployment, settings, **kwargs)


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_seed_seldon_deployment_renders_valid_objects() -> None:
    objects = render(SEED_SELDON_DEPLOYMENT)
    found = check_objects(objects)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "md-iris-model-default"),
        ("Service", "md-iris-model-default"),
    ]
    deployment = found["Deployment"]["md-iris-model-default"]
    assert deployment["metadata"]["namespace"] == "ml"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert deployment["spec"]["progressDeadlineSeconds"] == 120
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "labdeck-model"
    assert labels["app.kubernetes.io/managed-by"] == "labdeck"
    assert labels["labdeck/deployment"] == "iris-model" and labels["labdeck/predictor"] == "default"
    revision = labels["labdeck/revision"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["labdeck/revision"] == revision
    assert deployment["metadata"]["labels"]["labdeck/revision"] == revision

    container = container_of(deployment)
    assert container["image"] == "ghcr.io/labdeck/labdeck:1.0"
    assert container["command"] == ["labdeck"]
    args = container["args"]
    assert args[:2] == ["serve", "gs://seldon-models/v1.16.0-dev/sklearn/iris"]
    assert (flag(args, "--host"), flag(args, "--port"), flag(args, "--grpc-port")) == ("0.0.0.0", "9000", "9001")
    assert (flag(args, "--runtime"), flag(args, "--method"), flag(args, "--name")) == ("sklearn", "predict_proba", "iris-model")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 9000, "grpc": 9001}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "resources" not in container and "env" not in container  # nothing given, nothing rendered
    # the model cache is a writable emptyDir under a read-only root filesystem
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", flag(args, "--cache-dir")} <= mounts
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["terminationGracePeriodSeconds"] == 30

    service = found["Service"]["md-iris-model-default"]
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p.get("appProtocol")) for p in service["spec"]["ports"]] == [
        ("http", 9000, "http"),
        ("grpc", 9001, "grpc"),
    ]


def test_a_canary_with_a_shadow_splits_traffic_through_istio() -> None:
    settings = SETTINGS.model_copy(update={"istio": True})
    objects = render(CANARY, settings, tracking_uri="http://labdeck.labdeck.svc:8080")
    found = check_objects(objects)
    assert sorted(found["Deployment"]) == ["md-churn-candidate", "md-churn-main", "md-churn-mirror"]
    assert found["Deployment"]["md-churn-main"]["spec"]["replicas"] == 2
    assert "HorizontalPodAutoscaler" not in found
    (vs,) = found["VirtualService"].values()
    assert vs["metadata"]["name"] == "md-churn" and vs["metadata"]["namespace"] == "ml"
    assert vs["spec"]["gateways"] == ["seldon-system/seldon-gateway"]
    routing = check_virtual_service(vs, list(found["Service"].values()))
    assert routing.prefixes == ["/seldon/team-a/churn/", "/deployments/churn/"]
    assert routing.weights == {"md-churn-main": 80, "md-churn-candidate": 20}
    assert routing.mirrors == ["md-churn-mirror"]
    assert vs["spec"]["http"][0]["mirrorPercentage"] == {"value": 100.0}
    # models:/ URIs go to the model server as written; it resolves them through the tracking server
    for name, model in (("main", "models:/churn@production"), ("candidate", "models:/churn/7"), ("mirror", "models:/churn/8")):
        container = container_of(found["Deployment"][f"md-churn-{name}"])
        assert container["args"][1] == model
        assert {"name": "MLFLOW_TRACKING_URI", "value": "http://labdeck.labdeck.svc:8080"} in container["env"]


def test_the_gateway_is_configurable_and_several_shadows_are_mirrors() -> None:
    text = CANARY.replace("{name: candidate, model: \"models:/churn/7\", traffic: 20}", "{name: second, model: \"models:/churn/7\", shadow: true}")
    text = text.replace("traffic: 80", "traffic: 100")
    settings = SETTINGS.model_copy(update={"istio": True, "istio_gateway": "istio-system/public"})
    found = check_objects(render(text, settings))
    (vs,) = found["VirtualService"].values()
    assert vs["spec"]["gateways"] == ["istio-system/public"]
    routing = check_virtual_service(vs, list(found["Service"].values()))
    assert routing.weights == {"md-churn-main": 100}
    assert sorted(routing.mirrors) == ["md-churn-mirror", "md-churn-second"]


def test_an_autoscaled_predictor_gets_an_hpa_resources_and_env() -> None:
    found = check_objects(render(AUTOSCALED))
    deployment = found["Deployment"]["md-fraud-main"]
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    (hpa,) = found["HorizontalPodAutoscaler"].values()
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 10
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    container = container_of(deployment)
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert container["env"] == [{"name": "FEATURE_FLAGS", "value": "a,b"}, {"name": "OMP_NUM_THREADS", "value": "2"}]
    args = container["args"]
    assert (flag(args, "--runtime"), flag(args, "--workers"), flag(args, "--max-batch-size")) == ("xgboost", "2", "64")


def test_an_autoscaled_predictor_without_a_cpu_request_gets_one() -> None:
    text = AUTOSCALED.replace("requests: {cpu: 500m, memory: 1Gi}", "requests: {memory: 1Gi}")
    found = check_objects(render(text, SETTINGS.model_copy(update={"cpu_utilization": 55})))
    container = container_of(found["Deployment"]["md-fraud-main"])
    assert container["resources"]["requests"] == {"cpu": manifests.AUTOSCALED_CPU_REQUEST, "memory": "1Gi"}
    (hpa,) = found["HorizontalPodAutoscaler"].values()
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 55


def test_a_new_revision_changes_the_pod_template_but_not_the_selector() -> None:
    before = check_objects(render(CANARY))["Deployment"]["md-churn-candidate"]
    after = check_objects(render(CANARY.replace("models:/churn/7", "models:/churn/9")))["Deployment"]["md-churn-candidate"]
    assert before["spec"]["selector"] == after["spec"]["selector"]
    old, new = (d["spec"]["template"]["metadata"]["labels"]["labdeck/revision"] for d in (before, after))
    assert old != new
    assert after["spec"]["template"]["metadata"]["annotations"]["labdeck/revision"] == new
    # the other predictors did not change at all
    assert render(CANARY)[0] == render(CANARY.replace("models:/churn/7", "models:/churn/9"))[0]


def test_resolved_locations_render_like_the_controller_runs_them() -> None:
    deployment = parse_model_deployment(yaml.safe_load(CANARY))
    located = deployment_workloads(
        deployment, image="img:1", locations={"main": ("s3://bucket/1/abc/artifacts/model", "5")}
    )
    main = located[0].workload
    assert main.args[1] == "s3://bucket/1/abc/artifacts/model"
    assert main.args[main.args.index("--model-version") + 1] == "5"
    assert (located[0].traffic, located[1].traffic, located[2].traffic) == (80, 20, 0)
    assert located[2].shadow


def test_names_too_long_for_a_service_are_shortened_without_collisions() -> None:
    long_name = "a" * 40
    text = f"""\
apiVersion: labdeck.dev/v1
kind: ModelDeployment
metadata: {{name: {long_name}}}
spec:
  predictors:
  - {{name: {"p" * 20}, model: s3://m/1, traffic: 50}}
  - {{name: {"p" * 19}q, model: s3://m/2, traffic: 50}}
"""
    objects = render(text, SETTINGS.model_copy(update={"istio": True}))
    found = check_objects(objects)
    names = sorted(found["Deployment"])
    assert len(names) == 2 and all(len(n) <= 63 for n in names)
    workloads = sorted(d["metadata"]["annotations"]["labdeck/workload"] for d in found["Deployment"].values())
    assert workloads == [f"md-{long_name}-{'p' * 20}", f"md-{long_name}-{'p' * 19}q"]  # 64 characters each
    assert manifests.object_name("md-iris-main") == "md-iris-main"
    assert manifests.object_name("9-Bad_Name").startswith("w-9-bad-name-")


def test_a_workload_without_an_image_or_a_port_is_refused() -> None:
    workload = Workload(name="w", revision="r", args=("serve", "x", "--port", "{port:http}"), container_ports={"http": 9000})
    with pytest.raises(ValueError, match="no image"):
        manifests.deployment(workload, "ml")
    with pytest.raises(ValueError, match="no container port for http"):
        manifests.service(Workload(name="w", revision="r", args=()), "ml")


def test_the_schema_check_is_not_vacuous() -> None:
    deployment = render(SEED_SELDON_DEPLOYMENT)[0]
    container_of(deployment)["readinessProbe"]["httpGet"]["pathh"] = "/typo"
    with pytest.raises(kubernetes_validate.ValidationError, match="pathh"):
        check_objects([deployment])
    service = render(SEED_SELDON_DEPLOYMENT)[1]
    service["spec"]["ports"][0]["port"] = "9000"
    with pytest.raises(kubernetes_validate.ValidationError):
        check_objects([render(SEED_SELDON_DEPLOYMENT)[0], service])


# ---------------------------------------------------------------------- labdeck k8s render


def test_k8s_render_prints_valid_multi_document_yaml(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED_SELDON_DEPLOYMENT)
    result = CliRunner().invoke(cli, ["k8s", "render", "-f", str(seed), "--namespace", "models", "--image", "reg/labdeck:2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("---\n")
    objects = parse_yaml(result.stdout)
    found = check_objects(objects)
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]
    assert all(o["metadata"]["namespace"] == "models" for o in objects)
    assert container_of(found["Deployment"]["md-iris-model-default"])["image"] == "reg/labdeck:2"
    assert objects == render(SEED_SELDON_DEPLOYMENT, KubernetesSettings(namespace="models", image="reg/labdeck:2"))


def test_k8s_render_several_documents_with_istio_and_a_tracking_server(tmp_path: Path) -> None:
    file = tmp_path / "all.yaml"
    file.write_text(SEED_SELDON_DEPLOYMENT + "---\n" + CANARY + "---\n" + AUTOSCALED)
    config = tmp_path / "labdeck.toml"
    config.write_text('[deployments.kubernetes]\nnamespace = "from-config"\nistio = true\n')
    result = CliRunner().invoke(
        cli,
        ["k8s", "render", "-f", str(file), "--config", str(config), "--tracking-uri", "http://labdeck:8080", "--env", "A=1=2"],
    )
    assert result.exit_code == 0, result.output
    objects = parse_yaml(result.stdout)
    found = check_objects(objects)
    assert len(found["VirtualService"]) == 3 and len(found["Deployment"]) == 5 and len(found["HorizontalPodAutoscaler"]) == 1
    assert {o["metadata"]["namespace"] for o in objects} == {"from-config"}
    for deployment in found["Deployment"].values():
        env = {e["name"]: e["value"] for e in container_of(deployment)["env"]}
        assert env["MLFLOW_TRACKING_URI"] == "http://labdeck:8080" and env["A"] == "1=2"
    assert "warning" not in result.stderr


def test_k8s_render_warns_when_registry_models_have_no_tracking_server(tmp_path: Path) -> None:
    file = tmp_path / "canary.yaml"
    file.write_text(CANARY)
    result = CliRunner().invoke(cli, ["k8s", "render", "-f", str(file)])
    assert result.exit_code == 0, result.output
    assert "--tracking-uri" in result.stderr and "models:/churn@production" in result.stderr
    check_objects(parse_yaml(result.stdout))


def test_k8s_render_reads_stdin_and_refuses_what_it_cannot_serve() -> None:
    result = CliRunner().invoke(cli, ["k8s", "render", "-f", "-"], input=SEED_SELDON_DEPLOYMENT)
    assert result.exit_code == 0 and len(parse_yaml(result.stdout)) == 2
    custom = SEED_SELDON_DEPLOYMENT.replace("implementation: SKLEARN_SERVER", "implementation: TENSORFLOW_SERVER")
    result = CliRunner().invoke(cli, ["k8s", "render", "-f", "-"], input=custom)
    assert result.exit_code == 1
    assert "spec.predictors[0].graph.implementation" in result.stderr and "not served" in result.stderr
    result = CliRunner().invoke(cli, ["k8s", "render", "-f", "-"], input="a: [")
    assert result.exit_code == 1 and "not valid YAML" in result.stderr
