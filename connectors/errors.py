"""The connectors' exception tree.

Every error names the system and the operation (a path template or SOAP operation, never a filled-in
path, which would carry an identifier) and keeps the upstream's own words only after redaction, so an
error can be logged or shown to an operator without leaking whose data was asked for.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every connector failure."""

    def __init__(self, message: str, *, system: str = "", operation: str = "") -> None:
        self.system = system
        self.operation = operation
        where = ": ".join(p for p in (system, operation) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigurationError(ConnectorError):
    """The connector configuration is wrong: unknown connector kind, missing setting, unknown service."""


class InvalidRequestError(ConnectorError):
    """The call cannot be built: a parameter is missing or has the wrong type, the operation is unknown."""


class UnreachableError(ConnectorError):
    """The agency system could not be connected to (refused, no route, name unknown, TLS failed), or the
    connection broke (reset) before any byte of an answer came back."""


class ConnectorTimeout(ConnectorError):
    """The agency system did not answer within the configured timeout."""


class UpstreamError(ConnectorError):
    """The agency system answered with a failure of its own: an HTTP 5xx or a SOAP Fault."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        operation: str = "",
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, system=system, operation=operation)
        self.status = status
        self.code = code
        self.detail = detail


class MalformedResponseError(ConnectorError):
    """The agency system answered something that is not what its interface promises."""
