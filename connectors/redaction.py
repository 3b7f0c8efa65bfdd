"""Redaction of upstream text before it goes into an error message.

Agency systems often echo the identifier they were asked about ("no taxpayer 12345678"). A connector
knows every value it sent, so it masks exactly those, and any long digit run besides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_DIGITS = re.compile(r"\d{5,}")
_MAX_LEN = 200


class Redactor:
    """Masks the given values (and long digit runs) in text, case-insensitively, and bounds its length."""

    def __init__(self, values: Iterable[object] = ()) -> None:
        words = sorted({str(v) for v in values if v is not None and len(str(v)) >= 3}, key=len, reverse=True)
        self._values = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None

    def __call__(self, text: str | None) -> str:
        if not text:
            return ""
        if self._values is not None:
            text = self._values.sub(MASK, text)
        text = _DIGITS.sub(MASK, text)
        text = " ".join(text.split())
        return text if len(text) <= _MAX_LEN else text[: _MAX_LEN - 1] + "…"
