"""Normalisation: the same person written by two clerks should produce the same keys.

Names lose case, accents (unidecode), punctuation and spelling variants that clerks and
transliteration produce (Mohamed/Muhammad, ph/f, ou/u, doubled letters); a sorted token key makes
swapped name order compare equal; NYSIIS gives a phonetic key; dates known only by their year keep
the year. Everything downstream (Splink training and the online matcher) reads the columns made here,
and all text is plain ASCII so that DuckDB and jellyfish compute identical string similarities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import jellyfish
import pandas as pd
from unidecode import unidecode

from matching.record import CANONICAL_COLUMNS

#: Columns of a normalised frame: what the model compares and the online matcher indexes.
MODEL_COLUMNS: tuple[str, ...] = (
    "record_id",
    "source",
    "given_name",
    "second_name",
    "surname",
    "given_key",
    "surname_key",
    "given_ph",
    "surname_ph",
    "full_name",
    "sex",
    "birth_date",
    "birth_year",
    "mother_name",
    "district",
    "locality",
    "national_id",
)

#: Spellings of one name that transliteration produces; each maps to one canonical spelling.
_VARIANT_GROUPS: tuple[tuple[str, ...], ...] = (
    (
        "muhamad",
        "mohamed",
        "mohammed",
        "muhammad",
        "muhammed",
        "mohamad",
        "mohammad",
        "mohamud",
        "mahamed",
        "mohammod",
        "muhamed",
        "mouhamed",
        "mohamet",
        "mamadou",
        "mamadu",
    ),
    ("ahmad", "ahmed", "ahmet", "ahamed"),
    ("abdulahi", "abdullahi", "abdallah", "abdullah", "abdulah", "abdalla", "abdulla"),
    ("husein", "hussein", "husain", "hussain", "hossein", "housseini"),
    ("yusuf", "yousef", "youssef", "yusef", "yousuf", "yousouf", "youssouf"),
    ("ibrahim", "ebrahim", "ibraheem", "brahim"),
    ("fatima", "fatuma", "fatoumata", "fatmata", "fatimah", "fatouma"),
    ("aisha", "aishah", "aicha", "ayesha", "aishat", "aysha"),
    ("musa", "moussa", "mousa", "mussa"),
    ("isa", "issa", "eesa"),
    ("josef", "joseph", "yosef", "josephe"),
    ("mariam", "maryam", "miriam", "meryem", "mariama"),
)
_VARIANTS: dict[str, str] = {spelling: group[0] for group in _VARIANT_GROUPS for spelling in group}

_SEPARATORS = re.compile(r"[-_/.,]+")
_NOT_LETTER = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r"\s+")
_DOUBLED = re.compile(r"([a-z])\1+")
_DIGITS = re.compile(r"\D+")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_YEAR = re.compile(r"^(\d{4})")


@lru_cache(maxsize=200_000)
def clean_text(value: str | None) -> str | None:
    """Lower-case ASCII letters and single spaces; None for missing or empty."""
    if value is None:
        return None
    text = unidecode(str(value)).lower()
    text = _SEPARATORS.sub(" ", text)
    text = _NOT_LETTER.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return text or None


def _variant_token(token: str) -> str:
    if token in _VARIANTS:
        return _VARIANTS[token]
    folded = token.replace("ph", "f").replace("ou", "u").replace("ck", "k")
    folded = _DOUBLED.sub(r"\1", folded)
    return _VARIANTS.get(folded, folded)


@lru_cache(maxsize=200_000)
def variant_key(value: str | None) -> str | None:
    """The cleaned name with every token reduced to its canonical spelling (`Mohammed` -> `muhamad`)."""
    text = clean_text(value)
    if text is None:
        return None
    return " ".join(_variant_token(t) for t in text.split(" "))


@lru_cache(maxsize=200_000)
def phonetic_key(value: str | None) -> str | None:
    """NYSIIS of the variant key, tokens joined: sounds-alike names share it."""
    key = variant_key(value)
    if key is None:
        return None
    return jellyfish.nysiis(key.replace(" ", "")) or None


def full_name_key(*names: str | None) -> str | None:
    """All name tokens (variant spellings), sorted: the same for `Amina Yusuf` and `Yusuf Amina`."""
    tokens: list[str] = []
    for name in names:
        key = variant_key(name)
        if key is not None:
            tokens.extend(key.split(" "))
    return " ".join(sorted(tokens)) or None


def normalise_sex(value: Any) -> str | None:
    """`m`, `f` or None, from the codes and words sources use."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip().lower()
    if text in {"m", "male", "1", "man", "boy"}:
        return "m"
    if text in {"f", "female", "2", "woman", "girl"}:
        return "f"
    return None


