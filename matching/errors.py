"""One exception tree for identity resolution, so callers (the gateway) can catch `MatchingError` alone."""

from __future__ import annotations


class MatchingError(Exception):
    """Root of every error the matching package raises on purpose."""


class SourceError(MatchingError):
    """An agency table cannot be read into canonical records (missing table or column)."""


class ModelError(MatchingError):
    """A model file is unreadable, of an unknown version, or lacks trained parameters."""


class TrainingError(MatchingError):
    """Training could not produce a usable model (empty input, a parameter never estimated)."""
