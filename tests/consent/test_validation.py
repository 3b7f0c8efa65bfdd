from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from consent import ConsentStore, InvalidConsent
from tests.consent.conftest import NOW, SUBJECT, grant


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"subject_id": ""}, "subject_id", "is empty"),
        ({"subject_id": "   "}, "subject_id", "is empty"),
        ({"subject_id": "9" * 65}, "subject_id", "longer than 64"),
        ({"subject_id": "90\n12"}, "subject_id", "printable"),
        ({"controller": "ZZ/GOV"}, "controller", "INSTANCE/CLASS/CODE"),
        ({"controller": "ZZ/GOV/TAX/taxdb"}, "controller", "INSTANCE/CLASS/CODE"),
        ({"recipients": []}, "recipients", "must not be empty"),
        ({"recipients": "ZZ/GOV/MSP/research"}, "recipients", "not a single string"),
        ({"recipients": ["ZZ/GOV/MSP/re search"]}, "recipients", "letters, digits"),
        ({"recipients": ["ZZ/GOV/MSP/research/extra"]}, "recipients", "INSTANCE/CLASS/CODE[/SUBSYSTEM]"),
        ({"recipients": ["ZZ/GOV//research"]}, "recipients", "each part"),
        ({"recipients": ["ZZ/GOV/../research"]}, "recipients", "each part"),
        ({"purposes": []}, "purposes", "must not be empty"),
        ({"purposes": ["-leading-dash"]}, "purposes", "not a code"),
        ({"purposes": ["has space"]}, "purposes", "not a code"),
        ({"purposes": ["x" * 129]}, "purposes", "not a code"),
        ({"data_categories": []}, "data_categories", "must not be empty"),
        ({"data_categories": ["income", "a/b"]}, "data_categories", "not a code"),
        ({"valid_until": NOW - timedelta(days=1), "valid_from": NOW}, "valid_until", "later than valid_from"),
        ({"valid_until": NOW}, "valid_until", "later than valid_from"),
        ({"valid_until": datetime(2030, 1, 1)}, "valid_until", "time zone"),
        ({"valid_from": datetime(2030, 1, 1)}, "valid_from", "time zone"),
        ({"language": "english!"}, "language", "language tag"),
        ({"privacy_notice": "x" * 3000}, "privacy_notice", "longer than"),
        ({"actor": "clerk\t1"}, "actor", "printable"),
    ],
)
def test_invalid_consent_names_the_field(
    store: ConsentStore, overrides: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidConsent) as caught:
        grant(store, **overrides)
    assert str(caught.value).startswith(f"{field}: ")
    assert words in str(caught.value)
    assert caught.value.field == field
    assert store.list_by_subject(SUBJECT) == []


def test_subject_id_is_never_echoed(store: ConsentStore) -> None:
    secret_looking = "1234567890" * 7
    with pytest.raises(InvalidConsent) as caught:
        grant(store, subject_id=secret_looking)
    assert secret_looking not in str(caught.value)


def test_duplicates_are_dropped_in_order(store: ConsentStore) -> None:
    record = grant(store, purposes=["b", "a", "b"], data_categories=["income", "income"])
    assert record.purposes == ("b", "a")
    assert record.data_categories == ("income",)


def test_xroad_characters_are_accepted(store: ConsentStore) -> None:
    record = grant(store, recipients=["ZZ/GOV/M'S(P)+,-.=?/research"], subject_id="Ñ-001")
    assert record.recipients == ("ZZ/GOV/M'S(P)+,-.=?/research",)
    assert record.subject_hint == "Ñ***1"
