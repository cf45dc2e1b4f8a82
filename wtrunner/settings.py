"""Every environment variable wtrunner reads, typed, in one place (the README's settings table).

Each field names the variable it reads in ``validation_alias``; code and tests may also pass
field names as keyword arguments (``Settings(cache_dir=...)``). Lists are comma-separated
strings. :func:`load_settings` turns a validation failure into a :class:`SettingsError` whose
message names the variable, so start-up stops with a sentence rather than a traceback.
"""

from __future__ import annotations

import json
import os
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
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GIB = 1024**3
MIB = 1024**2
# made once per process: the default replica id of this start (a restart is a new replica)
START_NONCE = secrets.token_hex(3)

# The earlier implementation sent Cloud Batch jobs here when CLOUD_RUN_REGION was unset.
DEFAULT_CLOUD_RUN_REGION = "us-central1"

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
    def effective_advertise_url(self) -> str:
        """How other replicas reach this one: ``WTRUNNER_ADVERTISE_URL``; a bare host or IP
        (a pod's ``status.podIP``) becomes ``http://HOST:<port>``; empty, the host name."""
        advertised = self.advertise_url.strip().rstrip("/") or socket.gethostname()
        if "://" in advertised:
            return advertised
        host = f"[{advertised}]" if ":" in advertised else advertised  # an IPv6 address
        return f"http://{host}:{self.port}"

    @field_validator("otel_exporter", mode="before")
    @classmethod
    def _empty_exporter_is_off(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("otel_console_exporter_file_dst_target_dir", mode="before")
    @classmethod
    def _empty_dir_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

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

    @field_validator("batch_entrypoint_prefix")
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
        with no ``WTRUNNER_CHANNELS``, the built-in examples channel. ``effective=False`` gives
        the configured values, fit to pass on as environment variables.
        """
        described: dict[str, Any] = {}
        for field in type(self).model_fields:
            value = getattr(self, field)
            if field == "channels" and effective:
                value = self.effective_channels
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
