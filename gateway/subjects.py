"""Whose data an exchange concerns: each service declares where the data subject's identifier sits.

Locators, tried in order, first match wins: `path:/v1/taxpayers/{tin}` (a placeholder in the service
path), `query:national_id`, `json:person.nationalId` (a dotted path into a JSON request body) and
`xml:nationalId` (the first element of that local name in a SOAP body). The identifier found is used
for the consent check and, hashed with the node's secret, for the exchange log; it is never logged.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote

from lxml import etree

MAX_SUBJECT = 64
MAX_SUBJECTS = 1000  # subjects of one exchange that the log indexes (a batch look-up names up to 100)


@dataclass(frozen=True)
class Locator:
    kind: str
    where: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Locator:
        kind, _, where = text.partition(":")
        pattern = None
        if kind == "path":
            name = re.search(r"\{([^/{}]+)\}", where)
            if name is None:
                raise ValueError(f"{text!r}: a path locator names its placeholder, e.g. path:/v1/x/{{id}}")
            regex = re.escape(where).replace(re.escape("{" + name.group(1) + "}"), "(?P<subject>[^/]+)")
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", regex)
            pattern = re.compile("^" + regex + "$")
        return cls(kind, where, pattern)


class SubjectFinder:
    """Whose data: the first locator that finds anyone gives every subject it finds (a batch names many)."""

    def __init__(self, locators: Sequence[str]) -> None:
        self.locators = [Locator.parse(text) for text in locators]

    def rest(self, path: str, query: str, body: bytes) -> str | None:
        found = self.rest_all(path, query, body)
        return found[0] if found else None

    def rest_all(self, path: str, query: str, body: bytes) -> list[str]:
        for loc in self.locators:
            found: list[str] = []
            if loc.kind == "path" and loc.pattern is not None:
                match = loc.pattern.match(path)
                found = [unquote(match.group("subject"))] if match else []
            elif loc.kind == "query":
                found = parse_qs(query).get(loc.where, [])
            elif loc.kind == "json" and body:
                one = _json_path(body, loc.where)
                found = [one] if one else []
            cleaned = [c for c in (_clean(f) for f in found) if c]
            if cleaned:
                return list(dict.fromkeys(cleaned))[:MAX_SUBJECTS]
        return []

    def soap(self, body_element: etree._Element) -> str | None:
        found = self.soap_all(body_element)
        return found[0] if found else None

    def soap_all(self, body_element: etree._Element) -> list[str]:
        for loc in self.locators:
            if loc.kind != "xml":
                continue
            found = [
                c
                for c in (
                    _clean(e.text)
                    for e in body_element.iter()
                    if etree.QName(e).localname == loc.where and e.text and e.text.strip()
                )
                if c
            ]
            if found:
                return list(dict.fromkeys(found))[:MAX_SUBJECTS]
        return []


def _json_path(body: bytes, path: str) -> str | None:
    try:
        node: object = json.loads(body)
    except ValueError:
        return None
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return str(node) if isinstance(node, str | int) else None


def _clean(value: str) -> str | None:
    value = value.strip()
    return value if 0 < len(value) <= MAX_SUBJECT else None


def node_secret(path: Path) -> bytes:
    """The node's secret for keyed hashes of subjects, made once (0600) and kept with the node's data."""
    if path.exists():
        secret = path.read_bytes()
        if len(secret) < 32:
            raise ValueError(f"{path} holds fewer than 32 bytes; it is not a usable secret")
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    path.write_bytes(secret)
    path.chmod(0o600)
    return secret
