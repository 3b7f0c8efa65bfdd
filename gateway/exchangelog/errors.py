"""Errors of the exchange log; messages never carry personal data (no ids, no record contents)."""

from __future__ import annotations


class LogError(Exception):
    """Base of every exchange-log error."""


class LoggingFailed(LogError):
    """The record could not be made durable; the gateway must refuse the exchange (fail closed)."""


class TamperError(LogError):
    """Verification found a problem: the first bad leaf index (or None) and what kind of change it looks like."""

    KINDS = ("altered", "removed", "inserted", "reordered", "truncated", "tree-head", "signature")

    def __init__(self, kind: str, index: int | None, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.index = index
        self.message = message

    def __str__(self) -> str:
        where = f" at index {self.index}" if self.index is not None else ""
        return f"{self.kind}{where}: {self.message}"
