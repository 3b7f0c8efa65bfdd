"""The civil registry's own phonetic key for its name search index.

A deliberately simple Soundex-like key (as many registries run): it groups spelling variants so that
the registry's search can return candidates. The real identity resolution is `matching`'s job.
"""

from __future__ import annotations

import unicodedata

_CODES = {
    **dict.fromkeys("BFPV", "1"),
    **dict.fromkeys("CGJKQSXZ", "2"),
    **dict.fromkeys("DT", "3"),
    "L": "4",
    **dict.fromkeys("MN", "5"),
    "R": "6",
}


def fold(text: str) -> str:
    """Upper-case ASCII letters only: accents dropped, everything else removed."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.upper() if "A" <= c <= "Z")


def key(name: str) -> str:
    """Soundex-style key: first letter and up to three consonant-class digits ('' for no letters)."""
    letters = fold(name)
    if not letters:
        return ""
    out = [letters[0]]
    last = _CODES.get(letters[0], "")
    for c in letters[1:]:
        code = _CODES.get(c, "")
        if code and code != last:
            out.append(code)
            if len(out) == 4:
                break
        if c not in "HW":
            last = code
    return "".join(out).ljust(4, "0")
