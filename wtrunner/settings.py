"""Every environment variable wtrunner reads, typed, in one place (the README's settings table).

Each field names the variable it reads in ``validation_alias``; code and tests may also pass
field names as keyword arguments (``Settings(cache_dir=...)``). Lists are comma-separated
strings. :func:`load_settings` turns a validation failure into a :class:`SettingsError` whose
message names the variable, so start-up stops with a sentence rather than a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AliasChoices,
    BeforeValidator,
    ByteSize,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .scopes import DEFAULT_SCOPES, Scope, parse_scopes

GIB = 1024**3
MIB = 1024**2
# made once per process: the default replica id of this start (a restart is a new replica)
START_NONCE = secrets.token_hex(3)

# Google's OIDC issuer: Pub/Sub push tokens are signed by it.
GOOGLE_ISSUER = "https://accounts.google.com"

# The earlier implementation sent Cloud Batch jobs here when CLOUD_RUN_REGION was unset.
DEFAULT_CLOUD_RUN_REGION = "us-central1"
# A Cloud Run job's id, and its full resource name.
CLOUD_RUN_JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
CLOUD_RUN_JOB_NAME = re.compile(
    r"^projects/(?P<project>[^/\s]+)/locations/(?P<region>[a-z0-9-]+)/jobs/(?P<job>[^/\s]+)$"
)

DEFAULT_CHILD_ENV_PASSTHROUGH = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "STORAGE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "TZ",
    "LANG",
    "LC_*",
    "WT_*",
)


class SettingsError(Exception):
    """Raised when an environment variable holds a value wtrunner cannot use."""


def _split_commas(value: Any) -> Any:
    """Turn ``"a, b,,c"`` into ``("a", "b", "c")``; leave sequences as they are."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wtrunner"


def _default_max_runs() -> int:
    return 4 * (os.cpu_count() or 1)


def _env(*names: str) -> AliasChoices:
    # AliasChoices tries the names in order: the first one set wins.
    return AliasChoices(*names)


