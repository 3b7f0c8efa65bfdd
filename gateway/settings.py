"""A node's settings: a TOML file, overridable by `KIUNGO_*` environment variables, checked at start.

Every mistake is reported at once with the setting it concerns, so an operator fixes a file in one go
instead of one crash at a time.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.errors import ConfigError
from gateway.identifiers import ClientId, IdentifierError, ServiceId, check_part

_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest request body accepted")
    max_xml_depth: int = Field(64, ge=8, le=1024)
    provider_timeout: float = Field(30.0, gt=0, le=600, description="seconds for a provider to answer")
    tls_cert: Path | None = Field(None, description="serve local clients over HTTPS with this certificate")
    tls_key: Path | None = Field(None, description="its key (encrypted with the node's key passphrase)")
    passphrase_file: Path | None = Field(None, description="else federation.passphrase_file or KIUNGO_KEY_PASSPHRASE")

    @model_validator(mode="after")
    def _pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class ClientSettings(_Strict):
    """A local client subsystem: an information system that calls services through this node."""

    name: str = ""
    token_sha256: str | None = Field(
        None, description="SHA-256 (hex) of the subsystem's access token; the token stays with it"
    )
    tls_cert: Path | None = Field(
        None, description="the subsystem's TLS client certificate (PEM; self-signed is fine), when it uses one"
    )

    @field_validator("token_sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.lower()
        if not _SHA256.fullmatch(v):
            raise ValueError("must be 64 hexadecimal characters (sha256 of the token)")
        return v

    @model_validator(mode="after")
    def _some_credential(self) -> ClientSettings:
        if self.token_sha256 is None and self.tls_cert is None:
            raise ValueError("a client needs token_sha256 or tls_cert (or both)")
        return self


class SubsystemSettings(_Strict):
    name: str = ""


class ServiceSettings(_Strict):
    """A service offered by a subsystem this node hosts, and the system that answers it."""

    system: str
    type: Literal["rest", "soap"]
    operation: str = Field("", description="SOAP: the operation; REST: the base path the client's path follows")
    openapi: str | None = Field(None, description="REST: where the system publishes its OpenAPI (path or URL)")
    allow: list[str] = Field(
        default_factory=list,
        description="without [policy]: client subsystems allowed to call it (with [policy], agreements decide)",
    )
    subject: list[str] = Field(
        default_factory=list,
        description="where the data subject's identifier sits: path:/v1/x/{id}, query:name, json:a.b, xml:element",
    )
    description: str = ""

    @field_validator("subject")
    @classmethod
    def _locators(cls, v: list[str]) -> list[str]:
        for item in v:
            kind, _, where = item.partition(":")
            if kind not in ("path", "query", "json", "xml") or not where:
                raise ValueError(f"{item!r}: a locator is path:/template/{{name}}, query:NAME, json:a.b or xml:NAME")
        return v

    @field_validator("allow")
    @classmethod
    def _clients(cls, v: list[str]) -> list[str]:
        for item in v:
            if item != "*":
                ClientId.parse(item)
        return v


class FederationSettings(_Strict):
    """This node's place in the federation: its member, keys, the directory and how peers are trusted."""

    member: str = Field(description="the member this node belongs to, e.g. ZZ/GOV/MSP")
    directory: str = Field(description="URL or file of the signed federation directory")
    anchor: Path = Field(description="the directory signer's certificate, distributed out of band")
    refresh_seconds: float = Field(60.0, gt=0)
    host: str = Field("127.0.0.1", description="address of the mutual-TLS listener for peer gateways")
    port: int = Field(0, ge=0, le=65535)
    auth_cert: Path
    auth_key: Path
    sign_cert: Path
    sign_key: Path
    passphrase_file: Path | None = Field(None, description="else the KIUNGO_KEY_PASSPHRASE environment variable")
    revocation: Literal["crl", "ocsp"] = "crl"
    revocation_cache_seconds: float = Field(60.0, ge=0)
    revocation_max_age_seconds: float = Field(86400.0, gt=0)
    clock_skew_seconds: float = Field(30.0, gt=0)
    replay_window_seconds: float = Field(600.0, gt=0)
    peer_timeout: float = Field(30.0, gt=0)

    @field_validator("member")
    @classmethod
    def _member(cls, v: str) -> str:
        try:
            cid = ClientId.parse(v)
        except IdentifierError as exc:
            raise ValueError(str(exc)) from None
        if cid.subsystem is not None:
            raise ValueError("a member, not a subsystem: INSTANCE/CLASS/CODE")
        return v


