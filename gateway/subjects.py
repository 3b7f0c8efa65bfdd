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
    def __init__(self, locators: Sequence[str]) -> None:
        self.locators = [Locator.parse(text) for text in locators]

    def rest(self, path: str, query: str, body: bytes) -> str | None:
        for loc in self.locators:
            found: str | None = None
            if loc.kind == "path" and loc.pattern is not None:
                match = loc.pattern.match(path)
                found = unquote(match.group("subject")) if match else None
            elif loc.kind == "query":
                values = parse_qs(query).get(loc.where)
                found = values[0] if values else None
            elif loc.kind == "json" and body:
                found = _json_path(body, loc.where)
            if found:
                return _clean(found)
        return None

    def soap(self, body_element: etree._Element) -> str | None:
        for loc in self.locators:
            if loc.kind != "xml":
                continue
            for element in body_element.iter():
                if etree.QName(element).localname == loc.where and element.text and element.text.strip():
                    return _clean(element.text)
        return None


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
