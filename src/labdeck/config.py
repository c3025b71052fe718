"""The settings tree: every knob of labdeck, typed and documented in one place.

Precedence, highest first: a CLI flag, a ``LABDECK_*`` environment variable (nested
sections joined with ``__``, e.g. ``LABDECK_SERVER__PORT``), the TOML file given with
``--config``, then the default written here. ``labdeck config show`` prints the result.
Every field carries a description; a test fails when one does not.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class _Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port the HTTP server listens on (0 picks a free one).")
    proxy_headers: bool = Field(
        False, description="Trust X-Forwarded-For/-Proto from the addresses in forwarded_allow_ips (behind an ingress)."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1", description="Comma-separated proxy addresses whose X-Forwarded-* headers are trusted ('*' for any)."
    )


class DatabaseSettings(_Section):
    url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the metadata database, e.g. postgresql+psycopg://user@host/db. "
            "Empty means the embedded SQLite file <data_dir>/labdeck.db."
        ),
    )
    pool_size: int = Field(8, ge=1, le=256, description="Connections kept open for readers (and writers on PostgreSQL).")
    group_commit_max: int = Field(
        256, ge=1, le=100_000, description="SQLite only: most write operations committed together in one transaction."
    )
    migrate_on_start: bool = Field(
        True,
        description=(
            "Upgrade the schema when the server starts. Off (--no-migrate) when a migration Job runs "
            "`labdeck db upgrade` instead: the server then waits for the schema (schema_wait_s)."
        ),
    )
    schema_wait_s: float = Field(
        120, ge=0, le=3600, description="With migrate_on_start off: how long start-up waits for the schema to be current."
    )


class ArtifactSettings(_Section):
    uri: str | None = Field(
        None,
        description=(
            "Where artifacts are stored: a local folder, or s3://bucket/prefix. "
            "Empty means the folder <data_dir>/artifacts."
        ),
    )
    s3_endpoint_url: str | None = Field(
        None,
        description=(
            "Endpoint of an S3-compatible store (MinIO, Ceph, ...). Empty means AWS, or the "
            "endpoint named by MLFLOW_S3_ENDPOINT_URL / AWS_ENDPOINT_URL."
        ),
    )
    s3_region: str | None = Field(None, description="S3 region; empty means the usual AWS configuration.")
    multipart_upload_chunk_mb: int = Field(
        10, ge=5, le=5000, description="Part size offered to clients for multipart uploads to S3, in MiB."
    )


class OidcSettings(_Section):
    provider: Literal["generic", "google"] = Field(
        "generic", description="google: issuer, scopes and the hosted-domain check are preset; give client id and secret."
    )
    issuer: str | None = Field(None, description="OpenID Connect issuer URL (its /.well-known/openid-configuration is read).")
    client_id: str | None = Field(None, description="OAuth client id registered with the provider.")
    client_secret: str | None = Field(
        None, description="OAuth client secret (prefer the env LABDECK_AUTH__OIDC__CLIENT_SECRET); never logged."
    )
    scopes: list[str] = Field(["openid", "email", "profile"], description="Scopes asked for at login.")
    username_claim: str = Field("email", description="ID-token claim that becomes the labdeck username.")
    groups_claim: str = Field("groups", description="ID-token claim listing the user's groups (for allowed_groups).")
    allowed_domains: list[str] = Field([], description="E-mail domains allowed to log in; empty allows any.")
    allowed_users: list[str] = Field([], description="Usernames allowed to log in; empty allows any (with the other rules).")
    allowed_groups: list[str] = Field([], description="Groups (from groups_claim) allowed to log in; empty allows any.")
    hosted_domain: str | None = Field(None, description="Google: the Workspace domain (the 'hd' claim) users must belong to.")


class AuthSettings(_Section):
    mode: Literal["none", "password", "oidc"] = Field(
        "none",
        description=(
            "none: single user, no login, loopback only; password: local accounts; "
            "oidc: single sign-on with an OpenID Connect provider (local accounts still work for tokens)."
        ),
    )
    session_secret: str | None = Field(
        None,
        description=(
            "Key that signs session cookies (env LABDECK_AUTH__SESSION_SECRET). Empty: one is generated "
            "into <data_dir>/session.key; set it when several replicas serve one platform."
        ),
    )
    session_hours: float = Field(12, gt=0, le=24 * 30, description="How long a browser login lasts.")
    admin_users: list[str] = Field([], description="Usernames that are admins (made so when they log in or are created).")
    default_permission: Literal["NONE", "READ", "EDIT", "MANAGE"] = Field(
        "READ", description="What users may do with resources nobody granted them (resources of private teams: NONE)."
    )
    team_permission: Literal["READ", "EDIT", "MANAGE"] = Field(
        "EDIT", description="What members of a resource's owning team may do with it."
    )
    login_attempts: int = Field(10, ge=1, le=1000, description="Failed logins allowed per user and per address per window.")
    login_window_minutes: int = Field(15, ge=1, le=1440, description="The window over which failed logins are counted.")
    public_url: str | None = Field(
        None, description="The URL users reach labdeck at (for OIDC redirects); empty: taken from each request."
    )
    oidc: OidcSettings = Field(default_factory=OidcSettings, description="Single sign-on.")


class KubernetesSettings(_Section):
    namespace: str = Field("labdeck", description="Namespace that model deployments run in.")
    image: str = Field(
        "ghcr.io/labdeck/labdeck:latest", description="Image of the model servers (it runs `labdeck serve`)."
    )
    istio: bool = Field(False, description="Split traffic between predictors with an Istio VirtualService.")
    istio_gateway: str = Field(
        "seldon-system/seldon-gateway", description="The Istio Gateway (<namespace>/<name>) the VirtualServices bind to."
    )
    cpu_utilization: int = Field(
        70, ge=1, le=100, description="Average CPU use, in percent of the request, that autoscaled predictors aim for."
    )
    kubeconfig: str | None = Field(None, description="Path to a kubeconfig; empty: in-cluster, then ~/.kube/config.")


class DeploymentSettings(_Section):
    backend: Literal["local", "kubernetes"] = Field(
        "local", description="Where model servers run: local processes on this machine, or Kubernetes."
    )
    gateway_timeout_s: float = Field(60, gt=0, le=3600, description="Longest a prediction may take through the gateway.")
    max_body_mb: float = Field(64, gt=0, le=4096, description="Largest prediction request the gateway accepts.")
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings, description="The Kubernetes backend.")


DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class EnvironmentSettings(_Section):
    """One environment users pick when they start a workspace."""

    name: str = Field(description="Short name (a DNS label): what users pick and what runs are tagged with.")
    description: str = Field("", description="One line shown next to the name.")
    python: str | None = Field(
        None, description="Python to build it with (a version uv finds, or a path); empty: the server's own Python."
    )
    packages: list[str] = Field([], description="Requirements installed into it (pip syntax), besides JupyterLab.")
    lock_file: Path | None = Field(
        None, description="A requirements file with every version pinned (uv pip compile); used instead of packages."
    )
    spark: bool = Field(False, description="Set Spark up for the notebook: driver on loopback, its UI through the proxy.")
    image: str | None = Field(None, description="Image of this environment's workspaces on Kubernetes.")
    teams: list[str] = Field([], description="Teams whose members may use it; empty: everyone.")
    cpu_request: str | None = Field(None, description="CPU a workspace asks for on Kubernetes (e.g. 500m).")
    cpu_limit: str | None = Field(None, description="Most CPU a workspace may use on Kubernetes.")
    memory_request: str | None = Field(None, description="Memory a workspace asks for on Kubernetes (e.g. 1Gi).")
    memory_limit: str | None = Field(None, description="Most memory a workspace may use on Kubernetes.")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError(f"environment name {value!r} must be a DNS label (a-z, 0-9, '-', at most 63)")
        return value


BASE_PACKAGES = ["pandas<3", "scikit-learn", "matplotlib", "mlflow"]
DEFAULT_ENVIRONMENTS = [
    EnvironmentSettings(
        name="base", description="Python data science: pandas, scikit-learn, matplotlib, mlflow", packages=BASE_PACKAGES
    ),
    EnvironmentSettings(
        name="spark",
        description="base, plus PySpark (local mode) for data that outgrows pandas",
        packages=[*BASE_PACKAGES, "pyspark", "pyarrow"],
        spark=True,
        memory_request="2Gi",
    ),
]


class WorkspaceKubernetesSettings(_Section):
    namespace: str = Field("labdeck-users", description="Namespace that workspaces (and Spark executors) run in.")
    storage_class: str | None = Field(None, description="Storage class of the home volumes; empty: the cluster's default.")
    storage_size: str = Field("10Gi", description="Size of each user's home volume (the claim-<user> PVC).")
    image: str = Field(
        "ghcr.io/labdeck/workspace-base:latest", description="Image of an environment that names none."
    )
    tracking_uri: str | None = Field(
        None,
        description="labdeck's URL as workspace pods reach it (its Service, e.g. http://labdeck.labdeck.svc:8080); "
        "empty: the address a start request reached.",
    )


class WorkspaceSettings(_Section):
    environments: list[EnvironmentSettings] = Field(
        default_factory=lambda: [e.model_copy() for e in DEFAULT_ENVIRONMENTS],
        description="The environments users pick from ([[workspaces.environments]] tables).",
    )
    default_environment: str = Field("base", description="The environment of a start request that names none.")
    idle_timeout_s: float = Field(
        3600, ge=0, description="Stop a workspace with no proxy traffic and no busy kernel for this long; 0 never does."
    )
    max_age_s: float = Field(0, ge=0, description="Stop any workspace this long after it started; 0: no limit.")
    cull_interval_s: float = Field(60, gt=0, description="How often idle and old workspaces are looked for.")
    max_servers_per_user: int = Field(3, ge=1, le=100, description="Servers one user may run at once (named ones included).")
    start_timeout_s: float = Field(120, gt=0, description="Longest a workspace may take to answer once started.")
    stop_grace_s: float = Field(10, ge=0, description="How long a stopping workspace may take before it is killed.")
    envs_dir: Path | None = Field(None, description="Where environments are built; empty: <data-dir>/envs.")
    uv_cache_dir: Path | None = Field(None, description="uv's package cache for environment builds; empty: uv's default.")
    kubernetes: WorkspaceKubernetesSettings = Field(
        default_factory=WorkspaceKubernetesSettings, description="Workspaces on Kubernetes."
    )


class LeaderElectionSettings(_Section):
    enabled: bool = Field(
        False,
        description=(
            "Several replicas on Kubernetes: the one holding a coordination.k8s.io Lease runs the controllers "
            "and the culler, every replica serves. Off: this process simply leads."
        ),
    )
    lease_name: str = Field("labdeck-leader", description="Name of the Lease the replicas compete for.")
    namespace: str | None = Field(
        None, description="Namespace of the Lease; empty: the pod's own (in-cluster), else 'default'."
    )
    identity: str | None = Field(
        None, description="This replica's name in the Lease; empty: the host name (the pod's name) plus a random suffix."
    )
    lease_duration_s: float = Field(
        15, ge=1, le=600, description="How long a Lease not renewed keeps others waiting (the longest takeover)."
    )
    renew_deadline_s: float = Field(
        10, ge=1, le=600, description="A leader that could not renew for this long stops leading (below lease_duration_s)."
    )
    retry_period_s: float = Field(2, gt=0, le=60, description="How often the Lease is tried (followers) or renewed (the leader).")
    refresh_s: float = Field(
        2, gt=0, le=60, description="How often a follower reads the routes of deployments and workspaces from the database."
    )
    activity_write_s: float = Field(
        30, ge=1, le=3600, description="A follower writes a workspace's proxy activity to the database at most this often."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionSettings:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "cluster.leader_election needs retry_period_s < renew_deadline_s < lease_duration_s "
                f"(got {self.retry_period_s:g}, {self.renew_deadline_s:g}, {self.lease_duration_s:g})"
            )
        return self


class ClusterSettings(_Section):
    leader_election: LeaderElectionSettings = Field(
        default_factory=LeaderElectionSettings, description="Which replica runs the controllers."
    )


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level written to the log.")
    format: Literal["text", "json"] = Field("text", description="text: key=value lines for people; json: one object per line.")
    access_log: bool = Field(False, description="Write one log line per HTTP request.")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """The effective configuration of one labdeck process."""

    model_config = SettingsConfigDict(
        env_prefix="LABDECK_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(Path("~/.labdeck"), description="Folder holding the embedded database and artifacts.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="The HTTP server.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="The metadata database.")
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings, description="The artifact store.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Identity and permissions.")
    deployments: DeploymentSettings = Field(default_factory=DeploymentSettings, description="Model deployments.")
    workspaces: WorkspaceSettings = Field(default_factory=WorkspaceSettings, description="Notebook workspaces.")
    cluster: ClusterSettings = Field(default_factory=ClusterSettings, description="Several replicas of one platform.")
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="Logging.")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'labdeck.db'}"

    @property
    def artifacts_uri(self) -> str:
        return self.artifacts.uri or str(self.data_dir / "artifacts")

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build the settings from flags (``overrides``, nested dicts), env, the TOML file, defaults."""
        if config_file is not None and not Path(config_file).is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        bound = type("Settings", (cls,), {"model_config": {**cls.model_config, "toml_file": config_file}})
        return bound(**_drop_none(overrides))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    def described(self) -> list[tuple[str, Any, str]]:
        """Every leaf setting as (dotted name, effective value, description)."""
        rows: list[tuple[str, Any, str]] = []
        _walk(self, "", rows)
        rows.append(("database_url (effective)", _redacted("database_url", self.database_url), "The database URL in use."))
        rows.append(("artifacts_uri (effective)", _redacted("artifacts_uri", self.artifacts_uri), "The artifact root in use."))
        return rows


