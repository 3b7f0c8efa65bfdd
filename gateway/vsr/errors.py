"""The virtual registry's errors, rooted in `VsrError`; its HTTP app turns them into answers."""

from __future__ import annotations

from gateway.xroadclient import ExchangeFailed


class VsrError(Exception):
    """Anything the virtual registry cannot do; messages never carry a personal identifier."""


class RulesError(VsrError):
    """A programme's rule file is invalid, or no version of the programme is in force."""


class IdentityError(VsrError):
    """The person could not be identified as asked (e.g. matching is not configured)."""


class QueryError(VsrError):
    """A client's query is malformed or incomplete."""


class SourceFailed(VsrError, ExchangeFailed):
    """A source did not answer usably: refused, failed or timed out; the answer becomes partial."""

    def __init__(self, service: str, code: str, message: str) -> None:
        ExchangeFailed.__init__(self, service, code, message)


class JobError(VsrError):
    """A bulk job cannot be created, found, run or read as asked."""