def _plausible_year(year: int) -> int | None:
    return year if 1850 <= year <= 2100 else None


def parse_birth(birth_date: Any, birth_year: Any = None) -> tuple[str | None, int | None]:
    """(ISO date or None, year or None): a partial or invalid date still yields its year."""
    year = _to_int(birth_year)
    if isinstance(birth_date, datetime):
        birth_date = birth_date.date()
    if isinstance(birth_date, date):
        return birth_date.isoformat(), birth_date.year
    text = None if _missing(birth_date) else str(birth_date).strip()
    if text:
        match = _ISO.match(text) or _COMPACT.match(text)
        if match:
            y, m, d = (int(g) for g in match.groups())
            if _plausible_year(y) is None:
                return None, None
            try:
                return date(y, m, d).isoformat(), y
            except ValueError:
                return None, y
        match = _YEAR.match(text)
        if match and year is None:
            year = int(match.group(1))
    return None, None if year is None else _plausible_year(year)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _to_int(value: Any) -> int | None:
    if _missing(value):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _digits(value: Any) -> str | None:
    if _missing(value):
        return None
    return _DIGITS.sub("", str(value)) or None


def _code(value: Any) -> str | None:
    if _missing(value):
        return None
    return str(value).strip().lower() or None


def normalise_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One canonical record (raw values, any subset of `CANONICAL_COLUMNS`) -> the model's columns."""
    given = clean_text(_text(record.get("given_name")))
    second = clean_text(_text(record.get("second_name")))
    surname = clean_text(_text(record.get("surname")))
    birth_date, birth_year = parse_birth(record.get("birth_date"), record.get("birth_year"))
    return {
        "record_id": None if _missing(record.get("record_id")) else str(record.get("record_id")),
        "source": _text(record.get("source")),
        "given_name": given,
        "second_name": second,
        "surname": surname,
        "given_key": variant_key(given),
        "surname_key": variant_key(surname),
        "given_ph": phonetic_key(given),
        "surname_ph": phonetic_key(surname),
        "full_name": full_name_key(given, second, surname),
        "sex": normalise_sex(record.get("sex")),
        "birth_date": birth_date,
        "birth_year": birth_year,
        "mother_name": variant_key(_text(record.get("mother_name"))),
        "district": _code(record.get("district")),
        "locality": _code(record.get("locality")),
        "national_id": _digits(record.get("national_id")),
    }


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame of canonical records -> a frame of the model's columns (`birth_year` as nullable Int64)."""
    missing = [c for c in ("record_id",) if c not in frame.columns]
    if missing:
        raise KeyError(f"canonical frame lacks columns: {missing}")
    present = [c for c in CANONICAL_COLUMNS if c in frame.columns]
    rows = [normalise_record(dict(zip(present, values, strict=True))) for values in frame[present].itertuples(False)]
    out = pd.DataFrame(rows, columns=list(MODEL_COLUMNS))
    out["birth_year"] = out["birth_year"].astype("Int64")
    for column in MODEL_COLUMNS:
        if column != "birth_year":
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out
