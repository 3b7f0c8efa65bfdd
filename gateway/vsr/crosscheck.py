"""Cross-checking a programme's beneficiary list: who died, who is paid twice, who no longer qualifies.

Each beneficiary is looked up like any registry query (every look-up an exchange, under the purpose
`beneficiary-list-maintenance`); the answer becomes flags, each with its evidence: the exchange that
showed it and, where the person was found by matching, the match probability. A flag is a fact the
sources stated about a confidently identified person; anything less certain (an ambiguous identity, a
match below the flag threshold) is marked for review instead, never flagged.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.vsr.eligibility import Programme
from gateway.vsr.registry import Answer

PURPOSE = "beneficiary-list-maintenance"
#: Sources a cross-check asks beyond the programme's rules: the MIS, for double and exclusive enrolments.
SOURCES = frozenset({"mis"})
#: Below this match probability a matched identity's flags are only marked for review.
FLAG_THRESHOLD = 0.99
#: Rules whose failure means the means test: income or pension above the programme's threshold.
MEANS_FACTS = ("pension.", "income.", "household.income")
FLAGS = (
    "deceased",
    "above_threshold",
    "not_combinable",
    "enrolled_twice",
    "duplicate_in_list",
    "no_longer_qualifies",
    "identity_not_found",
)
REVIEWS = ("identity_ambiguous", "identity_not_found", "uncertain_match")


def _flag(name: str, detail: str, evidence: Iterable[Mapping[str, Any]], probability: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"flag": name, "detail": detail, "evidence": list(evidence)}
    if probability is not None:
        out["match_probability"] = round(probability, 6)
    return out


def check(answer: Answer, programme: Programme, beneficiary_no: str | None) -> dict[str, Any]:
    """One beneficiary's flags and review marks, with evidence; the list-wide checks come later."""
    view = answer.as_dict(with_facts=False)
    identity = view["identity"]
    decision = view["decision"]
    probability = identity.get("match_probability")
    flags: list[dict[str, Any]] = []
    review: list[dict[str, Any]] = []
    status = identity["status"]
    cra = [s for s in view["sources"] if s["source"] == "civil-registry"]
    cra_evidence = [{"source": s["service"], "exchange_ids": s.get("exchange_ids", [])} for s in cra]
    if status == "not_found":
        target = flags if identity["method"] != "matching" else review
        target.append(_flag("identity_not_found", identity.get("note", ""), cra_evidence, None))
    elif status == "ambiguous":
        candidates = [
            {"record_id": c["record_id"], "match_probability": c["match_probability"]}
            for c in identity.get("candidates", [])
        ]
        review.append(_flag("identity_ambiguous", identity.get("note", ""), [{"candidates": candidates}], probability))
    rules = {r["id"]: r for r in decision["rules"]}
    person = view.get("person")
    if person is not None:
        alive = next((r for r in rules.values() if r["fact"] and r["fact"]["name"] == "person.alive"), None)
        if alive is not None and alive["status"] == "not_met":
            death = person.get("death_date")
            flags.append(
                _flag(
                    "deceased",
                    f"died {death}" if death else "recorded as deceased",
                    alive["fact"]["provenance"],
                    probability,
                )
            )
        for rule in rules.values():
            fact = rule["fact"]
            if rule["status"] != "not_met" or fact is None or fact["name"] == "person.alive":
                continue
            name = "above_threshold" if fact["name"].startswith(MEANS_FACTS) else "no_longer_qualifies"
            flags.append(_flag(name, f"{rule['requirement']}: {fact['value']!r}", fact["provenance"], probability))
        enrolments = view.get("enrolments")
        if enrolments is not None:
            active = [e for e in enrolments["items"] if e.get("status") == "active"]
            others = [e for e in active if e.get("programme") in programme.not_combinable_with]
            if others:
                detail = ", ".join(f"{e['programme']} ({e['beneficiary_no']})" for e in others)
                flags.append(
                    _flag("not_combinable", f"also enrolled in {detail}", [enrolments["provenance"]], probability)
                )
            same = [e for e in active if e.get("programme") == programme.programme]
            twice = [e for e in same if e.get("beneficiary_no") != beneficiary_no] if beneficiary_no else same[1:]
            if twice and (beneficiary_no or len(same) > 1):
                numbers = ", ".join(str(e["beneficiary_no"]) for e in twice)
                flags.append(
                    _flag("enrolled_twice", f"also enrolled as {numbers}", [enrolments["provenance"]], probability)
                )
    if identity.get("method") == "matching" and status == "resolved" and (probability or 0) < FLAG_THRESHOLD:
        for flag in flags:
            review.append(flag | {"flag": "uncertain_match", "would_flag": flag["flag"]})
        flags = []
    return {
        "beneficiary_no": beneficiary_no,
        "identity": identity,
        "record_id": _record_id(person),
        "outcome": decision["outcome"],
        "flags": flags,
        "review": review,
        "complete": view["complete"],
        "missing_sources": view["missing_sources"],
    }


