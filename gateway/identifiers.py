"""X-Road identifiers: members, subsystems and services, parsed once at the gateway's edge.

`ZZ/GOV/CRA` is a member, `ZZ/GOV/CRA/civreg` a subsystem, `ZZ/GOV/CRA/civreg/GetPerson[/v1]` a
service. Every part is limited to letters, digits and `'()+,-.=?` (the X-Road character set) and to a
sane length, so an identifier can never smuggle a path, a header line or markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self
from urllib.parse import unquote

MAX_PART = 255
_PART = re.compile(r"[A-Za-z0-9'()+,\-.=?]+")
_MEMBER_PARTS = ("instance", "member class", "member code")


class IdentifierError(ValueError):
    """An identifier that does not follow the X-Road form; the message says which part is wrong."""


def check_part(value: str, what: str) -> str:
    if not value:
        raise IdentifierError(f"{what} is empty")
    if len(value) > MAX_PART:
        raise IdentifierError(f"{what} is longer than {MAX_PART} characters")
    if not _PART.fullmatch(value) or value in (".", ".."):
        raise IdentifierError(f"{what} may contain only letters, digits and '()+,-.=?")
    return value


@dataclass(frozen=True, slots=True, order=True)
class ClientId:
    """A member (`subsystem` None) or one of its subsystems."""

    instance: str
    member_class: str
    member_code: str
    subsystem: str | None = None

    @classmethod
    def parse(cls, text: str, *, require_subsystem: bool = False) -> Self:
        """Parse `INSTANCE/CLASS/CODE[/SUBSYSTEM]`; each part may be percent-encoded on its own (decoded once)."""
        return cls.from_parts(_split(text), require_subsystem=require_subsystem)

    @classmethod
    def from_parts(cls, parts: Sequence[str], *, require_subsystem: bool = False) -> Self:
        """From parts already apart (a SOAP identifier's elements, or a decoded path): checked as they are, never
        decoded again, so one identifier has one spelling (`T%2541X` is not `TAX`)."""
        parts = list(parts)
        if len(parts) not in (3, 4):
            raise IdentifierError(
                f"expected INSTANCE/CLASS/CODE/SUBSYSTEM, got {len(parts)} part{'s' if len(parts) != 1 else ''}"
            )
        if require_subsystem and len(parts) != 4:
            raise IdentifierError("a subsystem is required: INSTANCE/CLASS/CODE/SUBSYSTEM")
        for value, what in zip(parts, (*_MEMBER_PARTS, "subsystem code"), strict=False):
            check_part(value, what)
        return cls(*parts)

    @property
    def member(self) -> ClientId:
        return ClientId(self.instance, self.member_class, self.member_code)

    @property
    def object_type(self) -> str:
        return "MEMBER" if self.subsystem is None else "SUBSYSTEM"

    def __str__(self) -> str:
        parts = [self.instance, self.member_class, self.member_code]
        if self.subsystem is not None:
            parts.append(self.subsystem)
        return "/".join(parts)


@dataclass(frozen=True, slots=True, order=True)
class ServiceId:
    """A service offered by a subsystem, with an optional version (SOAP services use it)."""

    provider: ClientId
    code: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse `INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/VERSION]`; each part percent-decoded once."""
        return cls.from_parts(_split(text))

    @classmethod
    def from_parts(cls, parts: Sequence[str]) -> Self:
        """From parts already apart, checked as they are (see `ClientId.from_parts`)."""
        parts = list(parts)
        if len(parts) not in (5, 6):
            raise IdentifierError(f"expected INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/VERSION], got {len(parts)} parts")
        provider = ClientId.from_parts(parts[:4])
        code = check_part(parts[4], "service code")
        version = check_part(parts[5], "service version") if len(parts) == 6 else None
        return cls(provider, code, version)

    @classmethod
    def of(cls, provider: ClientId, code: str, version: str | None = None) -> Self:
        check_part(code, "service code")
        if version is not None:
            check_part(version, "service version")
        return cls(provider, code, version)

    def __str__(self) -> str:
        tail = f"/{self.version}" if self.version else ""
        return f"{self.provider}/{self.code}{tail}"


def _split(text: str) -> list[str]:
    if len(text) > 6 * (MAX_PART + 1):
        raise IdentifierError("identifier is too long")
    if any(c in text for c in "\r\n\x00"):
        raise IdentifierError("identifier contains control characters")
    return [unquote(p) for p in text.strip().split("/")]
