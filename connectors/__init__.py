"""How a gateway reaches its agency's own systems: REST (httpx) and SOAP (zeep) connectors, plug-ins.

The public API: the `Connector` interface and its messages, the built-in connectors, the router that
maps service codes to them, and the exception tree rooted at `ConnectorError`.
"""

from connectors.connector import Connector, ConnectorFactory, Param, ServiceRequest, ServiceResponse
from connectors.errors import (
    ConfigurationError,
    ConnectorError,
    ConnectorTimeout,
    InvalidRequestError,
    MalformedResponseError,
    UnreachableError,
    UpstreamError,
)
from connectors.redaction import Redactor
from connectors.rest import RestConnector
from connectors.router import Route, Router, build_connectors
from connectors.settings import RestSettings
from connectors.soap import SoapConnector

__all__ = [
    "ConfigurationError",
    "Connector",
    "ConnectorError",
    "ConnectorFactory",
    "ConnectorTimeout",
    "InvalidRequestError",
    "MalformedResponseError",
    "Param",
    "Redactor",
    "RestConnector",
    "RestSettings",
    "Route",
    "Router",
    "ServiceRequest",
    "ServiceResponse",
    "SoapConnector",
    "UnreachableError",
    "UpstreamError",
    "build_connectors",
]
