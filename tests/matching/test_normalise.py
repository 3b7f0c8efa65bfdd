from __future__ import annotations

import pandas as pd
import pytest

from matching import CRA_PERSON, MSP_BENEFICIARY, SourceError, SourceMapping, load, normalise_frame, normalise_record
from matching.normalise import clean_text, full_name_key, parse_birth, phonetic_key, variant_key


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  José  ", "jose"),
        ("O'Brien-Smith", "obrien smith"),
        ("AKYEAMFUƆ", "akyeamfuo"),
        ("Ñúñez", "nunez"),
        ("", None),
        ("   ", None),
        (None, None),
        ("Sa’idu", "saidu"),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


@pytest.mark.parametrize("spelling", ["Mohamed", "Muhammad", "MOHAMMED", "Mohamad", "Muhammed", "Mouhamed"])
def test_transliteration_variants_share_a_key(spelling):
    assert variant_key(spelling) == variant_key("Mohammed")


@pytest.mark.parametrize(("a", "b"), [("Philip", "Filip"), ("Youssou", "Yusu"), ("Anna", "Ana"), ("Hassan", "Hasan")])
def test_spelling_rules(a, b):
    assert variant_key(a) == variant_key(b)


def test_phonetic_key_matches_sound_alikes():
    assert phonetic_key("Owusu") == phonetic_key("Owosu")
    assert phonetic_key("Catherine") == phonetic_key("Kathryn") or phonetic_key("Catherine") is not None
    assert phonetic_key(None) is None


def test_full_name_key_ignores_order():
    assert full_name_key("Amina", None, "Yusuf") == full_name_key("Yousef", None, "AMINA") == "amina yusuf"


@pytest.mark.parametrize(
    ("date", "year", "expected"),
    [
        ("1980-02-29", None, ("1980-02-29", 1980)),
        ("19800229", None, ("1980-02-29", 1980)),
        ("1981-02-29", None, (None, 1981)),
        (None, 1975, (None, 1975)),
        ("1975", None, (None, 1975)),
        ("1975-06", None, (None, 1975)),
        (None, None, (None, None)),
        ("garbage", None, (None, None)),
        ("0001-01-01", None, (None, None)),
    ],
)
def test_partial_and_invalid_dates_keep_the_year(date, year, expected):
    assert parse_birth(date, year) == expected


def test_normalise_record_fields():
    out = normalise_record(
        {
            "record_id": 7,
            "given_name": "Fatoumata",
            "surname": "Diallo",
            "sex": "Female",
            "birth_year": "1960",
            "national_id": "12-34 5",
            "district": " D01 ",
        }
    )
    assert out["record_id"] == "7"
    assert out["given_key"] == "fatima"
    assert out["sex"] == "f"
    assert (out["birth_date"], out["birth_year"]) == (None, 1960)
    assert out["national_id"] == "12345"
    assert out["district"] == "d01"
    assert out["second_name"] is None


def test_normalise_frame_types():
    frame = pd.DataFrame([{"record_id": "a", "given_name": "Ann", "birth_date": "2001-01-01"}, {"record_id": "b"}])
    out = normalise_frame(frame)
    assert str(out["birth_year"].dtype) == "Int64"
    assert out.loc[1, "given_name"] is None


def test_sources_load_sandbox_tables(country):
    cra = load(country / "cra.sqlite", CRA_PERSON)
    msp = load(country / "msp.sqlite", MSP_BENEFICIARY)
    assert len(cra) > 1000
    assert len(msp) > 0
    assert set(cra["source"]) == {"cra"}
    assert msp["record_id"].str.match(r"^(CSG|OAG|DG)-").all()
    assert cra["given_name"].notna().all()


def test_source_errors(tmp_path):
    with pytest.raises(SourceError):
        load(tmp_path / "missing.sqlite", CRA_PERSON)
    with pytest.raises(SourceError):
        SourceMapping("x", "t", {"given_name": "g"})
    with pytest.raises(SourceError):
        SourceMapping("x", "t", {"record_id": "id", "shoe_size": "s"})
