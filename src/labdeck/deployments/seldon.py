"""Seldon Core's ``SeldonDeployment`` (``machinelearning.seldon.io/v1``), read as it is and
mapped onto a ``ModelDeployment``.

What maps: ``metadata.name``/``namespace``; ``spec.replicas`` (the default of every
predictor); each predictor's ``name``, ``replicas``, ``traffic``, ``shadow``; its ``graph``
(a single model node) with ``implementation``, ``modelUri`` and ``parameters``
(``method``); ``componentSpecs`` only for the model container's ``resources`` and ``env``,
and the HorizontalPodAutoscaler's replica bounds. Traffic reads as Seldon reads it: a
missing share is 0 when there are several predictors, and a shadow's traffic is the share
of requests it mirrors (labdeck mirrors all of them, so only 100, or none, is accepted).
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
_IGNORED_SPEC = {"name", "annotations", "transport", "oauth_key", "oauth_secret"}
# where a field of the mapped ModelDeployment came from in the SeldonDeployment
_SOURCE_FIELDS = {".model": ".graph.modelUri", ".runtime": ".graph.implementation", ".method": ".graph.parameters"}


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
    if spec.get("serverType", "rpc") != "rpc":
        raise _refuse("spec.serverType", f"server type {spec['serverType']!r} is not served: labdeck answers requests (rpc), not Kafka topics")
    unknown = set(spec) - {"predictors", "protocol", "serverType", "replicas"} - _IGNORED_SPEC
    if unknown:
        raise _refuse("spec", f"unsupported fields: {', '.join(sorted(unknown))}")
    predictors = [_predictor(p, f"spec.predictors[{i}]") for i, p in enumerate(spec["predictors"])]
    for predictor in predictors:
        if "replicas" not in predictor and "replicas" in spec:
            predictor["replicas"] = spec["replicas"]
    serving = [p for p in predictors if not p.get("shadow")]
    if len(serving) > 1:
        for predictor in serving:
            predictor.setdefault("traffic", 0)  # Seldon's omitted share
    elif len(serving) == 1 and serving[0].get("traffic") == 0:
        del serving[0]["traffic"]  # a lone predictor with no share set takes every request
    converted = {
        "metadata": {k: metadata[k] for k in ("name", "namespace", "labels", "annotations") if k in metadata},
        "spec": {"predictors": predictors},
    }
    try:
        return ModelDeployment.model_validate(converted)
    except ValidationError as exc:
        problems = [{"field": source_field(p["field"]), "problem": p["problem"]} for p in invalid_spec(exc).details]
        described = "; ".join(f"{p['field'] or 'the document'}: {p['problem']}" for p in problems)
        raise InvalidParameter(f"Invalid SeldonDeployment: {described.rstrip('.')}.", details=problems) from None


def source_field(field: str) -> str:
    """The SeldonDeployment's path for a field of the ModelDeployment it maps to
    (``spec.predictors[0].model`` is ``spec.predictors[0].graph.modelUri``)."""
    for mapped, source in _SOURCE_FIELDS.items():
        if field.endswith(mapped) and field.startswith("spec.predictors["):
            return field.removesuffix(mapped) + source
    return field


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
    if out.get("shadow") is True and "traffic" in out:
        if out["traffic"] not in (0, 100):
            raise _refuse(f"{where}.traffic", "a shadow gets a copy of every request: its traffic may be 100 (or left out), not a part")
        del out["traffic"]
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
            out["resources"] = {k: _quantities(resources[k]) for k in ("requests", "limits") if k in resources}
            env = container.get("env") or []
            if any(not isinstance(e, dict) or "value" not in e for e in env):
                raise _refuse(f"{here}.env", "only plain name/value environment variables are supported")
            out["env"] = {e["name"]: str(e["value"]) for e in env}
        hpa = (component or {}).get("hpaSpec")
        if hpa:
            if "maxReplicas" not in hpa:
                raise _refuse(f"{where}[{i}].hpaSpec.maxReplicas", "a HorizontalPodAutoscaler needs maxReplicas")
            out["minReplicas"] = hpa.get("minReplicas", 1)
            out["maxReplicas"] = hpa["maxReplicas"]
    return out


def _quantities(amounts: Any) -> Any:
    """Kubernetes quantities may be written as numbers (``cpu: 1``); a ModelDeployment
    writes them as strings."""
    if not isinstance(amounts, dict):
        return amounts
    return {k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in amounts.items()}


def _refuse(field: str, problem: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid SeldonDeployment: {field}: {problem}.", details=[{"field": field, "problem": problem}])
