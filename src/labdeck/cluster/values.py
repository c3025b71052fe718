"""The values file of a cluster install: one strict, documented model of what an
administrator chooses (``deploy/values.yaml`` is the commented example).

Every level forbids unknown keys, so a typo is an error naming its path, e.g.
``server.replicas: Input should be greater than or equal to 1``. Secrets are never values:
the file names Kubernetes Secrets (``secretName`` and ``key``) that the administrator
creates, and the server reads them from environment variables. Only what cannot have a
default must be given: the database, the S3 bucket and the session-signing secret.
Keys are camelCase, as in Kubernetes objects and Helm values.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from labdeck import __version__
from labdeck.config import DNS_LABEL

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
# a URL with a password in it (scheme://user:password@host): it belongs in a Secret
_URL_PASSWORD = re.compile(r"^[\w+.\-]+://[^:/@]*:[^@]+@")


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True
    )


def _dns_label(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS label (a-z, 0-9, '-', at most 63)")
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
    return value


def _secret_name(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a Secret name (a DNS subdomain)")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Quantity = Annotated[str, AfterValidator(_quantity)]
SecretName = Annotated[str, AfterValidator(_secret_name)]


class SecretRef(_Strict):
    """A key of a Secret the administrator created in labdeck's namespace."""

    secret_name: SecretName = Field(description="Name of the Secret.")
    key: str = Field(description="Key of the Secret holding the value.")


class ImageValues(_Strict):
    repository: str = Field(
        "ghcr.io/labdeck/labdeck", description="Image of the server and the model servers."
    )
    tag: str = Field(
        __version__,
        description="Its tag; the labdeck version that rendered the manifests by default.",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="imagePullPolicy."
    )

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


class Amounts(_Strict):
    cpu: Quantity | None = Field(None, description="CPU (e.g. 500m).")
    memory: Quantity | None = Field(None, description="Memory (e.g. 1Gi).")

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v is not None}


class ResourceValues(_Strict):
    requests: Amounts = Field(
        Amounts(cpu="250m", memory="512Mi"), description="What each server pod asks for."
    )
    limits: Amounts = Field(Amounts(memory="2Gi"), description="The most each server pod may use.")


class ServerValues(_Strict):
    replicas: int | None = Field(
        None,
        ge=1,
        le=50,
        description=(
            "Server pods; each serves the API and the proxies, the one holding the leader Lease also "
            "runs the controllers. Default: 2 with leader election, else 1."
        ),
    )
    leader_election: bool = Field(
        True,
        description="Elect one replica (a coordination.k8s.io Lease) to run the controllers and the culler.",
    )

    @property
    def replica_count(self) -> int:
        if self.replicas is not None:
            return self.replicas
        return 2 if self.leader_election else 1
    resources: ResourceValues = Field(
        ResourceValues(), description="Requests and limits of each server pod."
    )


class DatabaseValues(_Strict):
    url: str | None = Field(
        None, description="PostgreSQL URL without a password (e.g. with a .pgpass or IAM auth)."
    )
    url_secret: SecretRef | None = Field(
        None, description="A Secret key holding the whole URL (with its password)."
    )

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and _URL_PASSWORD.match(value):
            raise ValueError(
                "this URL holds a password: put it in a Secret and name it in database.urlSecret"
            )
        return value

    @model_validator(mode="after")
    def _one(self) -> DatabaseValues:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError(
                "give exactly one of url and urlSecret (a cluster install needs PostgreSQL)"
            )
        return self


class S3Credentials(_Strict):
    secret_name: SecretName = Field(description="Secret with the access key pair.")
    access_key_id_key: str = Field(
        "AWS_ACCESS_KEY_ID", description="Its key holding the access key id."
    )
    secret_access_key_key: str = Field(
        "AWS_SECRET_ACCESS_KEY", description="Its key holding the secret access key."
    )


class S3Values(_Strict):
    bucket: str = Field(description="Bucket of the artifacts.")
    prefix: str = Field("labdeck", description="Folder inside the bucket.")
    endpoint: str | None = Field(
        None, description="Endpoint of an S3-compatible store (MinIO, Ceph); empty: AWS."
    )
    region: str | None = Field(None, description="Region; empty: the AWS default.")
    credentials_secret: S3Credentials | None = Field(
        None,
        description="Secret with the access keys; empty: the pod's cloud identity (IRSA, ...).",
    )


class OidcValues(_Strict):
    provider: Literal["generic", "google"] = Field(
        "generic", description="google presets the issuer and scopes."
    )
    issuer: str | None = Field(None, description="Issuer URL (generic provider only).")
    client_id: str | None = Field(None, description="OAuth client id.")
    client_secret: SecretRef | None = Field(
        None, description="Secret key holding the OAuth client secret."
    )
    hosted_domain: str | None = Field(
        None, description="Google: the Workspace domain users must belong to."
    )


class AuthValues(_Strict):
    mode: Literal["password", "oidc"] = Field(
        "password", description="password: local accounts; oidc: single sign-on."
    )
    session_secret: SecretRef = Field(
        description="Secret key signing session cookies (the same for every replica)."
    )
    admin_users: list[str] = Field([], description="Usernames that are admins.")
    oidc: OidcValues = Field(OidcValues(), description="Single sign-on (mode oidc).")

    @model_validator(mode="after")
    def _oidc_complete(self) -> AuthValues:
        if self.mode != "oidc":
            return self
        missing = [
            name for name in ("client_id", "client_secret") if getattr(self.oidc, name) is None
        ]
        if self.oidc.provider == "generic" and self.oidc.issuer is None:
            missing.append("issuer")
        if missing:
            raise ValueError(f"mode oidc needs oidc.{', oidc.'.join(to_camel(m) for m in missing)}")
        return self


