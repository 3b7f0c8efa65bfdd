from __future__ import annotations

import ast
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consent import ConsentError, ConsentEvent, ConsentNotFound, ConsentStore, InvalidConsent
from tests.consent.conftest import CONTROLLER, NOW, PURPOSE, RECIPIENT, SECRET, SUBJECT, grant


def ask(store: ConsentStore, **overrides: object):
    args: dict[str, object] = {
        "subject_id": SUBJECT,
        "recipient": RECIPIENT,
        "purpose": PURPOSE,
        "data_categories": ["income"],
    }
    args.update(overrides)
    return store.check(**args)  # type: ignore[arg-type]


def test_grant_get_list_withdraw_round_trip(file_store: ConsentStore) -> None:
    first = grant(file_store)
    second = grant(file_store, purposes=["old-age-grant-eligibility"])
    assert first.schema_version == "kiungo-27560-1"
    assert first.lawful_basis == "consent"
    assert first.subject_hint == "90******01"
    assert first.subject_hash == file_store.subject_hash(SUBJECT)
    assert len(first.subject_hash) == 64
    assert first.state() == "active"
    assert [e.type for e in first.events] == ["given"]
    assert first.events[0].actor == "clerk-17"
    assert file_store.get(first.record_id) == first

    # normalised at query time: spaces and case do not matter
    listed = file_store.list_by_subject(f"  {SUBJECT.lower()} ")
    assert [r.record_id for r in listed] == [second.record_id, first.record_id]

    withdrawn = file_store.withdraw(first.record_id, actor="dpo")
    assert withdrawn.state() == "withdrawn"
    assert [(e.type, e.actor) for e in withdrawn.events] == [("given", "clerk-17"), ("withdrawn", "dpo")]
    again = file_store.withdraw(first.record_id, actor="someone-else")
    assert again.events == withdrawn.events  # idempotent: the first withdrawal stands
    assert file_store.get(first.record_id).events == withdrawn.events
    assert file_store.get(second.record_id).state() == "active"

    data = first.as_json()
    assert data["record_id"] == first.record_id
    assert data["valid_until"].endswith("Z")
    assert data["state"] == "active"
    assert data["events"][0]["type"] == "given"


def test_unknown_record(store: ConsentStore) -> None:
    with pytest.raises(ConsentNotFound):
        store.get("no-such-record")
    with pytest.raises(ConsentNotFound):
        store.withdraw("no-such-record")
    assert store.list_by_subject("nobody") == []


def test_database_holds_no_plain_subject_id(tmp_path: Path) -> None:
    path = tmp_path / "consent.sqlite"
    subject = "CM-7788-99123"
    store = ConsentStore(path, SECRET)
    record = grant(store, subject_id=subject)
    store.withdraw(record.record_id)

    def everything() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("consent.sqlite"))

    for blob in (everything(),):
        for form in (subject, subject.lower(), subject.replace("-", "")):
            assert form.encode() not in blob
        assert store.subject_hash(subject).encode() in blob
    store.close()
    blob = everything()
    assert subject.encode() not in blob
    assert repr(record).find(subject) == -1
    assert subject not in str(record.as_json())


def test_history_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "consent.sqlite"
    with ConsentStore(path, SECRET) as store:
        record = grant(store)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM consent_events")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE consent_records SET valid_until = '2100-01-01' WHERE record_id = ?", (record.record_id,))
    db.close()


def test_another_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "consent.sqlite"
    with ConsentStore(path, SECRET) as store:
        record = grant(store)
    with pytest.raises(ConsentError, match="another secret"):
        ConsentStore(path, b"another-secret-0123456789abcdef!")
    with ConsentStore(path, SECRET) as store:
        assert store.get(record.record_id) == record
    with pytest.raises(ConsentError, match="at least 16 bytes"):
        ConsentStore(None, b"short")


