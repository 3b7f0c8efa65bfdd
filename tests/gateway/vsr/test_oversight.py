"""Oversight statistics through the federation: aggregates only, small cells suppressed, set against the truth."""

from __future__ import annotations

import time
from typing import Any

import httpx

from sandbox import federation
from sandbox.oversight_truth import compare
from tests.gateway.vsr.conftest import Vsr

PURPOSE = "oversight-statistics"


def _run(vsr: Vsr, districts: list[str], client: str = federation.PROGRAMME_MIS) -> tuple[str, dict[str, str]]:
    headers = vsr.headers(PURPOSE)
    headers["X-Road-Client"] = client
    headers["X-Kiungo-Client-Token"] = vsr.servers.federation.tokens[client]  # type: ignore[union-attr]
    created = httpx.post(
        vsr.url("oversight"), json={"programme": "old-age-grant", "districts": districts}, headers=headers, timeout=60
    )
    assert created.status_code == 202, created.text
    job_id: str = created.json()["job_id"]
    deadline = time.monotonic() + 120
    while httpx.get(vsr.url("bulk", f"/{job_id}"), headers=headers, timeout=10).json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return job_id, headers


def test_oversight_publishes_suppressed_aggregates_and_no_record(vsr: Vsr) -> None:
    job_id, headers = _run(vsr, ["D01", "D02"], client=federation.RESEARCH)
    report = httpx.get(vsr.url("oversight", f"/{job_id}/report"), headers=headers, timeout=60)
    assert report.status_code == 200, report.text
    document: dict[str, Any] = report.json()
    assert document["as_of"] == "2026-06-30"
    assert document["rules_version"] == "2026.1"
    assert document["districts"] == ["D01", "D02"]
    assert "ZZ/GOV/CRA/civreg" in document["sources"]
    coverage = document["tables"]["coverage"]["rows"]
    assert [r["row"] for r in coverage] == ["D01", "D02", "total"]
    for row in coverage:
        for column, value in row.items():
            if column in ("row", "suppressed") or value is None:
                continue
            assert value == 0 or value >= 10 or column == "total" or row["row"] == "total", (row["row"], column)
    assert any(r["suppressed"] for r in coverage), "a small country has small cells"
    # no record leaves the job: per-person results are refused
    results = httpx.get(vsr.url("bulk", f"/{job_id}/results"), headers=headers, timeout=10)
    assert results.status_code == 400
    assert results.json()["title"] == "an oversight job publishes aggregates only: read its report"
    text = report.text
    assert "9000000001" not in text
    assert "CRA9" not in text
    csv_text = httpx.get(vsr.url("oversight", f"/{job_id}/report"), params={"format": "csv"}, headers=headers).text
    assert csv_text.startswith("# coverage: Old-age grant")
    png = httpx.get(vsr.url("oversight", f"/{job_id}/report"), params={"format": "png"}, headers=headers)
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    trends = httpx.get(vsr.url("oversight"), params={"programme": "old-age-grant"}, headers=headers).json()
    assert job_id in [r["job_id"] for r in trends["runs"]]
    # the sandbox knows the truth: the estimate is set beside it, class by class
    rows = compare(document, vsr.servers.country_dir)
    by_class = {r["class"]: r for r in rows}
    assert by_class["eligible, enrolled"]["truth"] > 0
    assert "undetermined (a fact missing)" in by_class
    assert document["quality"]["source_failures"] == {}


def test_oversight_needs_its_own_purpose(vsr: Vsr) -> None:
    answer = httpx.post(
        vsr.url("oversight"), json={"programme": "old-age-grant", "districts": ["D01"]}, headers=vsr.headers()
    )
    assert answer.status_code == 403  # the grant purpose is no agreement for oversight
    assert answer.headers["X-Road-Error"] == "Server.ServerProxy.AccessDenied"
