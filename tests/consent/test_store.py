from __future__ import annotations

import ast
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import IntegrityError

from consent import ConsentError, ConsentEvent, ConsentNotFound, ConsentStore, InvalidConsent, StoreNotMigrated
from gateway.database import engine_url, make_engine
from gateway.migrations import STORES
from tests.consent.conftest import CONTROLLER, NOW, PURPOSE, RECIPIENT, SECRET, SUBJECT, grant
from tests.postgres import migrated


def ask(store: ConsentStore, **overrides: object):
    args: dict[str, object] = {
        "subject_id": SUBJECT,
        "recipient": RECIPIENT,
        "purpose": PURPOSE,
        "data_categories": ["income"],
    }
    args.update(overrides)
    return store.check(**args)  # type: ignore[arg-type]


def test_grant_get_list_withdraw_round_trip(store: ConsentStore) -> None:
    first = grant(store)
    second = grant(store, purposes=["old-age-grant-eligibility"])
    assert first.schema_version == "kiungo-27560-1"
    assert first.lawful_basis == "consent"
    assert first.subject_hint == "90******01"
    assert first.subject_hash == store.subject_hash(SUBJECT)
    assert len(first.subject_hash) == 64
    assert first.state() == "active"
    assert [e.type for e in first.events] == ["given"]
    assert first.events[0].actor == "clerk-17"
    assert store.get(first.record_id) == first

    # normalised at query time: spaces and case do not matter
    listed = store.list_by_subject(f"  {SUBJECT.lower()} ")
    assert [r.record_id for r in listed] == [second.record_id, first.record_id]

    withdrawn = store.withdraw(first.record_id, actor="dpo")
    assert withdrawn.state() == "withdrawn"
    assert [(e.type, e.actor) for e in withdrawn.events] == [("given", "clerk-17"), ("withdrawn", "dpo")]
    again = store.withdraw(first.record_id, actor="someone-else")
    assert again.events == withdrawn.events  # idempotent: the first withdrawal stands
    assert store.get(first.record_id).events == withdrawn.events
    assert store.get(second.record_id).state() == "active"

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


def _everything(url: str, tmp_path: Path) -> bytes:
    """What a copy of the database holds: the SQLite files' bytes, or every PostgreSQL row as text."""
    if url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("consent.sqlite"))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = [
                conn.execute(text(f"SELECT coalesce(string_agg(t::text, ''), '') FROM {table} t")).scalar_one()
                for table in ("consent_meta", "consent_records", "consent_events")
            ]
    finally:
        engine.dispose()
    return "".join(rows).encode()


def test_database_holds_no_plain_subject_id(consent_url: str, tmp_path: Path) -> None:
    subject = "CM-7788-99123"
    store = ConsentStore(consent_url, SECRET)
    record = grant(store, subject_id=subject)
    store.withdraw(record.record_id)
    blob = _everything(consent_url, tmp_path)
    for form in (subject, subject.lower(), subject.replace("-", "")):
        assert form.encode() not in blob
    assert store.subject_hash(subject).encode() in blob
    store.close()
    assert subject.encode() not in _everything(consent_url, tmp_path)
    assert repr(record).find(subject) == -1
    assert subject not in str(record.as_json())


def test_history_is_append_only(consent_url: str) -> None:
    """Whoever connects (not only this code), the triggers refuse to rewrite or remove history."""
    with ConsentStore(consent_url, SECRET) as store:
        record = grant(store)
        store.withdraw(record.record_id)
    engine = make_engine(consent_url)
    statements = [
        "DELETE FROM consent_events",
        "UPDATE consent_events SET type = 'given' WHERE type = 'withdrawn'",
        f"UPDATE consent_records SET valid_until = '2100-01-01' WHERE record_id = '{record.record_id}'",
        "DELETE FROM consent_records",
    ]
    if engine.dialect.name == "postgresql":
        statements += ["TRUNCATE consent_events", "TRUNCATE consent_records CASCADE"]
    try:
        for statement in statements:
            with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    with ConsentStore(consent_url, SECRET) as store:
        assert [e.type for e in store.get(record.record_id).events] == ["given", "withdrawn"]


def test_another_secret_is_refused(consent_url: str) -> None:
    with ConsentStore(consent_url, SECRET) as store:
        record = grant(store)
    with pytest.raises(ConsentError, match="another secret"):
        ConsentStore(consent_url, b"another-secret-0123456789abcdef!")
    with ConsentStore(consent_url, SECRET) as store:
        assert store.get(record.record_id) == record
    with pytest.raises(ConsentError, match="at least 16 bytes"):
        ConsentStore(consent_url, b"short")


def test_subject_hash_is_keyed(tmp_path: Path) -> None:
    for name in ("a.sqlite", "b.sqlite"):
        migrated(f"sqlite:///{tmp_path / name}", "consent").dispose()
    with (
        ConsentStore(tmp_path / "a.sqlite", SECRET) as a,
        ConsentStore(tmp_path / "b.sqlite", b"another-secret-0123456789abcdef!") as b,
    ):
        assert a.subject_hash(SUBJECT) == a.subject_hash(f" {SUBJECT} ")
        assert a.subject_hash("ab12") == a.subject_hash("AB12")
        assert a.subject_hash(SUBJECT) != b.subject_hash(SUBJECT)


