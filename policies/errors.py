"""The package's exceptions: callers catch `PolicyError` and turn it into their own refusal."""

from __future__ import annotations


class PolicyError(Exception):
    """Base of every error the policies package raises on purpose."""


class AgreementError(PolicyError):
    """An agreement file (or a set of them) that does not load or validate.

    `problems` holds one readable line per problem (file, field, what is wrong), so a caller can list
    them all; the message is those lines joined.
    """

    def __init__(self, problems: str | list[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
