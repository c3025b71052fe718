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

Field names are camelCase as in Kubernetes objects; unknown fields are refused, and every
validation error names the field's path (``spec.predictors[1].traffic``).
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


def _dns_label(value: str, limit: int, what: str) -> str:
    if len(value) > limit or not DNS_LABEL.match(value):
        raise ValueError(
            f"{what} {value!r} must be at most {limit} characters of lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


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
    name: str = Field(description="DNS label, unique in the deployment.")
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
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables of the model server.")

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
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"environment variable name {key!r} is not valid")
        return value

    @model_validator(mode="after")
    def _scaling(self) -> Predictor:
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("give both minReplicas and maxReplicas, or neither")
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not be above maxReplicas")
        if self.shadow and self.traffic:
            raise ValueError("a shadow predictor takes no traffic share (it gets a copy of every request)")
        return self


class Metadata(_Strict):
    name: str
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_label(value, MAX_NAME, "deployment name")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _dns_label(value, 63, "namespace")


class DeploymentSpec(_Strict):
    predictors: list[Predictor] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _predictors(self) -> DeploymentSpec:
        names = [p.name for p in self.predictors]
        if len(set(names)) != len(names):
            raise ValueError(f"predictor names must be unique: {', '.join(names)}")
        serving = [p for p in self.predictors if not p.shadow]
        if not serving:
            raise ValueError("at least one predictor must not be a shadow")
        if len(serving) > 1 or serving[0].traffic is not None:
            shares = [p.traffic for p in serving]
            if any(s is None for s in shares):
                raise ValueError("with several predictors, give each non-shadow predictor its traffic (percent)")
            if sum(shares) != 100:  # type: ignore[arg-type]
                raise ValueError(f"the traffic of non-shadow predictors must sum to 100, not {sum(shares)}")  # type: ignore[arg-type]
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
    """The JSON schema of a ModelDeployment (what ``GET /api/v1/deployments/schema`` serves)."""
    return ModelDeployment.model_json_schema(by_alias=True)


def parse_model_deployment(document: Any) -> ModelDeployment:
    """A ModelDeployment from its YAML/JSON data; InvalidParameter naming each bad field."""
    try:
        return ModelDeployment.model_validate(document)
    except ValidationError as exc:
        raise invalid_spec(exc) from None


def invalid_spec(exc: ValidationError, prefix: str = "") -> InvalidParameter:
    problems = [{"field": prefix + _path(e["loc"]), "problem": _message(e)} for e in exc.errors(include_input=False)]
    described = "; ".join(f"{p['field'] or 'the document'}: {p['problem']}" for p in problems)
    return InvalidParameter(f"Invalid deployment: {described}", details=problems)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("literal["):
            continue
        else:
            out += ("." if out else "") + to_camel(str(part)) if "_" in str(part) else ("." if out else "") + str(part)
    return out


def _message(error: dict[str, Any]) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