# --- the schema comes from migrations --------------------------------------------------------------------


def test_missing_sqlite_file_names_the_command_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "consent.sqlite"
    url = f"sqlite:///{path}"
    with pytest.raises(StoreNotMigrated) as caught:
        ConsentStore(path, SECRET)
    assert str(caught.value) == f"{url} has no consent tables: run `kiungo db upgrade --store consent --url {url}`"
    assert not path.exists()
    with pytest.raises(StoreNotMigrated, match="has no consent tables"):
        ConsentStore(url, SECRET)
    assert not path.exists()
    with pytest.raises(ConsentError, match="is not a database URL"):
        ConsentStore(str(path), SECRET)


def test_empty_database_names_the_command_without_its_password(consent_url: str) -> None:
    engine = make_engine(consent_url)
    with engine.begin() as conn:  # an unmigrated database: nothing of the consent schema
        for table in ("consent_events", "consent_records", "consent_meta", STORES["consent"].version_table):
            conn.execute(text(f"DROP TABLE {table}"))
    engine.dispose()
    url = consent_url
    if url.startswith("postgresql"):  # trust authentication: the password is not checked, only hidden
        url = url.replace("postgres@", "postgres:s3cret-pw@")
    with pytest.raises(StoreNotMigrated) as caught:
        ConsentStore(url, SECRET)
    shown = make_url(engine_url(url)).render_as_string(hide_password=True)  # as the store opens it
    assert str(caught.value) == (
        f"{shown} has no consent tables: run `kiungo db upgrade --store consent --url {shown}`"
    )
    assert "s3cret-pw" not in str(caught.value)
    assert isinstance(caught.value, ConsentError)


def test_another_revision_is_refused(consent_url: str) -> None:
    engine = make_engine(consent_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {STORES['consent'].version_table} SET version_num = 'consent_0000'"))
    engine.dispose()
    with pytest.raises(StoreNotMigrated, match="at consent_0000, this Kiungo needs consent_0001: run `kiungo db"):
        ConsentStore(consent_url, SECRET)


def test_a_given_engine_is_left_open(consent_url: str) -> None:
    engine = make_engine(consent_url)
    ConsentStore(engine, SECRET).close()
    with engine.connect() as conn:  # still usable: the node owns it
        assert conn.execute(text("SELECT COUNT(*) FROM consent_records")).scalar_one() == 0
    engine.dispose()


# --- two replicas on one database ------------------------------------------------------------------------


def _replica(url: str) -> tuple[Engine, ConsentStore]:
    engine = make_engine(url)
    return engine, ConsentStore(engine, SECRET)


def test_replicas_see_each_others_withdrawal_at_once(consent_url: str) -> None:
    (ea, a), (eb, b) = _replica(consent_url), _replica(consent_url)
    try:
        record = grant(a)
        assert ask(b).allowed
        assert ask(b, reference=record.record_id).allowed
        a.withdraw(record.record_id, actor="dpo")
        assert (ask(b).reason, ask(b).record_id) == ("consent_withdrawn", record.record_id)
        assert ask(b, reference=record.record_id).reason == "consent_withdrawn"
        renewed = grant(b)
        assert ask(a).record_id == renewed.record_id
    finally:
        a.close()
        b.close()
        ea.dispose()
        eb.dispose()


def test_a_connection_the_server_dropped_is_replaced(consent_url: str) -> None:
    if not consent_url.startswith("postgresql"):
        pytest.skip("only a database server drops connections")
    engine, store = _replica(consent_url)
    try:
        record = grant(store)
        assert ask(store).allowed
        with engine.begin() as conn:  # as a server restart would: every other session ends
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert ask(store).record_id == record.record_id
        store.withdraw(record.record_id)
        assert ask(store).reason == "consent_withdrawn"
    finally:
        store.close()
        engine.dispose()


def test_replicas_withdrawing_at_once_append_one_withdrawal(consent_url: str) -> None:
    replicas = [_replica(consent_url) for _ in range(2)]
    try:
        records = [grant(replicas[0][1], subject_id=f"W{i}") for i in range(8)]

        def withdraw(n: int) -> None:
            replicas[n % 2][1].withdraw(records[n // 2].record_id, actor=f"replica-{n % 2}")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(withdraw, range(16)))
        for record in records:
            events = replicas[1][1].get(record.record_id).events
            assert [e.type for e in events] == ["given", "withdrawn"]
    finally:
        for engine, store in replicas:
            store.close()
            engine.dispose()


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


def test_threads_grant_at_once(store: ConsentStore) -> None:
    errors: list[BaseException] = []
    ids: list[str] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                record = grant(store, subject_id=f"T{n}-{i}")
                ids.append(record.record_id)
                assert ask(store, subject_id=f"T{n}-{i}").allowed
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 60
    assert all(store.get(i).record_id == i for i in ids)


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
