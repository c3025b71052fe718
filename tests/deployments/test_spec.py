"""labdeck's ``ModelDeployment``, parsed without a server: every field accepted and given
back by ``document()``; every kind of bad input refused with an ``InvalidParameter`` whose
message and ``details`` name the field's path and the problem; and the published JSON
schema, checked with the ``jsonschema`` package, agreeing with the parser.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from labdeck.deployments.service import parse_document
from labdeck.deployments.spec import (
    MAX_NAME,
    MAX_PREDICTOR_NAME,
    MAX_REPLICAS,
    json_schema,
    parse_model_deployment,
)
from labdeck.errors import InvalidParameter

# Every field of a ModelDeployment, none at its default (document() leaves defaults out).
FULL: dict[str, Any] = {
    "apiVersion": "labdeck.dev/v1",
    "kind": "ModelDeployment",
    "metadata": {
        "name": "iris",
        "namespace": "prod-data-science",
        "labels": {"team": "fraud"},
        "annotations": {"owner": "ana@example.com"},
    },
    "spec": {
        "predictors": [
            {
                "name": "main",
                "model": "models:/iris@production",
                "runtime": "sklearn",
                "method": "predict_proba",
                "replicas": 2,
                "minReplicas": 2,
                "maxReplicas": 6,
                "traffic": 80,
                "batching": {"maxBatchSize": 32, "maxBatchTime": 0.01},
                "compile": "onnx",
                "workers": 2,
                "resources": {
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                    "limits": {"cpu": "2", "memory": "1Gi"},
                },
                "env": {"OMP_NUM_THREADS": "1", "_PRIVATE": "x"},
            },
            {"name": "candidate", "model": "runs:/0123456789abcdef/model", "runtime": "xgboost", "traffic": 20},
            {"name": "mirror", "model": "s3://models/iris/v4", "runtime": "pyfunc", "shadow": True},
        ]
    },
}


def minimal(**predictor: Any) -> dict[str, Any]:
    """One predictor, only what is required, plus ``predictor``'s fields."""
    return {
        "apiVersion": "labdeck.dev/v1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {"predictors": [{"name": "main", "model": "models:/iris/1", **predictor}]},
    }


