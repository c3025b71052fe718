"""labdeck's ``ModelDeployment``: what a deployment is, as its YAML says it.

```yaml
apiVersion: labdeck.dev/v1
kind: ModelDeployment
metadata: {name: iris, namespace: prod-data-science}   # namespace: for the Seldon-style path
spec:
  predictors:
  - name: main
    model: models:/iris@production       # any model URI; an alias is followed as it moves
    runtime: sklearn                     # optional: chosen from the model otherwise
    replicas: 2
    traffic: 80                          # percent of the requests, across non-shadow predictors
  - name: candidate
    model: models:/iris/3
    traffic: 20
  - {name: mirror, model: models:/iris/4, shadow: true}   # gets a copy of every request
```

Field names are camelCase as in Kubernetes objects; unknown fields are refused, values are
not coerced (``replicas: "2"`` is refused, as the published JSON schema refuses it), and every
validation error names the field's path (``spec.predictors[1].traffic``), rules across
fields included.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from labdeck.errors import InvalidParameter
from labdeck.model_uri import parse_model_uri

API_VERSION = "labdeck.dev/v1"
KIND = "ModelDeployment"
# DNS-1123 labels; short enough that "<deployment>-<predictor>" names a Kubernetes Service.
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MAX_NAME = 40
MAX_PREDICTOR_NAME = 20
MAX_REPLICAS = 64
RUNTIMES = ("sklearn", "xgboost", "lightgbm", "onnx", "pyfunc")
# GET /api/v1/deployments/schema serves the schema, so no deployment may be called that
RESERVED_NAMES = ("schema",)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    # Only the camelCase names: the snake_case ones would be accepted here but refused by
    # the published schema (additionalProperties: false).
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True, strict=True)


class FieldProblem(ValueError):
    """A rule across fields, broken at ``field`` (a path relative to the object whose
    validator raises it), so that the error names that field rather than the object."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field = field


def _dns_label(value: str, limit: int, what: str) -> str:
    if len(value) > limit or not DNS_LABEL.match(value):
        raise ValueError(
            f"{what} {value!r} must be at most {limit} characters of lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _dns_schema(limit: int) -> dict[str, Any]:
    """What ``_dns_label`` checks, for the published schema."""
    return {"pattern": DNS_LABEL.pattern, "maxLength": limit}


class Batching(_Strict):
    max_batch_size: int = Field(ge=2, le=100_000, description="Rows per batch.")
    max_batch_time: float = Field(0.005, gt=0, le=10, description="Seconds to wait for a batch to fill.")


class ResourceAmounts(_Strict):
    cpu: str | None = Field(None, pattern=r"^\d+(\.\d+)?m?$", description='CPU, e.g. "500m" or "2".')
    memory: str | None = Field(None, pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$", description='Memory, e.g. "512Mi".')


class Resources(_Strict):
    requests: ResourceAmounts = ResourceAmounts()
    limits: ResourceAmounts = ResourceAmounts()


class Predictor(_Strict):
    name: str = Field(description="DNS label, unique in the deployment.", json_schema_extra=_dns_schema(MAX_PREDICTOR_NAME))
    model: str = Field(description="Model URI: models:/name@alias, models:/name/3, runs:/..., s3://..., a folder.")
    runtime: Literal["sklearn", "xgboost", "lightgbm", "onnx", "pyfunc"] | None = Field(
        None, description="Chosen from the model's flavors and files when absent."
    )
    method: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="What predict calls, e.g. predict_proba.")
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    min_replicas: int | None = Field(None, ge=1, le=MAX_REPLICAS, description="With maxReplicas: autoscaled on a cluster.")
    max_replicas: int | None = Field(None, ge=1, le=MAX_REPLICAS)
    traffic: int | None = Field(None, ge=0, le=100, description="Percent of requests (non-shadow predictors sum to 100).")
    shadow: bool = Field(False, description="Gets a copy of every request; its answers are discarded.")
    batching: Batching | None = None
    compile: Literal["onnx"] | None = Field(None, description="Serve through ONNX when the conversion is exact.")
    workers: int = Field(1, ge=1, le=16, description="Processes per replica.")
    resources: Resources = Resources()
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables of the model server.",
        json_schema_extra={"propertyNames": {"pattern": ENV_NAME.pattern}},
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value, MAX_PREDICTOR_NAME, "predictor name")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        try:
            parse_model_uri(value)
        except InvalidParameter as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_NAME.match(key):
                raise FieldProblem(key, f"environment variable name {key!r} is not valid (letters, digits and '_', not starting with a digit)")
        return value

    @model_validator(mode="after")
    def _scaling(self) -> Predictor:
        if (self.min_replicas is None) != (self.max_replicas is None):
            missing = "maxReplicas" if self.max_replicas is None else "minReplicas"
            raise FieldProblem(missing, "give both minReplicas and maxReplicas, or neither")
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise FieldProblem("minReplicas", f"minReplicas ({self.min_replicas}) must not be above maxReplicas ({self.max_replicas})")
        if self.shadow and self.traffic:
            raise FieldProblem("traffic", "a shadow predictor takes no traffic share (it gets a copy of every request)")
        return self


