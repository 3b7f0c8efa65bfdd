"""Node settings for tests, with their databases migrated as an operator would (`kiungo db upgrade`)."""

from __future__ import annotations

from typing import Any

from gateway.migrations import upgrade_node
from gateway.settings import NodeSettings, from_mapping


def migrated(config: dict[str, Any]) -> NodeSettings:
    settings = from_mapping(config)
    upgrade_node(settings)
    return settings