def two(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    document = minimal(**first)
    document["spec"]["predictors"].append({"name": "b", "model": "models:/iris/2", **second})
    return document


def refused(document: Any) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        parse_model_deployment(document)
    return caught.value


def assert_names(error: InvalidParameter, field: str, *words: str) -> None:
    """The error names ``field`` (in ``details`` and in the message) with a problem that
    says ``words``."""
    assert error.code == "INVALID_PARAMETER_VALUE"
    assert error.message.startswith("Invalid deployment: "), error.message
    fields = {d["field"]: d["problem"] for d in error.details}
    assert field in fields, f"{field} not among {error.details}"
    for word in words:
        assert word.lower() in fields[field].lower(), f"{word!r} not in the problem of {field}: {fields[field]!r}"
    assert f"{field}: {fields[field]}" in error.message, error.message


# ------------------------------------------------------------------ accepted


def test_every_field_is_accepted_and_given_back_by_document() -> None:
    parsed = parse_model_deployment(copy.deepcopy(FULL))
    assert parsed.document() == FULL
    assert parse_model_deployment(parsed.document()) == parsed

    main, candidate, mirror = parsed.spec.predictors
    assert (parsed.metadata.name, parsed.metadata.namespace) == ("iris", "prod-data-science")
    assert (main.replicas, main.min_replicas, main.max_replicas, main.workers) == (2, 2, 6, 2)
    assert (main.batching.max_batch_size, main.batching.max_batch_time) == (32, 0.01)  # type: ignore[union-attr]
    assert (main.resources.requests.cpu, main.resources.limits.memory) == ("500m", "1Gi")
    assert main.env == {"OMP_NUM_THREADS": "1", "_PRIVATE": "x"}
    assert [parsed.traffic(p) for p in (main, candidate, mirror)] == [80, 20, 0]
    assert mirror.shadow and not candidate.shadow


def test_defaults_are_filled_in_and_left_out_of_document() -> None:
    parsed = parse_model_deployment(minimal())
    predictor = parsed.spec.predictors[0]
    assert parsed.metadata.namespace == "default"
    assert (predictor.replicas, predictor.workers, predictor.traffic, predictor.shadow) == (1, 1, None, False)
    assert (predictor.runtime, predictor.method, predictor.batching, predictor.compile) == (None, None, None, None)
    assert parsed.traffic(predictor) == 100
    assert parsed.document() == minimal()


def test_api_version_and_kind_may_be_left_out() -> None:
    document = minimal()
    del document["apiVersion"], document["kind"]
    assert parse_model_deployment(document).document() == minimal()
    assert parse_document(document).kind == "ModelDeployment"


def test_the_limits_themselves_are_accepted() -> None:
    document = minimal(replicas=MAX_REPLICAS, name="p" * MAX_PREDICTOR_NAME)
    document["metadata"]["name"] = "a" + "-" * (MAX_NAME - 2) + "z"
    parsed = parse_model_deployment(document)
    assert parsed.spec.predictors[0].replicas == MAX_REPLICAS
    assert parse_model_deployment(two({"traffic": 0}, {"traffic": 100})).spec.predictors[1].traffic == 100
    # a shadow with a share of 0 has no share
    assert parse_model_deployment(two({}, {"shadow": True, "traffic": 0})).spec.predictors[1].shadow


# ------------------------------------------------------------------ refused, with the field's path


def _with(path: str, value: Any) -> dict[str, Any]:
    """``minimal()`` with ``value`` set at a dotted path (list items as numbers)."""
    document = minimal()
    node: Any = document
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[parts[-1]] = value
    return document


UNKNOWN_FIELDS = [
    ("extra", "extra"),
    ("metadata.nam", "metadata.nam"),
    ("spec.predictor", "spec.predictor"),
    ("spec.predictors.0.replica", "spec.predictors[0].replica"),
    ("spec.predictors.0.min_replicas", "spec.predictors[0].min_replicas"),  # camelCase only
    ("spec.predictors.0.batching", "spec.predictors[0].batching.maxBatchSze"),
    ("spec.predictors.0.resources.limit", "spec.predictors[0].resources.limit"),
    ("spec.predictors.0.resources.requests.gpu", "spec.predictors[0].resources.requests.gpu"),
]


@pytest.mark.parametrize(("where", "field"), UNKNOWN_FIELDS, ids=[f for _, f in UNKNOWN_FIELDS])
def test_unknown_fields_are_refused_at_every_level(where: str, field: str) -> None:
    value: Any = {"maxBatchSize": 4, "maxBatchSze": 8} if where.endswith("batching") else 1
    assert_names(refused(_with(where, value)), field, "unknown field")


BAD_NAMES = [
    ("Iris", "upper case"),
    ("ir_is", "underscore"),
    ("a" * (MAX_NAME + 1), "too long"),
    ("-iris", "leading dash"),
    ("iris-", "trailing dash"),
    ("ir.is", "dot"),
    ("", "empty"),
]


@pytest.mark.parametrize(("name", "why"), BAD_NAMES, ids=[w for _, w in BAD_NAMES])
def test_names_that_are_not_dns_labels_are_refused(name: str, why: str) -> None:
    assert_names(refused(_with("metadata.name", name)), "metadata.name", repr(name), f"at most {MAX_NAME} characters", "lower-case")


def test_predictor_names_and_namespaces_are_dns_labels_too() -> None:
    assert_names(refused(minimal(name="Main")), "spec.predictors[0].name", "'Main'", f"at most {MAX_PREDICTOR_NAME}")
    assert_names(refused(minimal(name="p" * (MAX_PREDICTOR_NAME + 1))), "spec.predictors[0].name", "at most")
    assert_names(refused(_with("metadata.namespace", "Prod_DS")), "metadata.namespace", "'Prod_DS'")


def test_the_name_of_the_schema_route_is_reserved() -> None:
    assert_names(refused(_with("metadata.name", "schema")), "metadata.name", "reserved")


@pytest.mark.parametrize(("replicas", "words"), [(0, ["greater than or equal to 1"]), (MAX_REPLICAS + 1, ["less than or equal to 64"])])
def test_replicas_out_of_range_are_refused(replicas: int, words: list[str]) -> None:
    assert_names(refused(minimal(replicas=replicas)), "spec.predictors[0].replicas", *words)


@pytest.mark.parametrize("value", ["2", True, 2.5, None])
def test_replicas_must_be_a_whole_number_not_text_or_a_flag(value: Any) -> None:
    assert_names(refused(minimal(replicas=value)), "spec.predictors[0].replicas", "valid integer")


def test_autoscaling_bounds_come_in_pairs_and_in_order() -> None:
    assert_names(refused(minimal(minReplicas=2)), "spec.predictors[0].maxReplicas", "both minReplicas and maxReplicas")
    assert_names(refused(minimal(maxReplicas=4)), "spec.predictors[0].minReplicas", "both minReplicas and maxReplicas")
    assert_names(refused(minimal(minReplicas=5, maxReplicas=3)), "spec.predictors[0].minReplicas", "must not be above maxReplicas")
    assert_names(refused(minimal(minReplicas=1, maxReplicas=65)), "spec.predictors[0].maxReplicas", "less than or equal to 64")


def test_traffic_must_sum_to_100() -> None:
    assert_names(refused(two({"traffic": 60}, {"traffic": 30})), "spec.predictors", "sum to 100, not 90")
    assert_names(refused(minimal(traffic=50)), "spec.predictors", "sum to 100, not 50")
    assert_names(refused(minimal(traffic=101)), "spec.predictors[0].traffic", "less than or equal to 100")
    assert_names(refused(two({"traffic": 120}, {"traffic": -20})), "spec.predictors[1].traffic", "greater than or equal to 0")


def test_several_serving_predictors_each_need_their_traffic() -> None:
    assert_names(refused(two({}, {})), "spec.predictors[0].traffic", "give each non-shadow predictor its traffic")
    assert_names(refused(two({"traffic": 100}, {})), "spec.predictors[1].traffic", "give each non-shadow predictor its traffic")


def test_a_shadow_takes_no_traffic_and_cannot_be_alone() -> None:
    assert_names(refused(two({}, {"shadow": True, "traffic": 10})), "spec.predictors[1].traffic", "shadow predictor takes no traffic")
    assert_names(refused(minimal(shadow=True)), "spec.predictors", "at least one predictor must not be a shadow")


def test_predictor_names_are_unique() -> None:
    document = two({"traffic": 50}, {"traffic": 50})
    document["spec"]["predictors"][1]["name"] = "main"
    assert_names(refused(document), "spec.predictors[1].name", "'main' is used twice")


def test_there_are_between_one_and_eight_predictors() -> None:
    assert_names(refused(_with("spec.predictors", [])), "spec.predictors", "at least 1 item")
    many = [{"name": f"p{i}", "model": "models:/iris/1", "traffic": 10 if i else 30} for i in range(9)]
    assert_names(refused(_with("spec.predictors", many)), "spec.predictors", "at most 8 items")


@pytest.mark.parametrize(
    ("path", "value"),
    [("requests.cpu", "lots"), ("limits.cpu", "2 cores"), ("requests.memory", "lots"), ("limits.memory", "1GB")],
)
def test_resources_are_kubernetes_quantities(path: str, value: str) -> None:
    section, amount = path.split(".")
    error = refused(minimal(resources={section: {amount: value}}))
    assert_names(error, f"spec.predictors[0].resources.{path}", "should match pattern")


def test_a_quantity_is_written_as_text() -> None:
    assert_names(refused(minimal(resources={"limits": {"cpu": 2}})), "spec.predictors[0].resources.limits.cpu", "valid string")


@pytest.mark.parametrize("name", ["1ST", "MY-VAR", "A B", ""])
def test_environment_variable_names_are_refused_by_name(name: str) -> None:
    error = refused(minimal(env={"GOOD": "1", name: "x"}))
    assert_names(error, f"spec.predictors[0].env.{name}", f"environment variable name {name!r} is not valid")


def test_environment_values_are_text() -> None:
    assert_names(refused(minimal(env={"DEBUG": 1})), "spec.predictors[0].env.DEBUG", "valid string")


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("models:/", ["Not a proper models:/ URI"]),
        ("models:/iris/1/2", ["Not a proper models:/ URI"]),
        ("runs:/", ["Not a proper runs:/ URI"]),
        ("", ["model URI is required"]),
    ],
)
def test_unparseable_model_uris_are_refused(uri: str, words: list[str]) -> None:
    assert_names(refused(minimal(model=uri)), "spec.predictors[0].model", *words)


