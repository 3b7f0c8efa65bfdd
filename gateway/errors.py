"""The gateway's errors, each with one X-Road-style code and one HTTP status.

Codes follow X-Road's grammar: `Client.` when the client's request is at fault, `Server.ClientProxy.`
for the gateway serving the client, `Server.ServerProxy.` for the gateway in front of the provider.
Only this package turns errors into HTTP or SOAP; other packages raise their own, mapped here.
"""

from __future__ import annotations

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
