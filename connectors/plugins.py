"""Connector kinds, found through the `kiungo.connectors` entry-point group.

A third party adds a kind by publishing a distribution with an entry point in that group whose object
has `from_config(name, settings) -> Connector` (docs/connectors.md shows one).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from connectors.connector import ConnectorFactory
from connectors.errors import ConfigurationError

GROUP = "kiungo.connectors"


@cache
def available() -> dict[str, str]:
    """Installed connector kinds and where each comes from (`module:attr`)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load(kind: str) -> ConnectorFactory:
    """The factory of a connector kind, or a ConfigurationError that lists the installed ones."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
    if not found:
        known = ", ".join(sorted(available())) or "none"
        raise ConfigurationError(f"unknown connector kind {kind!r} (installed: {known})")
    try:
        factory = found[0].load()
    except Exception as exc:
        raise ConfigurationError(f"connector kind {kind!r} failed to load: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(factory, "from_config", None)):
        raise ConfigurationError(f"connector kind {kind!r} ({found[0].value}) has no from_config(name, settings)")
    return factory  # type: ignore[no-any-return]