class Metadata(_Strict):
    name: str = Field(json_schema_extra=_dns_schema(MAX_NAME) | {"not": {"enum": list(RESERVED_NAMES)}})
    namespace: str = Field("default", json_schema_extra=_dns_schema(63))
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"deployment name {value!r} is reserved (GET /api/v1/deployments/{value} is the JSON schema)")
        return _dns_label(value, MAX_NAME, "deployment name")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value, 63, "namespace")


class DeploymentSpec(_Strict):
    predictors: list[Predictor] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _predictors(self) -> DeploymentSpec:
        seen: set[str] = set()
        for i, p in enumerate(self.predictors):
            if p.name in seen:
                raise FieldProblem(f"predictors[{i}].name", f"predictor name {p.name!r} is used twice (names must be unique)")
            seen.add(p.name)
        serving = [(i, p) for i, p in enumerate(self.predictors) if not p.shadow]
        if not serving:
            raise FieldProblem("predictors", "at least one predictor must not be a shadow")
        if len(serving) > 1 or serving[0][1].traffic is not None:
            for i, p in serving:
                if p.traffic is None:
                    raise FieldProblem(
                        f"predictors[{i}].traffic", "with several predictors, give each non-shadow predictor its traffic (percent)"
                    )
            total = sum(p.traffic or 0 for _, p in serving)
            if total != 100:
                raise FieldProblem("predictors", f"the traffic of non-shadow predictors must sum to 100, not {total}")
        return self


class ModelDeployment(_Strict):
    api_version: Literal["labdeck.dev/v1"] = Field(API_VERSION, description="labdeck.dev/v1")
    kind: Literal["ModelDeployment"] = KIND
    metadata: Metadata
    spec: DeploymentSpec

    def traffic(self, predictor: Predictor) -> int:
        """Its share of requests in percent (a single non-shadow predictor: all of them)."""
        if predictor.shadow:
            return 0
        return 100 if predictor.traffic is None else predictor.traffic

    def document(self) -> dict[str, Any]:
        """As YAML or JSON shows it (camelCase, defaults left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {"apiVersion": API_VERSION, "kind": KIND}


def json_schema() -> dict[str, Any]:
    """The JSON schema of a ModelDeployment (what ``GET /api/v1/deployments/schema`` serves).
    It says what each field may hold; the rules across fields (traffic summing to 100,
    unique predictor names, minReplicas with maxReplicas) are the parser's alone."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema"} | ModelDeployment.model_json_schema(by_alias=True)


def parse_model_deployment(document: Any) -> ModelDeployment:
    """A ModelDeployment from its YAML/JSON data; InvalidParameter naming each bad field."""
    try:
        return ModelDeployment.model_validate(document)
    except ValidationError as exc:
        raise invalid_spec(exc) from None


def invalid_spec(exc: ValidationError, prefix: str = "") -> InvalidParameter:
    problems = [{"field": prefix + _field(e), "problem": _message(e)} for e in exc.errors(include_input=False)]
    described = "; ".join(f"{p['field'] or 'the document'}: {p['problem']}" for p in problems)
    return InvalidParameter(f"Invalid deployment: {described}", details=problems)


def _field(error: Any) -> str:
    """The path of the field an error is about: its location (field names as the document
    spells them), and for a rule across fields, the field the rule names."""
    path = _path(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblem):
        path += cause.field if cause.field.startswith("[") or not path else f".{cause.field}"
    return path


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("literal["):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")