def test_subject_hash_is_keyed() -> None:
    with ConsentStore(None, SECRET) as a, ConsentStore(None, b"another-secret-0123456789abcdef!") as b:
        assert a.subject_hash(SUBJECT) == a.subject_hash(f" {SUBJECT} ")
        assert a.subject_hash("ab12") == a.subject_hash("AB12")
        assert a.subject_hash(SUBJECT) != b.subject_hash(SUBJECT)


# --- the check -----------------------------------------------------------------------------------------


def test_check_ok(store: ConsentStore) -> None:
    record = grant(store)
    result = ask(store, data_categories=["income", "employer"])
    assert (result.allowed, result.reason, result.record_id) == (True, "ok", record.record_id)
    assert ask(store, controller=CONTROLLER).allowed
    assert ask(store, controller=f"{CONTROLLER}/taxdb").allowed  # a controller's subsystem counts as the member
    assert ask(store, data_categories=[]).allowed


def test_check_missing(store: ConsentStore) -> None:
    result = ask(store)
    assert (result.allowed, result.reason, result.record_id) == (False, "consent_missing", None)
    assert SUBJECT not in result.message


def test_check_withdrawn(store: ConsentStore) -> None:
    record = grant(store)
    store.withdraw(record.record_id)
    result = ask(store)
    assert (result.allowed, result.reason, result.record_id) == (False, "consent_withdrawn", record.record_id)
    # a check at an instant before the withdrawal was allowed
    assert ask(store, now=record.given_at).allowed


def test_check_expired(store: ConsentStore) -> None:
    record = grant(store, valid_until=NOW + timedelta(days=1))
    result = ask(store, now=NOW + timedelta(days=2))
    assert (result.allowed, result.reason, result.record_id) == (False, "consent_expired", record.record_id)
    assert record.state(NOW + timedelta(days=2)) == "expired"


def test_expiry_event_is_derived(store: ConsentStore) -> None:
    record = grant(store, valid_until=datetime.now(UTC) + timedelta(milliseconds=50))
    assert [e.type for e in record.events] == ["given"]
    time.sleep(0.06)
    events = store.get(record.record_id).events
    assert [e.type for e in events] == ["given", "expired"]
    assert events[1] == ConsentEvent(record.valid_until, "expired", "kiungo:validity")
    assert ask(store).reason == "consent_expired"
    # a consent recorded after it ended (a paper form typed in late) expires no earlier than it was given
    start = datetime.now(UTC) - timedelta(days=10)
    late = grant(store, valid_from=start, valid_until=start + timedelta(days=5))
    assert late.state() == "expired"
    assert [e.type for e in store.get(late.record_id).events] == ["given", "expired"]


def test_withdrawn_wins_over_expired(store: ConsentStore) -> None:
    grant(store, valid_until=NOW + timedelta(days=1))
    withdrawn = grant(store)
    store.withdraw(withdrawn.record_id)
    result = ask(store, now=NOW + timedelta(days=2))
    assert (result.reason, result.record_id) == ("consent_withdrawn", withdrawn.record_id)


def test_active_record_wins_over_withdrawn_one(store: ConsentStore) -> None:
    old = grant(store)
    store.withdraw(old.record_id)
    new = grant(store)
    result = ask(store)
    assert (result.allowed, result.record_id) == (True, new.record_id)


def test_pending_consent_is_not_in_force(store: ConsentStore) -> None:
    record = grant(store, valid_from=NOW + timedelta(days=1), valid_until=NOW + timedelta(days=30))
    assert record.state() == "pending"
    result = ask(store)
    assert (result.allowed, result.reason, result.record_id) == (False, "consent_missing", record.record_id)
    assert "not in force" in result.message
    assert ask(store, now=NOW + timedelta(days=2)).allowed


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        ({"recipient": "ZZ/GOV/MSP/payments"}, "recipient"),
        ({"recipient": "ZZ/GOV/CRA/research"}, "recipient"),
        ({"purpose": "fraud-detection"}, "purpose"),
        ({"data_categories": ["income", "health"]}, "health"),
        ({"controller": "ZZ/GOV/SIF"}, "controller"),
    ],
)
def test_check_does_not_cover(store: ConsentStore, overrides: dict[str, object], what: str) -> None:
    grant(store)
    result = ask(store, **overrides)
    assert (result.allowed, result.reason, result.record_id) == (False, "consent_does_not_cover", None)
    assert what in result.message


