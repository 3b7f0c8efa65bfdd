"""Kiungo's `policies` package (see docs/architecture.md); its capabilities arrive with later issues."""

__all__: list[str] = []
