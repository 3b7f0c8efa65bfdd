"""The demo scenario runs end to end on a small country and stops everything it started."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sandbox.demo import run


def test_demo_runs_and_cleans_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    before = set(threading.enumerate())
    run(people=1500, seed=3, workdir=tmp_path)
    out = capsys.readouterr().out
    assert "Through the connectors" in out or "through the connectors" in out
    assert "Client.MissingPurpose" in out
    assert "Demo finished" in out
    assert not (tmp_path / "sandbox.json").exists()  # the servers are gone, and say so
    assert set(threading.enumerate()) - before == set(), "every thread the demo started has ended"