def test_member_level_recipient(store: ConsentStore) -> None:
    grant(store, recipients=["ZZ/GOV/MSP"])
    assert ask(store, recipient="ZZ/GOV/MSP/research").allowed
    assert ask(store, recipient="ZZ/GOV/MSP/payments").allowed
    assert ask(store, recipient="ZZ/GOV/MSP").allowed
    assert ask(store, recipient="ZZ/GOV/MSPX/research").reason == "consent_does_not_cover"
    assert ask(store, recipient="ZZ/GOV/CRA/research").reason == "consent_does_not_cover"


def test_subsystem_recipient_does_not_cover_its_siblings(store: ConsentStore) -> None:
    grant(store)
    assert ask(store, recipient="ZZ/GOV/MSP").reason == "consent_does_not_cover"


def test_check_with_reference(store: ConsentStore) -> None:
    record = grant(store)
    other = grant(store, purposes=["old-age-grant-eligibility"])
    result = ask(store, reference=record.record_id)
    assert (result.allowed, result.reason, result.record_id) == (True, "ok", record.record_id)
    # the reference pins the record: another record of the subject does not stand in for it
    result = ask(store, reference=other.record_id)
    assert (result.reason, result.record_id) == ("consent_does_not_cover", other.record_id)
    assert "purpose" in result.message
    store.withdraw(record.record_id)
    assert ask(store, reference=record.record_id).reason == "consent_withdrawn"
    expiring = grant(store, valid_until=NOW + timedelta(days=1))
    assert ask(store, reference=expiring.record_id, now=NOW + timedelta(days=2)).reason == "consent_expired"


def test_wrong_reference(store: ConsentStore) -> None:
    grant(store)
    result = ask(store, reference="00000000-0000-4000-8000-000000000000")
    assert (result.allowed, result.reason, result.record_id) == (False, "consent_missing", None)
    assert "reference does not match" in result.message


def test_reference_of_another_subject(store: ConsentStore) -> None:
    grant(store)
    theirs = grant(store, subject_id="7705150088")
    result = ask(store, reference=theirs.record_id)
    assert (result.allowed, result.reason, result.record_id) == (False, "consent_missing", None)
    assert "reference does not match" in result.message
    assert ask(store, subject_id="7705150088", reference=theirs.record_id).allowed


def test_withdraw_at_a_given_time(store: ConsentStore) -> None:
    record = grant(store)
    later = datetime.now(UTC) + timedelta(hours=1)
    withdrawn = store.withdraw(record.record_id, when=later)
    assert withdrawn.withdrawn_at == later
    assert withdrawn.state() == "active"  # not yet
    assert withdrawn.state(later) == "withdrawn"
    with pytest.raises(InvalidConsent, match="when"):
        store.withdraw(grant(store).record_id, when=NOW - timedelta(days=1))


def test_threads_grant_at_once(file_store: ConsentStore) -> None:
    errors: list[BaseException] = []
    ids: list[str] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                record = grant(file_store, subject_id=f"T{n}-{i}")
                ids.append(record.record_id)
                assert ask(file_store, subject_id=f"T{n}-{i}").allowed
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 60
    assert all(file_store.get(i).record_id == i for i in ids)


def test_consent_imports_no_other_kiungo_package() -> None:
    forbidden = {"gateway", "connectors", "policies", "certs", "sandbox", "matching"}
    package = Path(__file__).resolve().parents[2] / "consent"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{source.name} imports {name}"
