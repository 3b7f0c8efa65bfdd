"""Search by the subject's keyed hash and by filters; daily statistics with spike flags."""

from __future__ import annotations

from gateway.exchangelog import ExchangeLog, subject_hash
from tests.gateway.exchangelog.conftest import T0, make_record

DAY = 86_400_000
SECRET = b"node-secret"


def test_search_by_subject_and_filters(log: ExchangeLog) -> None:
    alice = subject_hash(SECRET, " zz-123-456 ")
    assert alice == subject_hash(SECRET, "ZZ-123-456")
    for i in range(40):
        log.append(make_record(i, subject_hash=alice if i % 8 == 0 else f"{i:064x}"))
    found = log.search(subject_hash=alice)
    assert [i for i, _ in found] == [0, 8, 16, 24, 32]
    assert all(r.subject_hash == alice for _, r in found)
    assert [i for i, _ in log.search(subject_hash=alice, client="ZZ/GOV/MSP/vsr0")] == [0, 24]
    assert [i for i, _ in log.search(since_ms=T0 + 10_000, until_ms=T0 + 13_000)] == [10, 11, 12]
    assert len(log.search(purpose="old-age-grant-eligibility", limit=7, offset=35)) == 5
    assert log.search(decision="no_agreement") == []
    assert len(log.search(service="ZZ/GOV/CRA/civreg/getPerson", limit=1000)) == 40


def test_stats_flags_a_spike(log: ExchangeLog) -> None:
    n = 0
    for day in range(10):
        per_day = 40 if day == 9 else 4
        for k in range(per_day):
            log.append(make_record(n, client="ZZ/GOV/MSP/vsr", request_in_ts=T0 + day * DAY + k * 1000))
            n += 1
    rows = log.stats()
    assert len(rows) == 10
    spikes = [r for r in rows if r["spike"]]
    assert len(spikes) == 1
    assert spikes[0]["count"] == 40
    assert spikes[0]["median_prev_7d"] == 4
    since = log.stats(since_ms=T0 + 9 * DAY)
    assert len(since) == 1
    assert since[0]["spike"]
