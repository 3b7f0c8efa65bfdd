"""The comparisons of the model, declared once and read two ways: as Splink SQL and as Python.

Splink trains and batch-scores from the SQL; the online matcher evaluates the same levels in Python
(jellyfish computes the same Jaro-Winkler and Levenshtein values as DuckDB on ASCII text). Declaring
the levels as data, not as Splink library calls, is what lets the two agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from matching.errors import ModelError

LevelKind = Literal["null", "exact", "swap", "jaro_winkler", "levenshtein", "year_only", "within", "else"]
_KINDS: frozenset[str] = frozenset(LevelKind.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Level:
    """One comparison level: a condition on the two records' columns.

    - `null`: any of `columns` missing on either side (weight 0)
    - `exact`: `columns[0]` equal
    - `swap`: `columns[0]` on the left equals `columns[1]` on the right and the other way round
    - `jaro_winkler`: similarity of `columns[0]` at least `threshold`
    - `levenshtein`: edit distance of `columns[0]` at most `threshold`
    - `year_only`: same `columns[1]` (year) while `columns[0]` (date) is missing on a side
    - `within`: absolute difference of the numbers in `columns[0]` at most `threshold`
    - `else`: anything not matched above
    """

    kind: LevelKind
    columns: tuple[str, ...] = ()
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ModelError(f"unknown level kind {self.kind!r}")
        needs = {"else": 0, "swap": 2, "year_only": 2}.get(self.kind, 1)
        if len(self.columns) < needs or (
            self.kind in {"jaro_winkler", "levenshtein", "within"} and self.threshold is None
        ):
            raise ModelError(f"level {self.kind!r} needs {needs} column(s) and a threshold where it compares")

    @property
    def label(self) -> str:
        cols = "/".join(self.columns)
        if self.threshold is None:
            return f"{self.kind} {cols}".strip()
        return f"{self.kind} {cols} {self.threshold:g}"

    def sql(self) -> str:
        """The Splink `sql_condition` (columns as `name_l` / `name_r`)."""
        c = self.columns
        match self.kind:
            case "null":
                return " OR ".join(f"{x}_l IS NULL OR {x}_r IS NULL" for x in c)
            case "exact":
                return f"{c[0]}_l = {c[0]}_r"
            case "swap":
                return f"{c[0]}_l = {c[1]}_r AND {c[1]}_l = {c[0]}_r"
            case "jaro_winkler":
                return f"jaro_winkler_similarity({c[0]}_l, {c[0]}_r) >= {self.threshold!r}"
            case "levenshtein":
                return f"levenshtein({c[0]}_l, {c[0]}_r) <= {int(self.threshold or 0)}"
            case "year_only":
                return f"{c[1]}_l = {c[1]}_r AND ({c[0]}_l IS NULL OR {c[0]}_r IS NULL)"
            case "within":
                return f"abs({c[0]}_l - {c[0]}_r) <= {int(self.threshold or 0)}"
            case _:
                return "ELSE"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": list(self.columns), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Level:
        return cls(kind=data["kind"], columns=tuple(data["columns"]), threshold=data.get("threshold"))


@dataclass(frozen=True, slots=True)
class Comparison:
    """An ordered list of levels; the first level that holds decides the pair's weight for it."""

    name: str
    levels: tuple[Level, ...]

    def splink_dict(self) -> dict[str, Any]:
        levels: list[dict[str, Any]] = []
        for level in self.levels:
            entry: dict[str, Any] = {"sql_condition": level.sql(), "label_for_charts": level.label}
            if level.kind == "null":
                entry["is_null_level"] = True
            levels.append(entry)
        return {"output_column_name": self.name, "comparison_levels": levels, "comparison_description": self.name}

    @property
    def columns(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for level in self.levels:
            seen.update(dict.fromkeys(level.columns))
        return tuple(seen)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "levels": [lv.as_dict() for lv in self.levels]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        return cls(name=data["name"], levels=tuple(Level.from_dict(lv) for lv in data["levels"]))


def _name(column: str, key: str, phonetic: str) -> Comparison:
    return Comparison(
        column,
        (
            Level("null", (column,)),
            Level("exact", (column,)),
            Level("exact", (key,)),
            Level("exact", ("full_name",)),
            Level("jaro_winkler", (column,), 0.92),
            Level("exact", (phonetic,)),
            Level("jaro_winkler", (column,), 0.8),
            Level("else"),
        ),
    )


#: The default comparisons: names, birth date (full, partial, typo), sex, mother, district, national ID.
DEFAULT_COMPARISONS: tuple[Comparison, ...] = (
    _name("given_name", "given_key", "given_ph"),
    _name("surname", "surname_key", "surname_ph"),
    Comparison(
        "second_name",
        (
            Level("null", ("second_name",)),
            Level("exact", ("second_name",)),
            Level("jaro_winkler", ("second_name",), 0.88),
            Level("else"),
        ),
    ),
    Comparison(
        "birth",
        (
            Level("null", ("birth_year",)),
            Level("exact", ("birth_date",)),
            Level("levenshtein", ("birth_date",), 1),
            Level("year_only", ("birth_date", "birth_year")),
            Level("levenshtein", ("birth_date",), 2),
            Level("within", ("birth_year",), 1),
            Level("else"),
        ),
    ),
    Comparison("sex", (Level("null", ("sex",)), Level("exact", ("sex",)), Level("else"))),
    Comparison(
        "mother_name",
        (
            Level("null", ("mother_name",)),
            Level("exact", ("mother_name",)),
            Level("jaro_winkler", ("mother_name",), 0.9),
            Level("else"),
        ),
    ),
    Comparison("district", (Level("null", ("district",)), Level("exact", ("district",)), Level("else"))),
    Comparison("locality", (Level("null", ("locality",)), Level("exact", ("locality",)), Level("else"))),
    Comparison(
        "national_id",
        (
            Level("null", ("national_id",)),
            Level("exact", ("national_id",)),
            Level("levenshtein", ("national_id",), 1),
            Level("else"),
        ),
    ),
)

#: Blocking keys for prediction, batch and online alike: a pair is a candidate when any key is equal.
DEFAULT_BLOCKING: tuple[tuple[str, ...], ...] = (
    ("surname_ph", "birth_year"),
    ("given_ph", "birth_year"),
    ("birth_date",),
    ("given_ph", "surname_ph"),
    ("full_name",),
    ("given_ph", "locality"),
    ("surname_ph", "locality"),
    ("national_id",),
)

#: Blocking rules for the EM sessions: each leaves the comparisons it does not block on to estimate.
DEFAULT_EM_BLOCKING: tuple[tuple[str, ...], ...] = (
    ("birth_date",),
    ("surname_ph", "given_ph"),
)