class Settings(BaseSettings):
    """The effective configuration of one wtrunner process."""

    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, validate_default=True
    )

    host: str = Field("127.0.0.1", validation_alias=_env("WTRUNNER_HOST"))
    port: int = Field(8080, ge=0, le=65535, validation_alias=_env("WTRUNNER_PORT", "PORT"))
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, validation_alias=_env("WTRUNNER_CACHE_DIR")
    )
    channels: CommaList = Field((), validation_alias=_env("WTRUNNER_CHANNELS"))
    prefixes: CommaList = Field((), validation_alias=_env("WTRUNNER_PREFIXES"))
    env_cache_max: int = Field(32, ge=1, validation_alias=_env("WTRUNNER_ENV_CACHE_MAX"))
    env_cache_max_bytes: int = Field(
        20 * GIB, ge=0, validation_alias=_env("WTRUNNER_ENV_CACHE_MAX_BYTES")
    )
    solve_cache_seconds: float = Field(
        60.0, ge=0, validation_alias=_env("WTRUNNER_SOLVE_CACHE_SECONDS")
    )
    # Which package names of the channels and prefixes GET /workflows lists (fnmatch patterns).
    catalogue_packages: CommaList = Field(
        ("*-workflow",), validation_alias=_env("WTRUNNER_CATALOGUE_PACKAGES")
    )
    # The console's default results URL; {run_id} becomes the run's workflow_run_id. Empty:
    # <first of WTRUNNER_RESULTS_ROOTS, else <cache>/results>/console/{run_id} as a file:// URL.
    console_results_url: str = Field("", validation_alias=_env("WTRUNNER_CONSOLE_RESULTS_URL"))
    max_concurrent_runs: int = Field(
        default_factory=_default_max_runs,
        ge=1,
        validation_alias=_env("WTRUNNER_MAX_CONCURRENT_RUNS"),
    )
    max_queued_runs: int = Field(100, ge=0, validation_alias=_env("WTRUNNER_MAX_QUEUED_RUNS"))
    kill_grace_seconds: float = Field(
        10.0, ge=0, validation_alias=_env("WTRUNNER_KILL_GRACE_SECONDS")
    )
    shutdown_timeout: float = Field(30.0, ge=0, validation_alias=_env("WTRUNNER_SHUTDOWN_TIMEOUT"))
    max_body_bytes: int = Field(16 * MIB, ge=1, validation_alias=_env("WTRUNNER_MAX_BODY_BYTES"))
    results_roots: CommaList = Field((), validation_alias=_env("WTRUNNER_RESULTS_ROOTS"))
    child_env_passthrough: CommaList = Field(
        DEFAULT_CHILD_ENV_PASSTHROUGH, validation_alias=_env("WTRUNNER_CHILD_ENV_PASSTHROUGH")
    )
    # Data-connection variable names a request may set without the package declaring them
    # (a regular expression the whole name must match); reserved names are refused anyway.
    data_connection_env_pattern: str = Field(
        "[A-Z][A-Z0-9_]*", validation_alias=_env("WTRUNNER_DATA_CONNECTION_ENV_PATTERN")
    )
    # Per-run limits on a local workflow and everything it starts: a cgroup's memory.max and
    # pids.max where the server may make one, else RLIMIT_AS and RLIMIT_NPROC. Empty: none.
    run_memory_max: ByteSize | None = Field(
        None, gt=0, validation_alias=_env("WTRUNNER_RUN_MEMORY_MAX")
    )
    run_pids_max: int | None = Field(None, ge=1, validation_alias=_env("WTRUNNER_RUN_PIDS_MAX"))
    # workflows yield the CPU to the server (its health probes, its other runs) when both want it
    run_nice: int = Field(10, ge=0, le=19, validation_alias=_env("WTRUNNER_RUN_NICE"))
    # "auto": each local run gets a cgroup v2 leaf when the server's cgroup is writable (its
    # processes are tracked and killed there too); "off": process groups and /proc only.
    run_cgroups: Literal["auto", "off"] = Field(
        "auto", validation_alias=_env("WTRUNNER_RUN_CGROUPS")
    )
    object_store_options: Annotated[SecretStr, NoDecode] = Field(
        SecretStr(""), validation_alias=_env("WTRUNNER_OBJECT_STORE_OPTIONS")
    )
    keep_run_dirs: bool = Field(False, validation_alias=_env("WTRUNNER_KEEP_RUN_DIRS"))
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_env("WTRUNNER_LOG_FORMAT")
    )
    # The run store: empty = SQLite at <cache>/wtrunner.db.
    database_url: Annotated[SecretStr, NoDecode] = Field(
        SecretStr(""), validation_alias=_env("WTRUNNER_DATABASE_URL")
    )
    # connections to the run store's database this server keeps at most (no overflow)
    database_pool_size: int = Field(5, ge=1, validation_alias=_env("WTRUNNER_DATABASE_POOL_SIZE"))
    run_log_max_bytes: int = Field(
        64 * MIB, ge=1024, validation_alias=_env("WTRUNNER_RUN_LOG_MAX_BYTES")
    )
    run_retention_days: float = Field(
        30.0, gt=0, validation_alias=_env("WTRUNNER_RUN_RETENTION_DAYS")
    )
    replica_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{START_NONCE}",
        min_length=1,
        max_length=255,
        validation_alias=_env("WTRUNNER_REPLICA_ID"),
    )
    # Liveness of replicas sharing one run store: each writes a heartbeat; the runs of a
    # replica whose heartbeat is older than the timeout become lost.
    heartbeat_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("WTRUNNER_HEARTBEAT_SECONDS")
    )
    replica_timeout_seconds: float = Field(
        60.0, gt=0, validation_alias=_env("WTRUNNER_REPLICA_TIMEOUT_SECONDS")
    )
    # How other replicas reach this one (logs of its runs): a URL, or a host or IP.
    advertise_url: str = Field("", validation_alias=_env("WTRUNNER_ADVERTISE_URL"))
    # How often a replica asks Cloud Batch how the jobs of its leased Batch runs are doing.
    batch_poll_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("WTRUNNER_BATCH_POLL_SECONDS")
    )

    pubsub_subscription: str = Field("", validation_alias=_env("WTRUNNER_PUBSUB_SUBSCRIPTION"))
    pubsub_max_messages: int | None = Field(
        None, ge=1, validation_alias=_env("WTRUNNER_PUBSUB_MAX_MESSAGES")
    )
    pubsub_lease_seconds: float = Field(
        60.0, gt=0, validation_alias=_env("WTRUNNER_PUBSUB_LEASE_SECONDS")
    )
    pubsub_drain_seconds: float = Field(
        60.0, ge=0, validation_alias=_env("WTRUNNER_PUBSUB_DRAIN_SECONDS")
    )
    pubsub_max_run_seconds: float = Field(
        570.0, gt=0, validation_alias=_env("WTRUNNER_PUBSUB_MAX_RUN_SECONDS")
    )

    batch_endpoint: str = Field("", validation_alias=_env("WTRUNNER_BATCH_ENDPOINT"))
    batch_entrypoint_prefix: str = Field(
        "pixi run -e default", validation_alias=_env("WTRUNNER_BATCH_ENTRYPOINT_PREFIX")
    )
    # Defaults of a Batch job's resources; a run may override the first ones (query or kwargs).
    batch_cpu_milli: int = Field(8000, ge=1, validation_alias=_env("WTRUNNER_BATCH_CPU_MILLI"))
    batch_memory_mib: int = Field(32768, ge=1, validation_alias=_env("WTRUNNER_BATCH_MEMORY_MIB"))
    batch_machine_type: str = Field("", validation_alias=_env("WTRUNNER_BATCH_MACHINE_TYPE"))
    batch_network: str = Field("", validation_alias=_env("WTRUNNER_BATCH_NETWORK"))
    batch_subnetwork: str = Field("", validation_alias=_env("WTRUNNER_BATCH_SUBNETWORK"))
    batch_no_external_ip: bool = Field(
        False, validation_alias=_env("WTRUNNER_BATCH_NO_EXTERNAL_IP")
    )
    # Client-side limit on the job status look-ups (GetJob) of this server, per second.
    batch_poll_rate: float = Field(
        5.0, gt=0, allow_inf_nan=False, validation_alias=_env("WTRUNNER_BATCH_POLL_RATE")
    )

    # Security (README "Security"). Authentication is off unless a token file or an OIDC issuer
    # is set; Pub/Sub push tokens are verified when the push audience is set.
    auth_tokens_file: Path | None = Field(None, validation_alias=_env("WTRUNNER_AUTH_TOKENS_FILE"))
    # ISSUER=AUDIENCE|AUDIENCE, comma-separated: the OIDC issuers whose JWTs are accepted
    oidc_issuers: CommaList = Field((), validation_alias=_env("WTRUNNER_OIDC_ISSUERS"))
    # NAME or NAME=SCOPE|SCOPE (NAME: a verified email, a subject, or * for any caller)
    oidc_callers: CommaList = Field((), validation_alias=_env("WTRUNNER_OIDC_CALLERS"))
    pubsub_push_audience: str = Field("", validation_alias=_env("WTRUNNER_PUBSUB_PUSH_AUDIENCE"))
    pubsub_push_service_accounts: CommaList = Field(
        (), validation_alias=_env("WTRUNNER_PUBSUB_PUSH_SERVICE_ACCOUNTS")
    )
    # who signs push tokens: Google; another issuer only to test against a local one
    pubsub_push_issuer: str = Field(
        GOOGLE_ISSUER, validation_alias=_env("WTRUNNER_PUBSUB_PUSH_ISSUER")
    )
    metrics_auth: bool = Field(False, validation_alias=_env("WTRUNNER_METRICS_AUTH"))
    # *, none, or origins; empty: * with authentication off, none with it on
    cors_origins: CommaList = Field((), validation_alias=_env("WTRUNNER_CORS_ORIGINS"))
    # names besides localhost a server listening on loopback answers to (DNS rebinding)
    allowed_hosts: CommaList = Field((), validation_alias=_env("WTRUNNER_ALLOWED_HOSTS"))
    # Cloud Run Jobs: the job a run becomes an execution of (its id, in GOOGLE_CLOUD_PROJECT and
    # CLOUD_RUN_REGION, or its full name), the API endpoint, the words before `<name> run ...`
    # in the execution's args, and the client-side limit on GetExecution calls a second.
    cloud_run_job: str = Field("", validation_alias=_env("WTRUNNER_CLOUD_RUN_JOB"))
    cloud_run_endpoint: str = Field("", validation_alias=_env("WTRUNNER_CLOUD_RUN_ENDPOINT"))
    cloud_run_entrypoint_prefix: str = Field(
        "pixi run -e default", validation_alias=_env("WTRUNNER_CLOUD_RUN_ENTRYPOINT_PREFIX")
    )
    cloud_run_poll_rate: float = Field(
        5.0, gt=0, allow_inf_nan=False, validation_alias=_env("WTRUNNER_CLOUD_RUN_POLL_RATE")
    )

    require_emulators: bool = Field(False, validation_alias=_env("WTRUNNER_REQUIRE_EMULATORS"))
    require_postgres: bool = Field(False, validation_alias=_env("WTRUNNER_REQUIRE_POSTGRES"))

    # Names shared with the earlier implementation and its deployments.
    matchspec_override: str = Field(
        "", validation_alias=_env("ECOSCOPE_WORKFLOWS_MATCHSPEC_OVERRIDE")
    )
    otel_exporter: Literal["console", "gcp"] | None = Field(
        None, validation_alias=_env("ECOSCOPE_WORKFLOWS_OTEL_EXPORTER")
    )
    otel_console_exporter_dst: Literal["stdout", "file"] = Field(
        "file", validation_alias=_env("ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_DST")
    )
    otel_console_exporter_file_dst_target_dir: Path | None = Field(
        None, validation_alias=_env("ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR")
    )
    results_env_var: str = Field(
        "WT_RESULTS", min_length=1, validation_alias=_env("WT_INVOKERS__RESULTS_ENV_VAR")
    )
    google_cloud_project: str = Field("", validation_alias=_env("GOOGLE_CLOUD_PROJECT"))
    cloud_run_region: str = Field("", validation_alias=_env("CLOUD_RUN_REGION"))
    batch_service_account: str = Field("", validation_alias=_env("BATCH_SERVICE_ACCOUNT"))

    _cloud_run_region_defaulted: bool = PrivateAttr(False)

    @property
    def effective_database_url(self) -> str:
        """``WTRUNNER_DATABASE_URL``, or the embedded SQLite file ``<cache>/wtrunner.db``."""
        url = self.database_url.get_secret_value().strip()
        return url or f"sqlite:///{self.cache_dir / 'wtrunner.db'}"

    @property
    def effective_console_results_url(self) -> str:
        """The results URL template the console proposes (``{run_id}`` left to fill)."""
        if self.console_results_url.strip():
            return self.console_results_url.strip()
        roots = self.effective_results_roots
        root = roots[0] if roots else str(self.cache_dir / "results")
        if not root.startswith("file://"):
            root = Path(root).expanduser().absolute().as_uri()
        return f"{root.rstrip('/')}/console/{{run_id}}"

    @property
    def effective_advertise_url(self) -> str:
        """How other replicas reach this one: ``WTRUNNER_ADVERTISE_URL``; a bare host or IP
        (a pod's ``status.podIP``) becomes ``http://HOST:<port>``; empty, the host name."""
        advertised = self.advertise_url.strip().rstrip("/") or socket.gethostname()
        if "://" in advertised:
            return advertised
        host = f"[{advertised}]" if ":" in advertised else advertised  # an IPv6 address
        return f"http://{host}:{self.port}"

    @field_validator("run_memory_max", "run_pids_max", mode="before")
    @classmethod
    def _empty_limit_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("data_connection_env_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("otel_exporter", mode="before")
    @classmethod
    def _empty_exporter_is_off(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("otel_console_exporter_file_dst_target_dir", "auth_tokens_file", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("oidc_issuers")
    @classmethod
    def _issuers_name_audiences(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        issuers = [parse_issuer_entry(entry)[0] for entry in value]
        for issuer in issuers:
            if issuers.count(issuer) > 1:
                raise ValueError(f"the issuer {issuer} is named twice: list its audiences once")
        return value

    @field_validator("oidc_callers")
    @classmethod
    def _callers_are_names_with_scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            parse_caller_entry(entry)
        return value

    @field_validator("pubsub_push_issuer")
    @classmethod
    def _push_issuer_is_a_url(cls, value: str) -> str:
        return check_issuer_url(value.strip())

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if ("*" in value or "none" in value) and len(value) > 1:
            raise ValueError("* and none stand alone: give either one of them or a list of origins")
        for origin in value:
            if origin not in ("*", "none"):
                check_origin(origin)
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_are_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not host.replace("-", "").replace(".", "").replace("_", "").isalnum():
                raise ValueError(f"{host!r} is not a host name (no port, no scheme)")
        return tuple(host.lower().rstrip(".") for host in value)

    @model_validator(mode="after")
    def _security_settings_fit_together(self) -> Settings:
        if self.oidc_issuers and not self.oidc_callers:
            raise ValueError(
                "WTRUNNER_OIDC_ISSUERS is set but WTRUNNER_OIDC_CALLERS is empty: name the "
                "callers (verified emails or subjects; * accepts every caller the issuers sign for)"
            )
        if self.oidc_callers and not self.oidc_issuers:
            raise ValueError("WTRUNNER_OIDC_CALLERS is set but WTRUNNER_OIDC_ISSUERS is empty")
        if bool(self.pubsub_push_audience.strip()) != bool(self.pubsub_push_service_accounts):
            raise ValueError(
                "WTRUNNER_PUBSUB_PUSH_AUDIENCE and WTRUNNER_PUBSUB_PUSH_SERVICE_ACCOUNTS go "
                "together: a push token is accepted for its audience and its service account"
            )
        return self

    @field_validator("object_store_options", mode="before")
    @classmethod
    def _options_are_a_json_object(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, dict):
            raw = json.dumps(raw)
        if raw in ("", None):
            return ""
        try:
            parsed = json.loads(raw)
        except (TypeError, ValueError):
            raise ValueError(
                "must be a JSON object (its value is not shown: it may hold secrets)"
            ) from None
        if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
            raise ValueError('must be a JSON object of objects, e.g. {"gs": {"base_url": "..."}}')
        return raw

    @field_validator("cloud_run_job")
    @classmethod
    def _cloud_run_job_is_a_job(cls, value: str) -> str:
        value = value.strip()
        match = CLOUD_RUN_JOB_NAME.match(value)
        job = match.group("job") if match else value
        if value and not CLOUD_RUN_JOB_ID.match(job):
            raise ValueError(
                "must be a Cloud Run job's id (lowercase letters, digits and -, starting with a "
                "letter, at most 63 characters) or its full name projects/P/locations/L/jobs/J"
            )
        return value

    @field_validator("batch_entrypoint_prefix", "cloud_run_entrypoint_prefix")
    @classmethod
    def _prefix_is_words(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"must be words as a shell splits them: {exc}") from None
        return value

    @model_validator(mode="after")
    def _region_defaults_to_us_central1(self) -> Settings:
        if not self.cloud_run_region.strip():
            # Frozen model: set the default the way pydantic itself stores a field.
            object.__setattr__(self, "cloud_run_region", DEFAULT_CLOUD_RUN_REGION)
            self._cloud_run_region_defaulted = True
        else:
            object.__setattr__(self, "cloud_run_region", self.cloud_run_region.strip())
        return self

    @model_validator(mode="after")
    def _console_file_needs_a_directory(self) -> Settings:
        if (
            self.otel_exporter == "console"
            and self.otel_console_exporter_dst == "file"
            and self.otel_console_exporter_file_dst_target_dir is None
        ):
            raise ValueError(
                "ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR is required when "
                "ECOSCOPE_WORKFLOWS_OTEL_EXPORTER=console and the console destination is 'file'"
            )
        return self

    @property
    def effective_results_roots(self) -> tuple[str, ...]:
        """Where ``file://`` results may go: ``WTRUNNER_RESULTS_ROOTS``; when it is empty, any
        absolute path, but only ``<cache>/results`` once authentication is on."""
        if self.results_roots:
            return self.results_roots
        return (str(self.cache_dir / "results"),) if self.auth_enabled else ()

    @property
    def auth_enabled(self) -> bool:
        """Whether callers must authenticate: a token file or an OIDC issuer is configured."""
        return self.auth_tokens_file is not None or bool(self.oidc_issuers)

    @property
    def pubsub_push_verified(self) -> bool:
        """Whether ``POST /run-from-pubsub`` accepts only Google-signed push tokens."""
        return bool(self.pubsub_push_audience.strip())

    @property
    def oidc_audiences(self) -> dict[str, tuple[str, ...]]:
        """The accepted OIDC issuers, each with the audiences its tokens may be for."""
        return dict(parse_issuer_entry(entry) for entry in self.oidc_issuers)

    @property
    def oidc_caller_scopes(self) -> dict[str, frozenset[Scope]]:
        """The OIDC callers allowed in (``*``: any), each with its scopes."""
        return dict(parse_caller_entry(entry) for entry in self.oidc_callers)

    @property
    def effective_cors_origins(self) -> tuple[str, ...]:
        """The origins browsers may call from: ``("*",)`` for any, ``()`` for none.

        Unset: any with authentication off (as the API always allowed), none with it on."""
        if self.cors_origins == ("none",):
            return ()
        if self.cors_origins:
            return self.cors_origins
        return () if self.auth_enabled else ("*",)

    @property
    def cloud_run_region_defaulted(self) -> bool:
        """Whether ``CLOUD_RUN_REGION`` was unset (or blank) and ``us-central1`` is used."""
        return self._cloud_run_region_defaulted

    @property
    def examples_channel(self) -> Path:
        """Where ``wtrunner serve`` builds the examples channel when no channel is configured."""
        return self.cache_dir / "examples-channel"

    @property
    def effective_channels(self) -> tuple[str, ...]:
        """The channels searched: ``WTRUNNER_CHANNELS``, or else the built-in examples channel."""
        return self.channels or (self.examples_channel.as_uri(),)

    def store_options(self, scheme: str) -> dict[str, Any]:
        """The obstore options configured for URLs of ``scheme`` (``gs``, ``s3``, ...)."""
        raw = self.object_store_options.get_secret_value()
        options: dict[str, dict[str, Any]] = json.loads(raw) if raw else {}
        return dict(options.get(scheme, {}))

    def env_var_name(self, field: str) -> str:
        """The environment variable that sets ``field`` (the first name it is read from)."""
        alias = type(self).model_fields[field].validation_alias
        assert isinstance(alias, AliasChoices)
        first = alias.choices[0]
        assert isinstance(first, str)
        return first

    def describe(self, effective: bool = True) -> dict[str, Any]:
        """The settings keyed by variable name, secrets masked (``wtrunner settings``).

        ``effective`` shows what an empty setting stands for where that is a value of its own:
        with no ``WTRUNNER_CHANNELS``, the built-in examples channel; with no
        ``WTRUNNER_RESULTS_ROOTS`` and authentication on, ``<cache>/results``.
        ``effective=False`` gives the configured values, fit to pass on as environment
        variables.
        """
        described: dict[str, Any] = {}
        for field in type(self).model_fields:
            value = getattr(self, field)
            if field == "channels" and effective:
                value = self.effective_channels
            if field == "results_roots" and effective:
                value = self.effective_results_roots
            if isinstance(value, SecretStr):
                value = "**********" if value.get_secret_value() else ""
            elif isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, Path):
                value = str(value)
            described[self.env_var_name(field)] = value
        return described


SECRET_FIELDS = frozenset({"object_store_options"})


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (plus ``overrides``), or raise SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe_errors(exc)) from None


def check_local_channels(channels: Sequence[str], source: str = "WTRUNNER_CHANNELS") -> None:
    """Raise SettingsError naming every local channel (a path or ``file://`` URL) in
    ``channels`` that does not exist or is not a conda channel (no ``<subdir>/repodata.json``).

    Remote channels (https URLs, channel names) are not checked: one that is down is a 503 when
    a run needs it, not a reason to refuse to start. ``source`` names where the channels came
    from in the message (the variable, or a command-line flag).
    """
    problems = []
    for entry in channels:
        path = local_channel_path(entry)
        if path is None:
            continue
        shown = repr(entry) if str(path) == entry else f"{entry!r} ({path})"
        if not path.exists():
            problems.append(f"the channel {shown} does not exist")
        elif not path.is_dir():
            problems.append(f"the channel {shown} is not a directory")
        elif not any(subdir.joinpath("repodata.json").is_file() for subdir in _subdirs(path)):
            problems.append(
                f"{shown} is not a conda channel: no repodata.json in any subdir (noarch/, "
                f"linux-64/, ...); pack workflows into it with `wtrunner channel build "
                f"SOURCE... --output {path}`"
            )
    if problems:
        raise SettingsError(f"{source}: " + "; ".join(problems))


def local_channel_path(entry: str) -> Path | None:
    """The directory a configured channel names, or None for a remote channel.

    Local are ``file://`` URLs and paths starting with ``/``, ``.`` or ``~`` (relative paths
    are relative to the current directory); anything else is a URL or a channel name.
    """
    if "://" in entry:
        parts = urlsplit(entry)
        if parts.scheme != "file":
            return None
        return Path(unquote(parts.path))
    if entry.startswith(("/", ".", "~")):
        return Path(entry).expanduser().absolute()
    return None


def parse_issuer_entry(entry: str) -> tuple[str, tuple[str, ...]]:
    """``ISSUER=AUDIENCE|AUDIENCE`` as the issuer URL and its audiences (ValueError if not)."""
    issuer, equals, audiences = entry.partition("=")
    names = tuple(name.strip() for name in audiences.split("|") if name.strip())
    if not equals or not names:
        raise ValueError(
            f"{entry!r} names no audience: write ISSUER=AUDIENCE (several: AUD1|AUD2), e.g. "
            "https://accounts.google.com=https://wtrunner.example.org"
        )
    return check_issuer_url(issuer.strip().rstrip("/")), names


def parse_caller_entry(entry: str) -> tuple[str, frozenset[Scope]]:
    """``NAME`` or ``NAME=SCOPE|SCOPE`` as the name and its scopes (default: run and read)."""
    name, equals, scopes = entry.partition("=")
    name = name.strip()
    if not name:
        raise ValueError(f"{entry!r} names no caller")
    if not equals:
        return name, DEFAULT_SCOPES
    try:
        return name, parse_scopes(scopes.split("|"))
    except ValueError as exc:
        raise ValueError(f"caller {name!r}: {exc}") from None


def check_issuer_url(url: str) -> str:
    """``url`` if it can name an OIDC issuer: https, or http on a loopback address (tests)."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError(f"{url!r} is not an issuer URL (https://host[/path])")
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname)):
        raise ValueError(f"{url!r}: an issuer is reached over https (http only on loopback)")
    return url


def check_origin(origin: str) -> str:
    """``origin`` if it is a browser origin: ``scheme://host[:port]``, nothing after."""
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port]")
    return origin


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) names this machine's loopback interface."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _subdirs(path: Path) -> list[Path]:
    try:
        return [child for child in path.iterdir() if child.is_dir()]
    except OSError:
        return []


def _describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        name = _variable_for(name)
        message = error["msg"].removeprefix("Value error, ")
        if name in {_variable_for(f) for f in SECRET_FIELDS} or not error["loc"]:
            lines.append(f"{name}: {message}")
        else:
            lines.append(f"{name}: {message} (got {error['input']!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)


def _variable_for(name: str) -> str:
    field = Settings.model_fields.get(name)
    if field is not None and isinstance(field.validation_alias, AliasChoices):
        first = field.validation_alias.choices[0]
        return first if isinstance(first, str) else name
    return name
