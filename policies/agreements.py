"""Data-sharing agreements: one TOML file each, readable by a data protection officer, checked strictly on load.

An agreement that loads is one the PDP can enforce exactly as written: every field is validated here, so a
typo (`purpose =` for `purposes =`, a date without a year) stops the gateway instead of silently widening or
narrowing what is shared.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from policies.errors import AgreementError, PolicyError

LAWFUL_BASES = ("consent", "legal-obligation", "public-task", "vital-interest")

_PART = r"[A-Za-z0-9'()+,\-.=?;]+"
_PART_RE = re.compile(_PART)
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_AGREEMENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_METHOD_RE = re.compile(r"[A-Z]{1,16}")
_PATH_RE = re.compile(r"/[A-Za-z0-9._~!$&'()+,;=:@%/*-]{0,1023}")
_FIELD_SEGMENT_RE = re.compile(r"\*|[A-Za-z0-9_$@-][A-Za-z0-9_$@:-]{0,127}")
_RATE_RE = re.compile(r"\s*(\d{1,9})\s*/\s*(second|minute|hour|day)\s*")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_PERIOD_NAMES = {v: k for k, v in _PERIODS.items()}
_MAX_ID_LENGTH = 255

_KNOWN_KEYS = frozenset(
    {
        "id",
        "version",
        "title",
        "provider",
        "clients",
        "purposes",
        "lawful_basis",
        "legal_reference",
        "data_categories",
        "valid_from",
        "valid_until",
        "rate_limit",
        "cache_seconds",
        "description",
        "services",
    }
)
_SERVICE_KEYS = frozenset({"service", "methods", "paths", "fields"})

#: Longest an agreement may let a gateway reuse an answer: caches are for bursts, not for copies.
MAX_CACHE = 3600

# The end of a day given as a date: valid_until = "2027-12-31" covers the whole of that day (UTC).
END_OF_DAY = time(23, 59, 59, 999999)


@dataclass(frozen=True)
class RateLimit:
    """At most `count` calls per `per_seconds`, per client subsystem (enforced by the gateway, not here)."""

    count: int
    per_seconds: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Read "600/minute" (N/second|minute|hour|day)."""
        match = _RATE_RE.fullmatch(text)
        if match is None or int(match.group(1)) < 1:
            raise PolicyError(f"rate limit must look like 600/minute (N/second|minute|hour|day), got {text!r}")
        return cls(int(match.group(1)), _PERIODS[match.group(2)])

    def __str__(self) -> str:
        name = _PERIOD_NAMES.get(self.per_seconds)
        return f"{self.count}/{name}" if name else f"{self.count}/{self.per_seconds}s"


@dataclass(frozen=True)
class ServiceGrant:
    """One service the agreement opens; `None` means "no restriction" (any method, any path, whole answer)."""

    service: str
    methods: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Agreement:
    """One version of a data-sharing agreement, as loaded from its file (`source`)."""

    id: str
    version: int
    title: str
    provider: str
    clients: tuple[str, ...]
    purposes: tuple[str, ...]
    lawful_basis: str
    legal_reference: str
    data_categories: tuple[str, ...]
    valid_from: datetime
    valid_until: datetime
    rate_limit: RateLimit | None
    services: tuple[ServiceGrant, ...]
    description: str = ""
    source: Path | None = None
    cache_seconds: int = 0  # how long the provider's gateway may reuse an answer (GET only); 0: never

    @property
    def label(self) -> str:
        """How people name it: "DSA-CRA-MSP-001 v2"."""
        return f"{self.id} v{self.version}"


def is_identifier(value: str, parts: int | tuple[int, ...]) -> bool:
    """An X-Road-style identifier (INSTANCE/CLASS/CODE[/...]) with the given number of parts."""
    counts = (parts,) if isinstance(parts, int) else parts
    if len(value) > _MAX_ID_LENGTH:
        return False
    split = value.split("/")
    return len(split) in counts and all(_PART_RE.fullmatch(p) and p.strip(".") for p in split)


def member_of(identifier: str) -> str:
    """The member (first three parts) of a subsystem or service identifier."""
    return "/".join(identifier.split("/")[:3])


