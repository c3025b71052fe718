"""Seldon Core's ``SeldonDeployment`` (``machinelearning.seldon.io/v1``), read as it is and
mapped onto a ``ModelDeployment``.

What maps: ``metadata.name``/``namespace``; each predictor's ``name``, ``replicas``,
``traffic``, ``shadow``; its ``graph`` (a single model node) with ``implementation``,
``modelUri`` and ``parameters`` (``method``); ``componentSpecs`` only for the model
container's ``resources`` and ``env``, and the HorizontalPodAutoscaler's replica bounds.
Prepackaged servers map to runtimes; anything labdeck does not serve (TensorFlow, custom
images, inference graphs with children) is refused with a 400 that says what is supported.
Seldon's SKLEARN_SERVER answers with ``predict_proba`` unless told otherwise, and so does
the mapped deployment.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from labdeck.deployments.spec import ModelDeployment, invalid_spec
from labdeck.errors import InvalidParameter

API_GROUP = "machinelearning.seldon.io"
API_VERSIONS = ("machinelearning.seldon.io/v1", "machinelearning.seldon.io/v1alpha2", "machinelearning.seldon.io/v1alpha3")
KIND = "SeldonDeployment"
# implementation -> (runtime, default method)
IMPLEMENTATIONS: dict[str, tuple[str, str | None]] = {
    "SKLEARN_SERVER": ("sklearn", "predict_proba"),
    "MLFLOW_SERVER": ("pyfunc", None),
    "XGBOOST_SERVER": ("xgboost", None),
}
# what Seldon's own predictor and graph fields may carry without changing what runs
_IGNORED_PREDICTOR = {"annotations", "labels", "svcOrchSpec", "engineResources", "explainer", "ssl", "progressDeadlineSeconds"}
_IGNORED_GRAPH = {"type", "endpoint", "logger", "serviceAccountName", "envSecretRefName", "storageInitializerImage"}


def is_seldon(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == KIND


def from_seldon(document: dict[str, Any]) -> ModelDeployment:
    api_version = document.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise _refuse("apiVersion", f"SeldonDeployment apiVersion must be one of {', '.join(API_VERSIONS)}, not {api_version!r}")
    metadata = document.get("metadata")
    spec = document.get("spec")
    if not isinstance(metadata, dict):
        raise _refuse("metadata", "a SeldonDeployment needs metadata with a name")
    if not isinstance(spec, dict) or not isinstance(spec.get("predictors"), list) or not spec["predictors"]:
        raise _refuse("spec.predictors", "a SeldonDeployment needs at least one predictor")
    protocol = spec.get("protocol", "seldon")
    if protocol not in ("seldon", "v2", "kfserving"):
        raise _refuse("spec.protocol", f"protocol {protocol!r} is not served: labdeck answers Seldon v1 and V2 (Open Inference Protocol)")
    predictors = [_predictor(p, f"spec.predictors[{i}]") for i, p in enumerate(spec["predictors"])]
    converted = {
        "metadata": {k: metadata[k] for k in ("name", "namespace", "labels", "annotations") if k in metadata},
        "spec": {"predictors": predictors},
    }
    try:
        return ModelDeployment.model_validate(converted)
    except ValidationError as exc:
        raise invalid_spec(exc) from None


def _predictor(predictor: Any, where: str) -> dict[str, Any]:
    if not isinstance(predictor, dict):
        raise _refuse(where, "a predictor must be an object")
    graph = predictor.get("graph")
    if not isinstance(graph, dict):
        raise _refuse(f"{where}.graph", "a predictor needs a graph with one model")
    if graph.get("children"):
        raise _refuse(f"{where}.graph.children", "inference graphs (children, routers, combiners, transformers) are not served; deploy one model per predictor")
    implementation = graph.get("implementation")
    if implementation not in IMPLEMENTATIONS:
        supported = ", ".join(IMPLEMENTATIONS)
        what = f"implementation {implementation!r}" if implementation else "a graph without an implementation (a custom image)"
        raise _refuse(f"{where}.graph.implementation", f"{what} is not served; supported: {supported}")
    if not graph.get("modelUri"):
        raise _refuse(f"{where}.graph.modelUri", f"{implementation} needs a modelUri")
    unknown = set(graph) - {"name", "implementation", "modelUri", "parameters", "children"} - _IGNORED_GRAPH
    if unknown:
        raise _refuse(f"{where}.graph", f"unsupported fields: {', '.join(sorted(unknown))}")
    runtime, method = IMPLEMENTATIONS[implementation]
    for i, parameter in enumerate(graph.get("parameters") or []):
        if not isinstance(parameter, dict) or "name" not in parameter:
            raise _refuse(f"{where}.graph.parameters[{i}]", "a parameter needs a name, a type and a value")
        if parameter["name"] == "method":
            method = str(parameter.get("value"))
        else:
            raise _refuse(f"{where}.graph.parameters[{i}]", f"parameter {parameter['name']!r} is not understood (only 'method')")
    unknown = set(predictor) - {"name", "graph", "replicas", "traffic", "shadow", "componentSpecs"} - _IGNORED_PREDICTOR
    if unknown:
        raise _refuse(where, f"unsupported fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {"name": predictor.get("name", "default"), "model": graph["modelUri"], "runtime": runtime}
    if method:
        out["method"] = method
    for key in ("replicas", "traffic", "shadow"):
        if key in predictor:
            out[key] = predictor[key]
    out.update(_component_specs(predictor.get("componentSpecs"), graph.get("name"), f"{where}.componentSpecs"))
    return out


def _component_specs(specs: Any, container_name: Any, where: str) -> dict[str, Any]:
    """Resources, environment and autoscaling bounds of the model's container; custom
    images are refused (labdeck runs its own model server)."""
    if not specs:
        return {}
    if not isinstance(specs, list):
        raise _refuse(where, "componentSpecs must be a list")
    out: dict[str, Any] = {}
    for i, component in enumerate(specs):
        spec = (component or {}).get("spec") or {}
        for j, container in enumerate(spec.get("containers") or []):
            here = f"{where}[{i}].spec.containers[{j}]"
            if container.get("image"):
                raise _refuse(f"{here}.image", "custom images are not served; use a prepackaged implementation")
            if container.get("name") != container_name:
                raise _refuse(f"{here}.name", f"only the model's container ({container_name!r}) may be configured")
            resources = container.get("resources") or {}
            out["resources"] = {k: resources[k] for k in ("requests", "limits") if k in resources}
            env = container.get("env") or []
            if any(not isinstance(e, dict) or "value" not in e for e in env):
                raise _refuse(f"{here}.env", "only plain name/value environment variables are supported")
            out["env"] = {e["name"]: str(e["value"]) for e in env}
        hpa = (component or {}).get("hpaSpec")
        if hpa:
            out["minReplicas"] = hpa.get("minReplicas", 1)
            out["maxReplicas"] = hpa.get("maxReplicas")
    return out


def _refuse(field: str, problem: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid SeldonDeployment: {field}: {problem}.", details=[{"field": field, "problem": problem}])