def _walk(model: BaseModel, prefix: str, rows: list[tuple[str, Any, str]]) -> None:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _walk(value, f"{prefix}{name}.", rows)
        else:
            rows.append((f"{prefix}{name}", _redacted(name, value), field.description or ""))


def _redacted(name: str, value: Any) -> Any:
    """Secrets are shown as set or not, never printed; so are passwords inside URLs
    (``postgresql+psycopg://user:password@host/db``)."""
    if name.endswith("secret") and value:
        return "(set, hidden)"
    if isinstance(value, str) and "://" in value:
        return _url_without_password(value)
    return value


# SQLAlchemy's reading of a URL: the password runs from the first ':' after the scheme
# to the '@' (it may hold '/', never an unescaped '@').
_URL_PASSWORD = re.compile(r"^([\w+.\-]+://[^:/@]*):[^@]*@")


def _url_without_password(url: str) -> str:
    """``user:***@host``: the URL as given, its password hidden."""
    return _URL_PASSWORD.sub(r"\1:***@", url, count=1)


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready data, secrets hidden (what ``config show --json`` prints)."""

    def walk(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: walk(_redacted(k, v)) for k, v in data.items()}
        return data

    return walk(settings.model_dump(mode="json"))


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    """CLI flags that were not given arrive as None; they must not shadow lower sources."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