def test_a_missing_model_is_refused() -> None:
    document = minimal()
    del document["spec"]["predictors"][0]["model"]
    assert_names(refused(document), "spec.predictors[0].model", "field required")


@pytest.mark.parametrize(
    ("predictor", "field", "words"),
    [
        ({"runtime": "tensorflow"}, "runtime", ["sklearn", "xgboost", "lightgbm", "onnx", "pyfunc"]),
        ({"method": "predict proba"}, "method", ["pattern"]),
        ({"compile": "tvm"}, "compile", ["'onnx'"]),
        ({"workers": 17}, "workers", ["less than or equal to 16"]),
        ({"batching": {"maxBatchSize": 1}}, "batching.maxBatchSize", ["greater than or equal to 2"]),
        ({"batching": {"maxBatchSize": 8, "maxBatchTime": 0}}, "batching.maxBatchTime", ["greater than 0"]),
        ({"batching": {}}, "batching.maxBatchSize", ["field required"]),
        ({"shadow": "yes"}, "shadow", ["valid boolean"]),
        ({"traffic": "50"}, "traffic", ["valid integer"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_values_of_other_fields_are_refused(predictor: dict[str, Any], field: str, words: list[str]) -> None:
    assert_names(refused(minimal(**predictor)), f"spec.predictors[0].{field}", *words)


def test_api_version_kind_and_required_sections() -> None:
    assert_names(refused(_with("apiVersion", "labdeck.dev/v2")), "apiVersion", "'labdeck.dev/v1'")
    document = minimal()
    del document["metadata"]
    assert_names(refused(document), "metadata", "field required")
    document = minimal()
    del document["spec"]
    assert_names(refused(document), "spec", "field required")
    assert_names(refused(_with("metadata.labels", {"tier": 1})), "metadata.labels.tier", "valid string")


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    document = minimal(replicas=0, env={"1X": "y"})
    document["metadata"]["name"] = "Bad_Name"
    error = refused(document)
    assert {d["field"] for d in error.details} == {"metadata.name", "spec.predictors[0].replicas", "spec.predictors[0].env.1X"}


def test_documents_that_are_not_deployments_are_refused() -> None:
    for document in ("iris", ["iris"], None, 3):
        with pytest.raises(InvalidParameter, match="YAML or JSON object"):
            parse_document(document)
    with pytest.raises(InvalidParameter, match="Unknown kind 'Deployment'") as caught:
        parse_document({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})
    assert "ModelDeployment" in caught.value.message and "SeldonDeployment" in caught.value.message


# ------------------------------------------------------------------ the JSON schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_schema_is_json_schema_2020_12(validator: jsonschema.protocols.Validator) -> None:
    assert json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert type(validator).__name__ == "Draft202012Validator"


VALID = {
    "full": FULL,
    "minimal": minimal(),
    "no apiVersion or kind": {k: v for k, v in minimal().items() if k not in ("apiVersion", "kind")},
    "limits": minimal(replicas=64, name="p" * 20, traffic=100),
    "shadow": two({}, {"shadow": True}),
}


@pytest.mark.parametrize("document", VALID.values(), ids=VALID.keys())
def test_documents_the_parser_accepts_are_valid_to_the_schema(validator: jsonschema.protocols.Validator, document: dict[str, Any]) -> None:
    parse_model_deployment(copy.deepcopy(document))
    validator.validate(document)
    validator.validate(parse_model_deployment(copy.deepcopy(document)).document())


# What the schema can say (types, ranges, names, patterns, unknown fields) it says as the
# parser does; the rules across fields (traffic summing to 100, ...) are the parser's alone.
INVALID = {
    "unknown top-level field": _with("extra", 1),
    "unknown predictor field": minimal(replica=2),
    "snake_case field": minimal(min_replicas=1),
    "unknown resources field": minimal(resources={"requests": {"gpu": "1"}}),
    "upper-case name": _with("metadata.name", "Iris"),
    "underscore in name": _with("metadata.name", "ir_is"),
    "long name": _with("metadata.name", "a" * 41),
    "leading dash": _with("metadata.name", "-iris"),
    "reserved name": _with("metadata.name", "schema"),
    "upper-case predictor": minimal(name="Main"),
    "long predictor": minimal(name="p" * 21),
    "bad namespace": _with("metadata.namespace", "Prod"),
    "replicas 0": minimal(replicas=0),
    "replicas 65": minimal(replicas=65),
    "replicas as text": minimal(replicas="2"),
    "traffic 101": minimal(traffic=101),
    "unknown runtime": minimal(runtime="tensorflow"),
    "cpu lots": minimal(resources={"requests": {"cpu": "lots"}}),
    "memory lots": minimal(resources={"limits": {"memory": "lots"}}),
    "env name": minimal(env={"1BAD": "x"}),
    "env value": minimal(env={"A": 1}),
    "method": minimal(method="predict proba"),
    "batch size": minimal(batching={"maxBatchSize": 1}),
    "no predictors": _with("spec.predictors", []),
    "no model": {**minimal(), "spec": {"predictors": [{"name": "main"}]}},
    "no name": {**minimal(), "metadata": {}},
    "api version": _with("apiVersion", "labdeck.dev/v2"),
    "kind": _with("kind", "SeldonDeployment"),
}


@pytest.mark.parametrize("document", INVALID.values(), ids=INVALID.keys())
def test_documents_the_schema_refuses_the_parser_refuses(validator: jsonschema.protocols.Validator, document: dict[str, Any]) -> None:
    assert list(validator.iter_errors(document)), "the schema accepts it"
    refused(document)