def _record_id(person: Mapping[str, Any] | None) -> str | None:
    if person is None:
        return None
    for identifier in person.get("identifier", []):
        if identifier.get("identifier_type") == "CRA_RECORD":
            return str(identifier["identifier_value"])
    return None


def report(results: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[str, Any]:
    """The whole list: duplicates found across it, and a summary table."""
    rows: list[dict[str, Any]] = []
    by_record: dict[str, list[int]] = defaultdict(list)
    for index, result in sorted(results, key=lambda r: r[0]):
        row = {"index": index, **result}
        if "error" in result:
            row = {"index": index, "error": result["error"], "flags": [], "review": []}
        rows.append(row)
        if row.get("record_id"):
            by_record[row["record_id"]].append(len(rows) - 1)
    for positions in by_record.values():
        if len(positions) < 2:
            continue
        for p in positions:
            others = [rows[q] for q in positions if q != p]
            listed = ", ".join(str(o.get("beneficiary_no") or f"line {o['index'] + 1}") for o in others)
            rows[p]["flags"].append(
                _flag(
                    "duplicate_in_list",
                    f"the same person as {listed}",
                    [{"record_id": rows[p]["record_id"], "list_indices": [o["index"] for o in others]}],
                    rows[p]["identity"].get("match_probability"),
                )
            )
    flags = Counter(f["flag"] for r in rows for f in r["flags"])
    reviews = Counter(f["flag"] for r in rows for f in r["review"])
    summary = {
        "beneficiaries": len(rows),
        "flagged": sum(1 for r in rows if r["flags"]),
        "for_review": sum(1 for r in rows if r["review"]),
        "clean": sum(1 for r in rows if not r["flags"] and not r["review"] and "error" not in r and r["complete"]),
        "incomplete": sum(1 for r in rows if "error" not in r and not r["complete"]),
        "errors": sum(1 for r in rows if "error" in r),
        "flags": {name: flags.get(name, 0) for name in FLAGS},
        "review": {name: reviews.get(name, 0) for name in REVIEWS},
    }
    return {"summary": summary, "beneficiaries": rows}


CSV_COLUMNS = (
    "line",
    "beneficiary_no",
    "identity",
    "match_probability",
    "outcome",
    "flags",
    "review",
    "evidence",
    "missing_sources",
)


def to_csv(document: Mapping[str, Any], *, header: bool = True) -> str:
    """One line per beneficiary: flags and review marks joined, evidence as exchange ids."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in document["beneficiaries"]:
        identity = row.get("identity", {})
        evidence = []
        for mark in row["flags"] + row["review"]:
            for e in mark["evidence"]:
                evidence.extend(e.get("exchange_ids", [e["exchange_id"]] if "exchange_id" in e else []))
        writer.writerow(
            [
                row["index"] + 1,
                row.get("beneficiary_no") or "",
                identity.get("status", "error"),
                identity.get("match_probability", ""),
                row.get("outcome", ""),
                "; ".join(f"{f['flag']}: {f['detail']}" for f in row["flags"]),
                "; ".join(f"{f['flag']}: {f['detail']}" for f in row["review"]),
                " ".join(dict.fromkeys(evidence)),
                " ".join(row.get("missing_sources", [])),
            ]
        )
    return out.getvalue()
