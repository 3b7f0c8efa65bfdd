"""Suite-wide rules: heavy cases run in CI (or with KIUNGO_SLOW=1), and are skipped, saying why, elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox.servers import SandboxServers
from tests.sandbox import fixtures_country as known

IN_CI = os.environ.get("CI", "").lower() == "true"
RUN_SLOW = IN_CI or os.environ.get("KIUNGO_SLOW") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow case: runs when CI=true or KIUNGO_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServers]:
    """The four agency systems of a small generated country (plus known records), on loopback."""
    country = tmp_path_factory.mktemp("country")
    known.build_country(country)
    with SandboxServers(country, gateway="none") as running:
        yield running