class PolicySettings(_Strict):
    """Data-sharing agreements decide every exchange this node provides (default deny)."""

    agreements: list[Path] = Field(description="agreement files, or directories of them (*.toml)")
    forbid: list[Path] = Field(default_factory=list, description="Cedar files with cross-cutting forbid rules")


class ConsentSettings(_Strict):
    """The consent registry of the data this node provides (checked where an agreement's basis is consent)."""

    url: str | None = Field(None, description="sqlite:///PATH or postgresql://...; default [state] url, else db")
    db: Path | None = Field(None, description="an SQLite file; default: DATA_DIR/consent.sqlite")
    controller: str | None = Field(None, description="default: federation.member")
    receipt_key: Path | None = Field(None, description="key that signs consent receipts; default: federation.sign_key")
    passphrase_file: Path | None = Field(None, description="else federation.passphrase_file or KIUNGO_KEY_PASSPHRASE")


class LogSettings(_Strict):
    """The tamper-evident exchange log: every exchange, on both gateways, or no exchange."""

    url: str | None = Field(None, description="sqlite:///PATH or postgresql://...; default DATA_DIR/log.sqlite")
    sign_interval_seconds: float = Field(60.0, gt=0, description="how often the tree head is signed")
    tsa_url: str | None = Field(None, description="an RFC 3161 time-stamp authority for signed tree heads")
    bodies_key_file: Path | None = Field(
        None, description="keep request and response bodies, encrypted with this key (kept outside the database)"
    )


class VsrSourceSettings(_Strict):
    """The services the virtual registry asks (the defaults are the sandbox federation's)."""

    civil_registry: str = Field("ZZ/GOV/CRA/civreg", description="subsystem with GetPersonByNationalId, ...")
    tax: str = "ZZ/GOV/TAX/taxreg/taxpayers"
    social_security: str = "ZZ/GOV/SSF/contributions/members"
    programmes: str = "ZZ/GOV/MSP/programme-mis/beneficiaries"


class VsrSettings(_Strict):
    """The virtual social registry, hosted on this node as the system `system`."""

    client: str = Field(description="the registry's client subsystem here, e.g. ZZ/GOV/MSP/vsr (in [clients])")
    token_file: Path = Field(description="file holding the registry's client token (its sha256 is in [clients])")
    system: str = Field("vsr", description="the system name the registry's services point at")
    rules: list[Path] = Field(description="programme rule files, or directories of them (*.toml)")
    model: Path | None = Field(None, description="matching model (kiungo match train) for people without an ID")
    registry_size: int = Field(1_000_000, ge=1, description="people in the civil registry: sets the match prior")
    match_threshold: float = Field(0.95, gt=0, le=1)
    match_margin: float = Field(0.5, ge=0, le=1)
    source_timeout: float = Field(5.0, gt=0, le=120, description="seconds each source may take")
    as_of: str | None = Field(None, description="decide as on this ISO date instead of today (tests, replays)")
    jobs_url: str | None = Field(None, description="bulk jobs database; default sqlite DATA_DIR/vsr-jobs.sqlite")
    bulk_concurrency: int = Field(8, ge=1, le=256, description="people decided at once, without batches")
    batch_size: int = Field(
        100, ge=0, le=100, description="bulk jobs ask the agencies for up to this many people per exchange; 0: one"
    )
    bulk_max_items: int = Field(1_000_000, ge=1)
    gateway_url: str | None = Field(None, description="reach the gateway by URL instead of in process")
    sources: VsrSourceSettings = VsrSourceSettings()


