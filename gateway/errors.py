"""The gateway's errors, each with one X-Road-style code and one HTTP status.

Codes follow X-Road's grammar: `Client.` when the client's request is at fault, `Server.ClientProxy.`
for the gateway serving the client, `Server.ServerProxy.` for the gateway in front of the provider.
Only this package turns errors into HTTP or SOAP; other packages raise their own, mapped here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: str
    status: int


BAD_REQUEST = ErrorKind("Client.BadRequest", 400)
MISSING_HEADER = ErrorKind("Client.MissingHeader", 400)
INVALID_CLIENT_ID = ErrorKind("Client.InvalidClientIdentifier", 400)
INVALID_SERVICE_ID = ErrorKind("Client.InvalidServiceIdentifier", 400)
MISSING_PURPOSE = ErrorKind("Client.MissingPurpose", 400)
INVALID_PURPOSE = ErrorKind("Client.InvalidPurpose", 400)
INVALID_HEADER = ErrorKind("Client.InvalidHeader", 400)
INVALID_PROTOCOL_VERSION = ErrorKind("Client.InvalidProtocolVersion", 400)
INVALID_SOAP = ErrorKind("Client.InvalidSoap", 400)
INCONSISTENT_HEADERS = ErrorKind("Client.InconsistentHeaders", 400)
INVALID_SERVICE_TYPE = ErrorKind("Client.InvalidServiceType", 400)
MESSAGE_TOO_LARGE = ErrorKind("Client.MessageTooLarge", 413)
CLIENT_AUTHENTICATION = ErrorKind("Server.ClientProxy.ClientAuthenticationFailed", 401)
UNKNOWN_CLIENT = ErrorKind("Server.ClientProxy.UnknownClient", 403)
UNKNOWN_MEMBER = ErrorKind("Server.ClientProxy.UnknownMember", 404)
UNKNOWN_SERVICE = ErrorKind("Server.ServerProxy.UnknownService", 404)
ACCESS_DENIED = ErrorKind("Server.ServerProxy.AccessDenied", 403)
NETWORK_ERROR = ErrorKind("Server.ServerProxy.NetworkError", 502)
SERVICE_TIMEOUT = ErrorKind("Server.ServerProxy.ServiceTimeout", 504)
INVALID_RESPONSE = ErrorKind("Server.ServerProxy.InvalidResponse", 502)
SERVICE_FAILED = ErrorKind("Server.ServerProxy.ServiceFailed", 502)
INTERNAL_ERROR = ErrorKind("Server.ServerProxy.InternalError", 500)
OUTDATED_GLOBAL_CONF_CLIENT = ErrorKind("Server.ClientProxy.OutdatedGlobalConf", 503)
OUTDATED_GLOBAL_CONF = ErrorKind("Server.ServerProxy.OutdatedGlobalConf", 503)
SSL_AUTH_CLIENT = ErrorKind("Server.ClientProxy.SslAuthenticationFailed", 502)
SSL_AUTH = ErrorKind("Server.ServerProxy.SslAuthenticationFailed", 403)
INVALID_SIGNATURE_CLIENT = ErrorKind("Server.ClientProxy.InvalidSignatureValue", 502)
INVALID_SIGNATURE = ErrorKind("Server.ServerProxy.InvalidSignatureValue", 403)
REPLAYED_MESSAGE = ErrorKind("Server.ServerProxy.ReplayedMessage", 409)
INVALID_TIMESTAMP = ErrorKind("Server.ServerProxy.InvalidTimestamp", 400)
PEER_NETWORK_ERROR = ErrorKind("Server.ClientProxy.NetworkError", 502)
PEER_TIMEOUT = ErrorKind("Server.ClientProxy.ServiceTimeout", 504)
LOGGING_FAILED_CLIENT = ErrorKind("Server.ClientProxy.LoggingFailed", 500)
LOGGING_FAILED = ErrorKind("Server.ServerProxy.LoggingFailed", 500)
OPERATOR_AUTHENTICATION = ErrorKind("Server.Operator.AuthenticationFailed", 401)
CIRCUIT_OPEN = ErrorKind("Server.ServerProxy.ServiceUnavailable", 503)
CIRCUIT_OPEN_CLIENT = ErrorKind("Server.ClientProxy.ServiceUnavailable", 503)
STATE_UNAVAILABLE = ErrorKind("Server.ServerProxy.StateUnavailable", 503)


class GatewayError(Exception):
    """A refusal or failure the client is told about, with its code; never carries personal data."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def code(self) -> str:
        return self.kind.code

    @property
    def status(self) -> int:
        return self.kind.status


class ConfigError(Exception):
    """The node's configuration is wrong; the message names the setting."""


# A request whose parameters or JSON body do not fit the operation (FastAPI's validation): 422 as FastAPI
# answers it, but in the X-Road form and never echoing the value given (it may be a personal identifier).
INVALID_REQUEST = ErrorKind("Client.InvalidRequest", 422)
# The HTTP layer's own refusals (no such route, a method the route does not take), in the X-Road form too.
NOT_FOUND = ErrorKind("Client.NotFound", 404)
METHOD_NOT_ALLOWED = ErrorKind("Client.MethodNotAllowed", 405)


def kinds() -> list[ErrorKind]:
    """Every error kind defined here, in code order."""
    return sorted((v for v in globals().values() if isinstance(v, ErrorKind)), key=lambda k: k.code)


def error_schema(low: int = 400, high: int = 599) -> dict[str, object]:
    """The JSON schema of the gateway's error body, its `type` one of the codes with a status in [low, high]."""
    codes = sorted({k.code for k in kinds() if low <= k.status <= high})
    return {
        "title": "XRoadError",
        "type": "object",
        "required": ["type", "message", "detail"],
        "properties": {
            "type": {"type": "string", "enum": codes, "description": "the X-Road error code (as in X-Road-Error)"},
            "message": {"type": "string", "description": "what is wrong; never holds personal data"},
            "detail": {"type": "string", "description": "the exchange id, where the refusal concerns one"},
        },
    }


ERROR_HEADER_DOC = {"X-Road-Error": {"description": "the error code", "schema": {"type": "string"}}}


def openapi_responses() -> dict[int | str, dict[str, object]]:
    """OpenAPI responses for the gateway's own refusals: any 4xx or 5xx it answers is an X-Road error."""
    return {
        f"{digit}XX": {
            "description": "the gateway's refusal: an X-Road error, its code also in the X-Road-Error header",
            "headers": ERROR_HEADER_DOC,
            "content": {"application/json": {"schema": error_schema(digit * 100, digit * 100 + 99)}},
        }
        for digit in (4, 5)
    }


def unexpected(exchange_id: str) -> GatewayError:
    """An exception nobody expected: its traceback goes to the node's log (never to the client, since it may hold
    request data), the client gets the internal error. Answering (rather than letting the exception reach the
    server) keeps the connection open: a peer gateway's pooled connection is not cut under its next exchange."""
    logging.getLogger("kiungo.gateway").exception("exchange %s failed unexpectedly", exchange_id)
    return GatewayError(INTERNAL_ERROR, "internal error")