def show_time(moment: datetime, *, end: bool = False) -> str:
    """A validity bound as people wrote it: a bare date when it is a whole day (UTC), else RFC 3339."""
    moment = moment.astimezone(UTC)
    if (end and moment.time() == END_OF_DAY) or (not end and moment.time() == time(0)):
        return moment.date().isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def load_agreement(path: Path) -> Agreement:
    """Load and validate one agreement file; `AgreementError` names the file and the field."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise AgreementError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise AgreementError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    except RecursionError:
        raise AgreementError(f"{path}: not valid TOML: nested too deeply") from None
    except OSError as exc:
        raise AgreementError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return _Reader(path, raw).agreement()


def load_agreements(paths: Iterable[Path]) -> list[Agreement]:
    """Load files and directories (their `*.toml`, sorted); one `AgreementError` lists every bad file.

    Several versions of one agreement id may be loaded: the decision point enforces only the highest.
    """
    agreements: list[Agreement] = []
    problems: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(path.glob("*.toml"))
        elif path.exists():
            files = [path]
        else:
            problems.append(f"{path}: no such file or directory")
            continue
        for file in files:
            try:
                agreements.append(load_agreement(file))
            except AgreementError as exc:
                problems.extend(exc.problems)
    if problems:
        raise AgreementError(problems)
    return agreements


class _Reader:
    """Validates the raw TOML table field by field, so each message says which file and which field."""

    def __init__(self, path: Path, raw: dict[str, Any]) -> None:
        self.path = path
        self.raw = raw

    def fail(self, field: str, problem: str) -> AgreementError:
        return AgreementError(f"{self.path}: {field}: {problem}")

    def agreement(self) -> Agreement:
        unknown = sorted(set(self.raw) - _KNOWN_KEYS)
        if unknown:
            raise self.fail(unknown[0], "unknown field (check the spelling; see docs/agreements.md)")
        ident = self.string("id")
        if not _AGREEMENT_ID_RE.fullmatch(ident):
            raise self.fail("id", f"must be letters, digits and . _ : - (at most 128), got {ident!r}")
        version = self.raw.get("version")
        if version is None:
            raise self.fail("version", "is required")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**31:
            raise self.fail("version", f"must be a whole number from 1, got {version!r}")
        title = self.string("title")
        provider = self.string("provider")
        if not is_identifier(provider, 3):
            raise self.fail("provider", f"must be a member identifier INSTANCE/CLASS/CODE, got {provider!r}")
        clients = self.strings("clients")
        for i, client in enumerate(clients):
            if not is_identifier(client, 4):
                raise self.fail(
                    f"clients[{i}]", f"must be a subsystem identifier INSTANCE/CLASS/CODE/SUBSYSTEM, got {client!r}"
                )
        purposes = self.codes("purposes")
        basis = self.string("lawful_basis")
        if basis not in LAWFUL_BASES:
            raise self.fail("lawful_basis", f"must be one of {', '.join(LAWFUL_BASES)}, got {basis!r}")
        reference = self.string("legal_reference", required=False)
        if basis != "consent" and not reference.strip():
            raise self.fail("legal_reference", f"is required when lawful_basis is {basis}")
        categories = self.codes("data_categories")
        valid_from = self.moment("valid_from", end=False)
        valid_until = self.moment("valid_until", end=True)
        if valid_until < valid_from:
            raise self.fail("valid_until", "is before valid_from")
        rate = self.raw.get("rate_limit")
        rate_limit: RateLimit | None = None
        if rate is not None:
            if not isinstance(rate, str):
                raise self.fail("rate_limit", f"must be text like 600/minute, got {rate!r}")
            try:
                rate_limit = RateLimit.parse(rate)
            except PolicyError as exc:
                raise self.fail("rate_limit", str(exc).removeprefix("rate limit ")) from None
        cache_seconds = self.raw.get("cache_seconds", 0)
        if isinstance(cache_seconds, bool) or not isinstance(cache_seconds, int) or not 0 <= cache_seconds <= MAX_CACHE:
            raise self.fail("cache_seconds", f"must be a whole number of seconds from 0 to {MAX_CACHE}")
        description = self.string("description", required=False)
        services = self.services(provider)
        return Agreement(
            id=ident,
            version=version,
            title=title,
            provider=provider,
            clients=clients,
            purposes=purposes,
            lawful_basis=basis,
            legal_reference=reference.strip(),
            data_categories=categories,
            valid_from=valid_from,
            valid_until=valid_until,
            rate_limit=rate_limit,
            services=services,
            description=description,
            source=self.path,
            cache_seconds=cache_seconds,
        )

    def string(self, field: str, *, required: bool = True, table: dict[str, Any] | None = None) -> str:
        value = (self.raw if table is None else table).get(field)
        if value is None:
            if required:
                raise self.fail(field, "is required")
            return ""
        if not isinstance(value, str):
            raise self.fail(field, f"must be text, got {_kind(value)}")
        if required and not value.strip():
            raise self.fail(field, "must not be empty")
        return value

    def strings(self, field: str, value: Any = None, *, name: str | None = None) -> tuple[str, ...]:
        label = name or field
        if value is None:
            value = self.raw.get(field)
        if value is None:
            raise self.fail(label, "is required")
        if not isinstance(value, list):
            raise self.fail(label, f"must be a list of text, got {_kind(value)}")
        if not value:
            raise self.fail(label, "must not be empty")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{label}[{i}]", f"must be text, got {_kind(item)}")
            if item in seen:
                raise self.fail(f"{label}[{i}]", f"{item!r} is listed twice")
            seen.add(item)
        return tuple(value)

    def codes(self, field: str) -> tuple[str, ...]:
        values = self.strings(field)
        for i, code in enumerate(values):
            if not CODE_RE.fullmatch(code):
                raise self.fail(
                    f"{field}[{i}]",
                    f"must be a code of letters, digits and . _ : - (starting with a letter or digit), got {code!r}",
                )
        return values

    def moment(self, field: str, *, end: bool) -> datetime:
        value = self.raw.get(field)
        if value is None:
            raise self.fail(field, "is required")
        try:
            return parse_moment(value, end=end)
        except PolicyError as exc:
            raise self.fail(field, str(exc)) from None

    def services(self, provider: str) -> tuple[ServiceGrant, ...]:
        raw = self.raw.get("services")
        if raw is None:
            raise self.fail("services", "is required (one [[services]] table per service)")
        if not isinstance(raw, list) or not raw:
            raise self.fail("services", "must be one or more [[services]] tables")
        grants: list[ServiceGrant] = []
        for i, table in enumerate(raw):
            where = f"services[{i}]"
            if not isinstance(table, dict):
                raise self.fail(where, f"must be a [[services]] table, got {_kind(table)}")
            unknown = sorted(set(table) - _SERVICE_KEYS)
            if unknown:
                raise self.fail(f"{where}.{unknown[0]}", "unknown field (check the spelling; see docs/agreements.md)")
            service = table.get("service")
            if service is None:
                raise self.fail(f"{where}.service", "is required")
            if not isinstance(service, str) or not is_identifier(service, (5, 6)):
                raise self.fail(
                    f"{where}.service",
                    f"must be a service identifier INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/VERSION], got {service!r}",
                )
            if member_of(service) != provider:
                raise self.fail(f"{where}.service", f"{service} is not a service of the provider {provider}")
            methods = paths = fields = None
            if "methods" in table:
                methods = tuple(m.upper() for m in self.strings("", table["methods"], name=f"{where}.methods"))
                for j, method in enumerate(methods):
                    if not _METHOD_RE.fullmatch(method):
                        raise self.fail(f"{where}.methods[{j}]", f"must be an HTTP method like GET, got {method!r}")
            if "paths" in table:
                paths = self.strings("", table["paths"], name=f"{where}.paths")
                for j, pattern in enumerate(paths):
                    if not _PATH_RE.fullmatch(pattern):
                        raise self.fail(
                            f"{where}.paths[{j}]",
                            f"must start with / and use URL path characters (* = any characters), got {pattern!r}",
                        )
            if "fields" in table:
                fields = self.strings("", table["fields"], name=f"{where}.fields")
                for j, field_path in enumerate(fields):
                    if not all(_FIELD_SEGMENT_RE.fullmatch(s) for s in field_path.split(".")):
                        raise self.fail(
                            f"{where}.fields[{j}]",
                            f"must be a dotted path of names or * (like person.surname), got {field_path!r}",
                        )
                if "*" in fields:
                    fields = None
            grants.append(ServiceGrant(service=service, methods=methods, paths=paths, fields=fields))
        return tuple(grants)


def parse_moment(value: Any, *, end: bool) -> datetime:
    """A validity bound: a date (the whole day, UTC) or an RFC 3339 date-time with an offset; UTC-aware result."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                value = date.fromisoformat(text)
            except ValueError:
                raise PolicyError(f"is not a real date: {value!r}") from None
        else:
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                raise PolicyError(
                    f"must be a date (2026-01-01) or an RFC 3339 date-time (2026-01-01T08:00:00Z), got {value!r}"
                ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PolicyError(f"needs a time zone offset (Z or +03:00), got {value.isoformat()!r}")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise PolicyError(f"is out of range: {value.isoformat()!r}") from None
    if isinstance(value, date):
        return datetime.combine(value, END_OF_DAY if end else time(0), tzinfo=UTC)
    raise PolicyError(f"must be a date (2026-01-01) or an RFC 3339 date-time, got {_kind(value)}")


def _kind(value: Any) -> str:
    """Name a TOML value's type the way the file's author would."""
    names = {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a table",
        datetime: "a date-time",
        date: "a date",
        time: "a time of day",
    }
    return names.get(type(value), type(value).__name__)