class EventsSettings(_Strict):
    """The civil registry's event service (DCI subscribe/notify), hosted on this node as the system `system`."""

    client: str = Field(description="the service's client subsystem here, e.g. ZZ/GOV/CRA/events (in [clients])")
    token_file: Path = Field(description="file holding the service's client token (its sha256 is in [clients])")
    system: str = Field("events", description="the system name the subscription service points at")
    source: str = Field("ZZ/GOV/CRA/civreg", description="subsystem with GetDeathsSince and GetBirthsSince")
    source_namespace: str = Field("urn:zz:cra:civreg:1", description="XML namespace of those operations")
    purpose: str = Field("vital-event-notification", pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    poll_seconds: float = Field(5.0, gt=0, le=86400, description="how often the civil registry is asked")
    since: str | None = Field(None, description="ISO date to read events from; default the day the store was made")
    max_attempts: int = Field(8, ge=1, le=100, description="attempts before a delivery is a dead letter")
    retry_base_seconds: float = Field(1.0, gt=0, le=3600, description="retry after min(base * 2**attempts, max)")
    retry_max_seconds: float = Field(300.0, gt=0, le=86400)
    exchange_timeout: float = Field(30.0, gt=0, le=600, description="seconds each poll or delivery may take")
    url: str | None = Field(None, description="sqlite:///PATH or postgresql://...; default DATA_DIR/events.sqlite")
    deliver_concurrency: int = Field(4, ge=1, le=256, description="deliveries in flight at once")

    @field_validator("since")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                date.fromisoformat(v)
            except ValueError:
                raise ValueError("must be an ISO date, e.g. 2026-01-31") from None
        return v

    @field_validator("source")
    @classmethod
    def _subsystem(cls, v: str) -> str:
        try:
            ClientId.parse(v, require_subsystem=True)
        except IdentifierError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _retries(self) -> EventsSettings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds must be at least retry_base_seconds")
        return self


class StateSettings(_Strict):
    """Where state lives: by default SQLite files in data_dir and in-process memory, for one node alone.

    Replicas of one gateway share `url` (PostgreSQL) and `redis_url`; each keeps its own exchange log.
    """

    url: str | None = Field(
        None, description="database for consent, monitoring, jobs and events (postgresql://...); default SQLite files"
    )
    redis_url: str | None = Field(
        None, description="redis://HOST:PORT/DB for replay nonces, rate limits, circuit breakers and caches"
    )
    redis_prefix: str = Field("kiungo", pattern=r"^[A-Za-z0-9:_.-]{1,64}$", description="key prefix in Redis")
    breaker_failures: int = Field(5, ge=1, le=1000, description="failures in a row that open a circuit")
    breaker_reset_seconds: float = Field(30.0, gt=0, le=3600, description="an open circuit lets a trial call after")


_SCRYPT_HASH = re.compile(r"\$scrypt\$ln=\d{1,2},r=\d{1,2},p=\d\$[A-Za-z0-9+/]{16,}\$[A-Za-z0-9+/]{32,}")
_CONSOLE_USER = re.compile(r"[a-z][a-z0-9._-]{0,63}")


class ConsoleUserSettings(_Strict):
    """A person who signs in to the console: her role and the scrypt hash of her password, never the password."""

    role: Literal["dpo", "auditor", "operator"]
    password_hash: str = Field(description="`kiungo gateway console-user NAME --role ROLE` prints it")
    name: str = Field("", max_length=128, description="the person's name, for the screen")

    @field_validator("password_hash")
    @classmethod
    def _scrypt(cls, v: str) -> str:
        if not _SCRYPT_HASH.fullmatch(v):
            raise ValueError("must be an scrypt hash as `kiungo gateway console-user` prints it ($scrypt$ln=...)")
        return v


class ConsoleSettings(_Strict):
    """The web console for DPOs, auditors and operators (docs/console.md): at /console, or on its own listener."""

    users: dict[str, ConsoleUserSettings] = Field(default_factory=dict)
    host: str = Field("127.0.0.1", description="address of the console's own listener (used with port)")
    port: int | None = Field(
        None, ge=0, le=65535, description="serve the console on its own listener; unset: at /console on the gateway"
    )
    secret_file: Path | None = Field(
        None, description="signs session cookies; default DATA_DIR/console.secret, made once (replicas share it)"
    )
    url: str | None = Field(None, description="the console trail's database; default [state] url, else DATA_DIR")
    idle_minutes: int = Field(30, ge=1, le=720, description="a session ends after this long without a request")
    max_hours: int = Field(12, ge=1, le=168, description="and after this long in any case")
    secure_cookies: bool | None = Field(None, description="mark cookies Secure; default: when the request is HTTPS")
    signin_failures: int = Field(5, ge=1, le=100, description="failed sign-ins per user name or address, per window")
    signin_window_seconds: float = Field(300.0, gt=0, le=86400)

    @field_validator("users")
    @classmethod
    def _names(cls, v: dict[str, ConsoleUserSettings]) -> dict[str, ConsoleUserSettings]:
        for name in v:
            if not _CONSOLE_USER.fullmatch(name):
                raise ValueError(f"user {name!r}: lower-case letters, digits, '.', '_' or '-', starting with a letter")
        return v


class OperatorSettings(_Strict):
    token_sha256: str | None = Field(None, description="SHA-256 (hex) of the operator API token")


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KIUNGO_", env_nested_delimiter="__", extra="forbid", frozen=True)

    instance: str = Field(description="federation instance code, e.g. ZZ")
    name: str = "Kiungo gateway"
    data_dir: Path = Path("var/gateway")
    server: ServerSettings = ServerSettings()
    operator: OperatorSettings = OperatorSettings()
    state: StateSettings = StateSettings()
    federation: FederationSettings | None = None
    policy: PolicySettings | None = None
    log: LogSettings = LogSettings()
    usage_clients: list[str] = Field(
        default_factory=list, description="clients (a citizen portal) that may ask findUsage: who used a person's data"
    )
    consent: ConsentSettings | None = None
    subject_secret_file: Path | None = Field(
        None, description="secret for keyed hashes of data subjects' ids; default DATA_DIR/subject.secret, made once"
    )
    clients: dict[str, ClientSettings] = Field(default_factory=dict)
    subsystems: dict[str, SubsystemSettings] = Field(default_factory=dict)
    systems: dict[str, dict[str, Any]] = Field(default_factory=dict)
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    vsr: VsrSettings | None = None
    events: EventsSettings | None = None
    console: ConsoleSettings | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # the environment overrides the file

    @field_validator("instance")
    @classmethod
    def _instance(cls, v: str) -> str:
        try:
            return check_part(v, "instance")
        except IdentifierError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> NodeSettings:
        problems: list[str] = []
        for key in self.clients:
            problems += _id_problems(f"clients.{key}", key, self.instance, subsystem=True)
        for key in self.subsystems:
            problems += _id_problems(f"subsystems.{key}", key, self.instance, subsystem=True)
        hosted = {part.system for part in (self.vsr, self.events) if part is not None}  # systems in process
        for key, service in self.services.items():
            where = f"services.{key}"
            try:
                sid = ServiceId.parse(key)
            except IdentifierError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if sid.provider.instance != self.instance:
                problems.append(f"{where}: instance {sid.provider.instance} is not this node's ({self.instance})")
            if str(sid.provider) not in self.subsystems:
                problems.append(f"{where}: subsystem {sid.provider} is not listed in [subsystems]")
            if service.system not in self.systems and service.system not in hosted:
                problems.append(f"{where}: system {service.system!r} is not defined in [systems]")
            if service.type == "soap" and not service.operation:
                problems.append(f"{where}: a SOAP service needs `operation`")
            if service.type == "rest" and service.operation and not service.operation.startswith("/"):
                problems.append(f"{where}: a REST service's `operation` is a base path starting with /")
            for client in service.allow:
                if client != "*" and client not in self.clients and self.federation is None:
                    problems.append(f"{where}: allowed client {client} is not listed in [clients]")
        for name, system in self.systems.items():
            if "connector" not in system:
                problems.append(f'systems.{name}: needs `connector` (e.g. "rest" or "soap")')
        if self.vsr is not None and self.vsr.client not in self.clients:
            problems.append(f"vsr.client: {self.vsr.client} is not listed in [clients]")
        if self.events is not None and self.events.client not in self.clients:
            problems.append(f"events.client: {self.events.client} is not listed in [clients]")
        if problems:
            raise ValueError("\n  - ".join(problems))
        return self


def _id_problems(where: str, key: str, instance: str, *, subsystem: bool) -> list[str]:
    try:
        cid = ClientId.parse(key, require_subsystem=subsystem)
    except IdentifierError as exc:
        return [f"{where}: {exc}"]
    if cid.instance != instance:
        return [f"{where}: instance {cid.instance} is not this node's ({instance})"]
    return []


def load(path: Path) -> NodeSettings:
    """Read and check a node's settings file, with the environment's overrides."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no node configuration at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return from_mapping(raw, source=str(path))


def from_mapping(raw: dict[str, Any], *, source: str = "settings") -> NodeSettings:
    try:
        return NodeSettings(**raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"  - {loc + ': ' if loc else ''}{msg}")
        raise ConfigError(f"{source} has {len(lines)} problem(s):\n" + "\n".join(lines)) from None
