"""Regions, districts and villages of the sandbox country, with made-up but plausible names.

Place names are built from syllables common in East, West and Southern African place names, so that
they read naturally without naming a real place by design. Each region leans towards a few naming
traditions, which the population then follows; towns are more mixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sandbox.names import TRADITION_CODES

REGIONS = 5
DISTRICTS_PER_REGION = 6
VILLAGES_PER_DISTRICT = 20

_ONSETS = (
    "Ka",
    "Ki",
    "Ma",
    "Mu",
    "Nya",
    "Ngo",
    "Ba",
    "Bu",
    "Ta",
    "Lu",
    "Ru",
    "Wa",
    "Ndu",
    "Kwa",
    "Se",
    "Mbe",
    "Chi",
    "Ga",
    "Zo",
    "A",
    "O",
    "I",
    "Sha",
    "Tha",
    "Mo",
    "Ny",
    "Ola",
    "Ade",
    "Da",
    "Ko",
)
_MIDDLES = (
    "ra",
    "ri",
    "ko",
    "la",
    "mbi",
    "nde",
    "si",
    "ta",
    "we",
    "go",
    "ngu",
    "ye",
    "li",
    "bo",
    "mu",
    "ka",
    "ne",
    "ro",
    "za",
    "tu",
    "",
    "",
    "",
)
_ENDINGS = (
    "ni",
    "wa",
    "to",
    "ba",
    "ma",
    "ru",
    "ka",
    "se",
    "la",
    "nyi",
    "ngo",
    "mbe",
    "do",
    "ya",
    "ti",
    "le",
    "si",
    "ke",
    "ro",
    "ji",
)
_REGION_SUFFIX = ("Highlands", "Lakes", "Coast", "Plains", "Valley", "Hills", "North", "Savannah")
_VILLAGE_PREFIX = ("", "", "", "", "Kijiji cha ", "Upper ", "Lower ", "New ", "Old ")

#: Naming-tradition mix of each region (indexes into TRADITION_CODES), the urban mix being national.
_REGION_TRADITIONS: tuple[dict[str, float], ...] = (
    {"kikuyu": 0.45, "kenyan": 0.25, "luo": 0.15, "swahili": 0.1, "somali": 0.05},
    {"luo": 0.4, "kenyan": 0.2, "swahili": 0.25, "somali": 0.15},
    {"yoruba": 0.35, "igbo": 0.2, "hausa": 0.2, "nigerian": 0.15, "akan": 0.1},
    {"akan": 0.45, "hausa": 0.15, "yoruba": 0.1, "swahili": 0.1, "amharic": 0.2},
    {"zulu": 0.4, "shona": 0.35, "swahili": 0.1, "amharic": 0.05, "kenyan": 0.1},
)


@dataclass(frozen=True)
class Geography:
    region_codes: tuple[str, ...]
    region_names: tuple[str, ...]
    district_codes: tuple[str, ...]
    district_names: tuple[str, ...]
    district_region: npt.NDArray[np.int64]
    district_urban: npt.NDArray[np.bool_]
    village_codes: tuple[str, ...]
    village_names: tuple[str, ...]
    village_district: npt.NDArray[np.int64]
    #: Share of the population living in each village (sums to 1).
    village_weight: npt.NDArray[np.float64]
    #: Probability of each naming tradition, per district (rows sum to 1).
    district_traditions: npt.NDArray[np.float64]


def _place_name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = (
            _ONSETS[rng.integers(len(_ONSETS))]
            + _MIDDLES[rng.integers(len(_MIDDLES))]
            + _ENDINGS[rng.integers(len(_ENDINGS))]
        )
        if name not in taken and len(name) >= 4:
            taken.add(name)
            return name


def build(rng: np.random.Generator) -> Geography:
    """The country's map; the capital is the first district of the first region."""
    taken: set[str] = set()
    region_names = []
    for r in range(REGIONS):
        base = _place_name(rng, taken)
        region_names.append(f"{base} {_REGION_SUFFIX[r % len(_REGION_SUFFIX)]}")
    n_districts = REGIONS * DISTRICTS_PER_REGION
    district_region = np.repeat(np.arange(REGIONS, dtype=np.int64), DISTRICTS_PER_REGION)
    # One town per region (its first district), the capital, and a second town in two regions.
    district_urban = np.zeros(n_districts, dtype=np.bool_)
    district_urban[::DISTRICTS_PER_REGION] = True
    district_urban[[1, DISTRICTS_PER_REGION * 2 + 1]] = True
    district_names = []
    for d in range(n_districts):
        base = _place_name(rng, taken)
        district_names.append(f"{base} Town" if district_urban[d] and d % DISTRICTS_PER_REGION else base)
    district_names[0] = district_names[0] + " City"
    village_district = np.repeat(np.arange(n_districts, dtype=np.int64), VILLAGES_PER_DISTRICT)
    village_names = []
    for _ in range(len(village_district)):
        prefix = _VILLAGE_PREFIX[rng.integers(len(_VILLAGE_PREFIX))]
        village_names.append(prefix + _place_name(rng, taken))
    # Towns are denser: an urban district holds about three rural districts' people, the capital more.
    district_size = np.where(district_urban, 3.0, 1.0) * rng.uniform(0.7, 1.3, n_districts)
    district_size[0] *= 2.5
    village_share = rng.gamma(2.0, 1.0, len(village_district))
    village_share /= np.bincount(village_district, weights=village_share)[village_district]
    village_weight = district_size[village_district] * village_share
    village_weight /= village_weight.sum()

    national = np.zeros(len(TRADITION_CODES))
    regional = np.zeros((REGIONS, len(TRADITION_CODES)))
    for r, mix in enumerate(_REGION_TRADITIONS):
        for code, share in mix.items():
            regional[r, TRADITION_CODES.index(code)] = share
    regional /= regional.sum(axis=1, keepdims=True)
    national = regional.mean(axis=0)
    district_traditions = regional[district_region]
    district_traditions[district_urban] = 0.5 * district_traditions[district_urban] + 0.5 * national

    return Geography(
        region_codes=tuple(f"R{r + 1}" for r in range(REGIONS)),
        region_names=tuple(region_names),
        district_codes=tuple(f"D{d + 1:02d}" for d in range(n_districts)),
        district_names=tuple(district_names),
        district_region=district_region,
        district_urban=district_urban,
        village_codes=tuple(
            f"D{d + 1:02d}V{v % VILLAGES_PER_DISTRICT + 1:02d}" for v, d in enumerate(village_district.tolist())
        ),
        village_names=tuple(village_names),
        village_district=village_district,
        village_weight=village_weight,
        district_traditions=district_traditions,
    )


def rows(geo: Geography) -> dict[str, list[tuple[object, ...]]]:
    """The geography tables, as both the civil registry and the truth hold them."""
    return {
        "region": list(zip(geo.region_codes, geo.region_names, strict=True)),
        "district": [
            (code, name, geo.region_codes[int(r)], int(u))
            for code, name, r, u in zip(
                geo.district_codes, geo.district_names, geo.district_region, geo.district_urban, strict=True
            )
        ],
        "village": [
            (code, name, geo.district_codes[int(d)])
            for code, name, d in zip(geo.village_codes, geo.village_names, geo.village_district, strict=True)
        ],
    }
