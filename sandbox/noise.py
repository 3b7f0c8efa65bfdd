"""How each agency's copy of a person drifts from the truth, and by how much.

Every agency keys in names and dates its own way: the civil registry checks documents, the programme
MIS is filled in at village meetings. The kinds of error are the ones record linkage must survive:
typing slips, transliteration variants, nicknames, name order swapped, birth known only by year,
old addresses, identifiers mistyped or missing, and the same person registered twice.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from sandbox.names import NICKNAMES, VARIANT_GROUPS


@dataclass(frozen=True)
class NoiseProfile:
    """Error rates of one agency (per name field unless said per record)."""

    typo: float
    translit: float
    nickname: float
    #: Per record: surname and given name exchanged.
    swap: float
    #: Per record: names keyed in upper case (a data-entry convention, not an error to a matcher).
    upper: float
    #: Per record, by age band: only the birth year is known (under 40, 40-64, 65 and over).
    year_only: tuple[float, float, float]
    #: Per record with a full date: day and month exchanged, or a few days off.
    dob_error: float
    #: Per record: the district and village are an older address.
    stale_address: float
    #: Per record of a person who has a national ID: the agency holds none.
    missing_nid: float
    #: Per record carrying a national ID: one digit mistyped or two swapped.
    nid_typo: float
    #: Per person: a second record of the same person.
    duplicate: float


PROFILES: dict[str, NoiseProfile] = {
    "cra": NoiseProfile(
        typo=0.008,
        translit=0.01,
        nickname=0.0,
        swap=0.003,
        upper=0.0,
        year_only=(0.01, 0.08, 0.35),
        dob_error=0.005,
        stale_address=0.06,
        missing_nid=0.0,
        nid_typo=0.0,
        duplicate=0.03,
    ),
    "tax": NoiseProfile(
        typo=0.02,
        translit=0.03,
        nickname=0.02,
        swap=0.01,
        upper=0.5,
        year_only=(0.01, 0.03, 0.1),
        dob_error=0.02,
        stale_address=0.12,
        missing_nid=0.05,
        nid_typo=0.005,
        duplicate=0.0,
    ),
    "ssf": NoiseProfile(
        typo=0.025,
        translit=0.04,
        nickname=0.02,
        swap=0.015,
        upper=0.2,
        year_only=(0.02, 0.05, 0.2),
        dob_error=0.02,
        stale_address=0.15,
        missing_nid=0.08,
        nid_typo=0.008,
        duplicate=0.0,
    ),
    "msp": NoiseProfile(
        typo=0.03,
        translit=0.04,
        nickname=0.03,
        swap=0.03,
        upper=0.3,
        year_only=(0.03, 0.2, 0.5),
        dob_error=0.04,
        stale_address=0.18,
        missing_nid=0.12,
        nid_typo=0.02,
        duplicate=0.015,
    ),
}

_VARIANTS: dict[str, tuple[str, ...]] = {
    name: tuple(v for v in group if v != name) for group in VARIANT_GROUPS for name in group
}
# Spelling rules of transliteration, tried in this order; one applicable rule is applied.
_RULES: tuple[tuple[str, str], ...] = (
    ("ch", "sh"),
    ("sh", "ch"),
    ("ou", "u"),
    ("oo", "u"),
    ("ph", "f"),
    ("kh", "h"),
    ("dh", "d"),
    ("th", "t"),
    ("ee", "i"),
    ("ie", "i"),
    ("mm", "m"),
    ("ss", "s"),
    ("ll", "l"),
    ("q", "k"),
    ("x", "h"),
    ("c", "k"),
    ("w", "u"),
    ("y", "i"),
    ("i", "e"),
    ("e", "i"),
    ("u", "o"),
)
_LETTERS = string.ascii_lowercase


def typo(name: str, rng: random.Random) -> str:
    """One keying slip: a letter inserted, dropped, replaced, or two neighbours exchanged."""
    if len(name) < 3:
        return name + rng.choice(_LETTERS)
    i = rng.randrange(1, len(name))  # keyers rarely get the first letter wrong
    kind = rng.randrange(4)
    if kind == 0:
        return name[:i] + rng.choice(_LETTERS) + name[i:]
    if kind == 1:
        return name[:i] + name[i + 1 :]
    if kind == 2:
        return name[:i] + rng.choice(_LETTERS) + name[i + 1 :]
    j = min(i, len(name) - 2)
    return name[:j] + name[j + 1] + name[j] + name[j + 2 :]


def transliterate(name: str, rng: random.Random) -> str:
    """A spelling the name is also written with: a known variant, else a spelling rule."""
    known = _VARIANTS.get(name)
    if known:
        return rng.choice(known)
    lower = name.lower()
    rules = [r for r in _RULES if r[0] in lower[1:]]
    if not rules:
        return name
    old, new = rng.choice(rules)
    at = lower.index(old, 1)
    return name[:at] + new + name[at + len(old) :]


def nickname(name: str, rng: random.Random) -> str:
    """The short form a person gives instead of the registered name (unchanged when there is none)."""
    known = NICKNAMES.get(name)
    if known:
        return rng.choice(known)
    if name.startswith("Oluwa") and len(name) > 7:
        return name[5].upper() + name[6:]
    if name.startswith("Abdul") and len(name) > 7:
        return "Abdul"
    return name


def name_error_rate(profile: NoiseProfile) -> float:
    """Share of name fields that `perturb` is applied to."""
    return profile.typo + profile.translit + profile.nickname


def perturb(value: str, profile: NoiseProfile, rng: random.Random) -> str:
    """One name field as this agency got it wrong: the kind of error drawn by the profile's rates."""
    r = rng.random() * name_error_rate(profile)
    if r < profile.typo:
        return typo(value, rng)
    changed = transliterate(value, rng) if r < profile.typo + profile.translit else nickname(value, rng)
    # A name with no variant and no short form still gets the agency's error, as a slip.
    return changed if changed != value else typo(value, rng)


def national_id(value: str, rng: random.Random) -> str:
    """A mistyped identifier: one digit replaced, or two neighbours exchanged."""
    i = rng.randrange(len(value) - 1)
    if rng.random() < 0.5:
        return value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    digit = rng.choice([d for d in string.digits if d != value[i]])
    return value[:i] + digit + value[i + 1 :]
