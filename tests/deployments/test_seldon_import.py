"""Seldon Core's ``SeldonDeployment`` read as it is (no server): what each prepackaged server,
traffic split, shadow, graph parameter, componentSpec and HorizontalPodAutoscaler maps to in
a ``ModelDeployment``, and what labdeck does not serve refused with a 400 that says where,
and what is supported.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from labdeck.deployments.service import parse_document
from labdeck.deployments.spec import json_schema
from labdeck.errors import InvalidParameter
from tests.seed import SEED_SELDON_DEPLOYMENT

# The seed's example, verbatim.


def seed() -> dict[str, Any]:
    return yaml.safe_load(SEED_SELDON_DEPLOYMENT)


def predictor(name: str, implementation: str = "SKLEARN_SERVER", uri: str = "s3://models/iris", **more: Any) -> dict[str, Any]:
    return {"name": name, "graph": {"name": "classifier", "implementation": implementation, "modelUri": uri}, **more}


def seldon_deployment(*predictors: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "iris"},
        "spec": {"predictors": list(predictors), **spec},
    }


def refused(document: dict[str, Any]) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        parse_document(document)
    return caught.value


def assert_names(error: InvalidParameter, field: str, *words: str) -> None:
    assert error.code == "INVALID_PARAMETER_VALUE"
    assert error.message.startswith("Invalid SeldonDeployment: "), error.message
    fields = {d["field"]: d["problem"] for d in error.details}
    assert field in fields, f"{field} not among {error.details}"
    for word in words:
        assert word in fields[field], f"{word!r} not in {fields[field]!r}"
    assert field in error.message


# ------------------------------------------------------------------ what maps


def test_the_seed_example_maps_unchanged() -> None:
    submitted = parse_document(seed())
    assert submitted.kind == "SeldonDeployment"
    assert submitted.source == seed()  # kept as sent
    spec = submitted.spec
    assert (spec.metadata.name, spec.metadata.namespace) == ("iris-model", "prod-data-science")
    [p] = spec.spec.predictors
    assert (p.name, p.model, p.runtime, p.method, p.replicas) == (
        "default", "gs://seldon-models/v1.16.0-dev/sklearn/iris", "sklearn", "predict_proba", 1,
    )
    assert spec.traffic(p) == 100 and not p.shadow
    # what it maps to is an ordinary ModelDeployment, valid to the published schema
    import jsonschema

    jsonschema.validate(spec.document(), json_schema())
    assert parse_document(spec.document()).spec == spec


@pytest.mark.parametrize(
    ("implementation", "runtime", "method"),
    [("SKLEARN_SERVER", "sklearn", "predict_proba"), ("MLFLOW_SERVER", "pyfunc", None), ("XGBOOST_SERVER", "xgboost", None)],
)
def test_prepackaged_servers_map_to_runtimes(implementation: str, runtime: str, method: str | None) -> None:
    [p] = parse_document(seldon_deployment(predictor("default", implementation))).spec.spec.predictors
    assert (p.runtime, p.method) == (runtime, method)


def test_older_api_versions_are_read_too() -> None:
    for version in ("machinelearning.seldon.io/v1alpha2", "machinelearning.seldon.io/v1alpha3"):
        document = seed() | {"apiVersion": version}
        assert parse_document(document).spec.spec.predictors[0].runtime == "sklearn"


def test_traffic_weights_and_a_shadow() -> None:
    document = seldon_deployment(
        predictor("main", uri="s3://models/iris/1", replicas=2, traffic=75),
        predictor("canary", "MLFLOW_SERVER", "models:/iris/2", traffic=25),
        predictor("mirror", "XGBOOST_SERVER", "runs:/0123abcd/model", shadow=True),
    )
    spec = parse_document(document).spec
    main, canary, mirror = spec.spec.predictors
    assert [(p.name, spec.traffic(p), p.shadow) for p in (main, canary, mirror)] == [
        ("main", 75, False), ("canary", 25, False), ("mirror", 0, True),
    ]
    assert (main.replicas, canary.replicas, mirror.replicas) == (2, 1, 1)
    assert (main.model, canary.model, mirror.model) == ("s3://models/iris/1", "models:/iris/2", "runs:/0123abcd/model")
    assert (main.runtime, canary.runtime, mirror.runtime) == ("sklearn", "pyfunc", "xgboost")


def test_traffic_is_read_as_seldon_reads_it() -> None:
    # a shadow's traffic is the share it mirrors: 100 is what labdeck does
    spec = parse_document(seldon_deployment(predictor("main"), predictor("mirror", shadow=True, traffic=100))).spec
    assert [spec.traffic(p) for p in spec.spec.predictors] == [100, 0]
    # with several predictors, an omitted share is 0
    spec = parse_document(seldon_deployment(predictor("main", traffic=100), predictor("idle"))).spec
    assert [spec.traffic(p) for p in spec.spec.predictors] == [100, 0]
    # a lone predictor whose share is 0 (Go's zero value) takes every request
    spec = parse_document(seldon_deployment(predictor("main", traffic=0))).spec
    assert spec.traffic(spec.spec.predictors[0]) == 100


def test_spec_replicas_is_every_predictors_default() -> None:
    document = seldon_deployment(predictor("main", traffic=50), predictor("other", traffic=50, replicas=1), replicas=3)
    assert [p.replicas for p in parse_document(document).spec.spec.predictors] == [3, 1]


def test_graph_parameters_set_the_method() -> None:
    document = seldon_deployment(predictor("default"))
    document["spec"]["predictors"][0]["graph"]["parameters"] = [{"name": "method", "type": "STRING", "value": "predict"}]
    assert parse_document(document).spec.spec.predictors[0].method == "predict"


def test_component_specs_give_resources_environment_and_autoscaling() -> None:
    document = seldon_deployment(
        predictor(
            "default",
            componentSpecs=[
                {
                    "spec": {
                        "containers": [
                            {
                                "name": "classifier",
                                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 1, "memory": "2Gi"}},
                                "env": [{"name": "OMP_NUM_THREADS", "value": "2"}, {"name": "SELDON_LOG_LEVEL", "value": "DEBUG"}],
                            }
                        ]
                    },
                    "hpaSpec": {
                        "minReplicas": 2,
                        "maxReplicas": 5,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}}],
                    },
                }
            ],
        )
    )
    [p] = parse_document(document).spec.spec.predictors
    assert (p.resources.requests.cpu, p.resources.requests.memory) == ("500m", "1Gi")
    assert (p.resources.limits.cpu, p.resources.limits.memory) == ("1", "2Gi")  # a number, as Kubernetes allows
    assert p.env == {"OMP_NUM_THREADS": "2", "SELDON_LOG_LEVEL": "DEBUG"}
    assert (p.min_replicas, p.max_replicas) == (2, 5)


def test_fields_that_change_nothing_that_runs_are_accepted() -> None:
    document = seed()
    document["metadata"] |= {"labels": {"app": "seldon"}, "uid": "1234", "resourceVersion": "99"}
    document["spec"] |= {"annotations": {"seldon.io/rest-timeout": "5000"}, "protocol": "seldon", "transport": "rest"}
    document["spec"]["predictors"][0] |= {"labels": {"version": "v1"}, "annotations": {"a": "b"}, "traffic": 100}
    document["spec"]["predictors"][0]["graph"] |= {"type": "MODEL", "children": [], "endpoint": {"type": "REST"}}
    spec = parse_document(document).spec
    assert spec.metadata.labels == {"app": "seldon"}
    assert spec.spec.predictors[0].runtime == "sklearn"


# ------------------------------------------------------------------ what is refused


@pytest.mark.parametrize("implementation", ["TENSORFLOW_SERVER", "TRITON_SERVER", "HUGGINGFACE_SERVER", "CUSTOM"])
def test_servers_labdeck_does_not_serve_are_refused_with_what_is(implementation: str) -> None:
    error = refused(seldon_deployment(predictor("default", implementation)))
    assert_names(
        error, "spec.predictors[0].graph.implementation", implementation, "SKLEARN_SERVER", "MLFLOW_SERVER", "XGBOOST_SERVER"
    )


def test_a_custom_image_is_refused() -> None:
    # Seldon's custom model: a graph node without implementation, its image in componentSpecs
    document = seldon_deployment(
        {
            "name": "default",
            "graph": {"name": "classifier", "type": "MODEL", "children": []},
            "componentSpecs": [{"spec": {"containers": [{"name": "classifier", "image": "acme/iris:1.0"}]}}],
        }
    )
    assert_names(refused(document), "spec.predictors[0].graph.implementation", "custom image", "SKLEARN_SERVER")
    # ... and so is another image for a prepackaged server
    document = seldon_deployment(
        predictor("default", componentSpecs=[{"spec": {"containers": [{"name": "classifier", "image": "acme/sklearn:2"}]}}])
    )
    assert_names(refused(document), "spec.predictors[0].componentSpecs[0].spec.containers[0].image", "custom images are not served")


def test_another_container_is_refused() -> None:
    document = seldon_deployment(predictor("default", componentSpecs=[{"spec": {"containers": [{"name": "sidecar"}]}}]))
    assert_names(refused(document), "spec.predictors[0].componentSpecs[0].spec.containers[0].name", "'classifier'")


def test_an_inference_graph_with_children_is_refused() -> None:
    document = seldon_deployment(predictor("default"))
    document["spec"]["predictors"][0]["graph"]["children"] = [
        {"name": "transformer", "implementation": "SKLEARN_SERVER", "modelUri": "s3://models/t"}
    ]
    assert_names(refused(document), "spec.predictors[0].graph.children", "not served", "one model per predictor")


@pytest.mark.parametrize("version", ["machinelearning.seldon.io/v2", "mlops.seldon.io/v1alpha1", None])
def test_an_unknown_api_version_is_refused(version: str | None) -> None:
    document = seed()
    if version is None:
        del document["apiVersion"]
    else:
        document["apiVersion"] = version
    assert_names(refused(document), "apiVersion", "machinelearning.seldon.io/v1", repr(version))


def test_a_missing_model_uri_is_refused() -> None:
    document = seed()
    del document["spec"]["predictors"][0]["graph"]["modelUri"]
    assert_names(refused(document), "spec.predictors[0].graph.modelUri", "SKLEARN_SERVER needs a modelUri")


def test_refusals_of_the_mapped_deployment_name_the_seldon_field() -> None:
    document = seed()
    document["spec"]["predictors"][0]["graph"]["modelUri"] = "models:/"
    assert_names(refused(document), "spec.predictors[0].graph.modelUri", "Not a proper models:/ URI")
    document = seed()
    document["metadata"]["name"] = "Iris_Model"
    assert_names(refused(document), "metadata.name", "'Iris_Model'")
    document = seed()
    document["spec"]["predictors"][0]["replicas"] = 0
    assert_names(refused(document), "spec.predictors[0].replicas", "greater than or equal to 1")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d["spec"].update(protocol="tensorflow"), "spec.protocol", ["'tensorflow'", "Seldon v1 and V2"]),
        (lambda d: d["spec"].update(serverType="kafka"), "spec.serverType", ["'kafka'"]),
        (lambda d: d["spec"].update(extra=1), "spec", ["extra"]),
        (lambda d: d["spec"]["predictors"][0].update(explainers=[]), "spec.predictors[0]", ["explainers"]),
        (lambda d: d["spec"]["predictors"][0]["graph"].update(methods=["transform_input"]), "spec.predictors[0].graph", ["methods"]),
        (lambda d: d["spec"]["predictors"][0]["graph"].update(parameters=[{"name": "xtype", "type": "STRING", "value": "DataFrame"}]),
         "spec.predictors[0].graph.parameters[0]", ["'xtype'", "only 'method'"]),
        (lambda d: d["spec"].update(predictors=[]), "spec.predictors", ["at least one predictor"]),
        (lambda d: d.pop("metadata"), "metadata", ["metadata with a name"]),
        (lambda d: d["spec"]["predictors"][0].pop("graph"), "spec.predictors[0].graph", ["one model"]),
        (lambda d: d["spec"]["predictors"][0].update(shadow=True, traffic=50), "spec.predictors[0].traffic", ["copy of every request"]),
        (
            lambda d: d["spec"]["predictors"][0].update(componentSpecs=[{"spec": {"containers": [{"name": "classifier", "env": [
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}]),
            "spec.predictors[0].componentSpecs[0].spec.containers[0].env", ["name/value"],
        ),
        (
            lambda d: d["spec"]["predictors"][0].update(componentSpecs=[{"hpaSpec": {"minReplicas": 2}}]),
            "spec.predictors[0].componentSpecs[0].hpaSpec.maxReplicas", ["maxReplicas"],
        ),
    ],
    ids=[
        "protocol", "kafka", "spec field", "predictor field", "graph field", "parameter", "no predictors", "no metadata",
        "no graph", "partial shadow", "env from a secret", "hpa without max",
    ],
)
def test_what_would_change_what_runs_is_refused_by_field(change: Any, field: str, words: list[str]) -> None:
    document = seed()
    change(document)
    assert_names(refused(document), field, *words)


def test_the_seed_is_not_changed_by_reading_it() -> None:
    document = seed()
    before = copy.deepcopy(document)
    parse_document(document)
    assert document == before