class IngressValues(_Strict):
    enabled: bool = Field(
        True, description="Render a networking.k8s.io/v1 Ingress (turn off with Istio)."
    )
    host: str | None = Field(
        None, description="Host users reach labdeck at; also the Istio Gateway's host."
    )
    tls_secret_name: str | None = Field(
        None, description="Secret with the TLS certificate of host (kubernetes.io/tls)."
    )
    class_name: str | None = Field(
        None, description="ingressClassName; empty: the cluster's default class."
    )


class IstioValues(_Strict):
    enabled: bool = Field(
        False, description="Route / to labdeck with an Istio VirtualService instead of an Ingress."
    )
    gateway: str | None = Field(
        None,
        description="An existing Gateway (<namespace>/<name>) to bind to; empty: labdeck's own.",
    )
    gateway_namespace: str = Field(
        "istio-system", description="Namespace of Istio's ingress gateway pods."
    )
    gateway_selector: dict[str, str] = Field(
        {"istio": "ingressgateway"}, description="Labels of those pods."
    )


class EnvironmentValues(_Strict):
    name: DnsLabel = Field(description="The environment's name (a DNS label).")
    image: str = Field(description="Image of its workspaces.")
    description: str = Field("", description="One line shown next to the name.")
    packages: list[str] = Field(
        [], description="Its requirements (pip syntax), besides JupyterLab."
    )
    spark: bool = Field(
        False, description="Set Spark up (executors run as pods in the workspaces namespace)."
    )


_WORKSPACE_IMAGES = "ghcr.io/labdeck/workspace"


def _default_environments() -> list[EnvironmentValues]:
    from labdeck.config import DEFAULT_ENVIRONMENTS

    return [
        EnvironmentValues(
            name=e.name,
            image=f"{_WORKSPACE_IMAGES}-{e.name}:{__version__}",
            description=e.description,
            packages=e.packages,
            spark=e.spark,
        )
        for e in DEFAULT_ENVIRONMENTS
    ]


class WorkspaceValues(_Strict):
    namespace: DnsLabel = Field("labdeck-users", description="Namespace of the workspaces.")
    storage_class: str | None = Field(
        None, description="Storage class of the home volumes; empty: the default."
    )
    home_size: Quantity = Field("10Gi", description="Size of each home volume.")
    idle_timeout_seconds: float = Field(
        3600, ge=0, description="Stop idle workspaces after this long; 0 never."
    )
    environments: list[EnvironmentValues] = Field(
        default_factory=_default_environments,
        description="The environments users pick from, with their images.",
    )

    @field_validator("environments")
    @classmethod
    def _distinct(cls, value: list[EnvironmentValues]) -> list[EnvironmentValues]:
        names = [e.name for e in value]
        if not names:
            raise ValueError("at least one environment is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"environment names repeat: {names}")
        return value


class MigrationValues(_Strict):
    job: bool = Field(
        True,
        description=(
            "Upgrade the database schema in a Job (`labdeck db upgrade`, one per image and database); "
            "the servers wait for it instead of migrating as they start."
        ),
    )


class DeploymentValues(_Strict):
    namespace: DnsLabel = Field("labdeck-models", description="Namespace of the model deployments.")


class Values(_Strict):
    """A whole values file."""

    namespace: DnsLabel = Field("labdeck", description="Namespace of the server.")
    image: ImageValues = Field(ImageValues())
    server: ServerValues = Field(ServerValues())
    database: DatabaseValues
    s3: S3Values
    auth: AuthValues
    ingress: IngressValues = Field(IngressValues())
    istio: IstioValues = Field(IstioValues())
    workspaces: WorkspaceValues = Field(WorkspaceValues())
    deployments: DeploymentValues = Field(DeploymentValues())
    migrations: MigrationValues = Field(MigrationValues())

    @model_validator(mode="after")
    def _consistent(self) -> Values:
        if not self.server.leader_election and self.server.replica_count > 1:
            raise ValueError(
                f"server.replicas is {self.server.replica_count} but server.leaderElection is off: "
                "every replica would run the controllers; turn leader election on or run one replica"
            )
        namespaces = [self.namespace, self.workspaces.namespace, self.deployments.namespace]
        if len(set(namespaces)) != 3:
            raise ValueError(
                "namespace, workspaces.namespace and deployments.namespace must differ "
                f"(got {namespaces}): "
                "each gets its own Role and NetworkPolicy"
            )
        if self.ingress.enabled and self.istio.enabled:
            raise ValueError(
                "ingress.enabled and istio.enabled are both on: pick one "
                "(set ingress.enabled: false)"
            )
        if self.ingress.host and not (self.ingress.enabled or self.istio.enabled):
            raise ValueError(
                "ingress.host is set but neither ingress.enabled nor istio.enabled routes to it"
            )
        if self.ingress.tls_secret_name and not self.ingress.host:
            raise ValueError("ingress.tlsSecretName needs ingress.host")
        return self

    @property
    def public_url(self) -> str | None:
        if not self.ingress.host:
            return None
        return f"{'https' if self.ingress.tls_secret_name else 'http'}://{self.ingress.host}"


class ValuesError(ValueError):
    """A values file that cannot be used; the message names every wrong field by its path."""


def parse_values(data: Any) -> Values:
    if not isinstance(data, dict):
        raise ValuesError(
            "a values file is a YAML mapping (namespace:, database:, s3:, auth:, ...)"
        )
    try:
        return Values.model_validate(data)
    except ValidationError as error:
        raise ValuesError(_describe(error)) from None


def load_values(text: str) -> Values:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValuesError(f"not valid YAML: {exc}") from None
    return parse_values(data or {})


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # checks across sections name their fields in the message itself
        lines.append(f"{path}: {message}" if path else message)
    return "\n".join(lines)
