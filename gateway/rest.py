"""The X-Road message protocol for REST (r1): `{METHOD} /r1/{serviceId}[/path][?query]`.

The service id's parts are percent-decoded one by one and checked; the rest of the path goes to the
provider still encoded, after dot-segments are refused (no climbing out of the service's base path).
Provider answers, errors included, pass through unchanged; the gateway's own refusals carry
`X-Road-Error` and a JSON body `{type, message, detail}`.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import Response

from connectors import ServiceRequest
from gateway import errors
from gateway.bodies import read_body
from gateway.catalog import TOKEN_HEADER
from gateway.errors import GatewayError
from gateway.exchange import Exchange, Pipeline, check_purpose, header_value
from gateway.identifiers import ClientId, IdentifierError, ServiceId
from gateway.metaservices import REST_METASERVICES, Metaservices
from gateway.requesthash import rest_request_hash

PREFIX = "/r1/"
MAX_TARGET = 4096
# Never passed on: hop-by-hop headers, those that reveal hosts, and the client's access token.
FILTERED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "user-agent",
        "server",
        "content-length",
        "expect",
        TOKEN_HEADER,
    }
)
XROAD_REQUEST_HEADERS = (
    "x-road-client",
    "x-road-id",
    "x-road-userid",
    "x-road-issue",
    "x-road-represented-party",
    "x-road-pdu-purpose",
    "x-road-pdu-legal-basis",
    "x-road-pdu-consent-reference",
)


def error_response(error: GatewayError, exchange_id: str) -> Response:
    body = {"type": error.code, "message": error.message, "detail": exchange_id}
    return Response(
        json.dumps(body),
        status_code=error.status,
        media_type="application/json; charset=utf-8",
        headers={"X-Road-Error": error.code},
    )


def split_target(raw_path: bytes) -> tuple[ServiceId, str]:
    """The service id and the remaining (still encoded) path of an r1 request."""
    path = raw_path.decode("ascii", "strict")
    if len(path) > MAX_TARGET:
        raise GatewayError(errors.BAD_REQUEST, f"the request path is longer than {MAX_TARGET} characters")
    parts = path[len(PREFIX) :].split("/")
    if len(parts) < 5:
        raise GatewayError(
            errors.INVALID_SERVICE_ID, "the path must be /r1/INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/path]"
        )
    try:
        service = ServiceId.parse("/".join(parts[:5]))
    except IdentifierError as exc:
        raise GatewayError(errors.INVALID_SERVICE_ID, f"invalid service identifier: {exc}") from None
    rest = parts[5:]
    for segment in rest:
        if unquote(segment) in (".", "..") or "\\" in unquote(segment):
            raise GatewayError(errors.BAD_REQUEST, "the service path must not contain '.', '..' or '\\' segments")
    return service, ("/" + "/".join(rest)) if rest else ""


async def handle(request: Request, pipeline: Pipeline, meta: Metaservices, *, max_body: int) -> Response:
    ex = Exchange(protocol="REST", method=request.method)
    headers = request.headers
    try:
        async with pipeline.recorded(ex):
            ex.id = header_value(headers.get("x-road-id"), "X-Road-Id") or ex.request_id
            ex.service, service_path = split_target(request.scope["raw_path"])
            client_text = header_value(headers.get("x-road-client"), "X-Road-Client", required=True) or ""
            try:
                ex.client = ClientId.parse(client_text)
            except IdentifierError as exc:
                raise GatewayError(errors.INVALID_CLIENT_ID, f"invalid X-Road-Client: {exc}") from None
            ex.user_id = header_value(headers.get("x-road-userid"), "X-Road-UserId")
            ex.issue = header_value(headers.get("x-road-issue"), "X-Road-Issue")
            ex.represented_party = header_value(headers.get("x-road-represented-party"), "X-Road-Represented-Party")
            token = headers.get(TOKEN_HEADER)
            query = request.scope.get("query_string", b"").decode("latin-1")
            if ex.service.code in REST_METASERVICES and not service_path:
                return await _metaservice(ex, token, query, pipeline, meta)
            ex.purpose = check_purpose(headers.get("x-road-pdu-purpose"), "X-Road-PDU-Purpose")
            ex.legal_basis = header_value(headers.get("x-road-pdu-legal-basis"), "X-Road-PDU-Legal-Basis")
            ex.consent_reference = header_value(
                headers.get("x-road-pdu-consent-reference"), "X-Road-PDU-Consent-Reference"
            )
            _, service = pipeline.authorize(ex, token, "rest")
            body = await read_body(request, max_body)
            ex.request_size = len(body)
            ex.path_template = meta.endpoints.template(str(ex.service), request.method, service_path or "/")
            forward = {k: v for k, v in headers.items() if k not in FILTERED}
            forward["x-road-id"] = ex.id
            forward["x-road-request-id"] = ex.request_id
            forward["x-road-service"] = str(ex.service)
            answer = await pipeline.call(
                ex,
                service,
                ServiceRequest(
                    operation=service.operation,
                    method=request.method,
                    path=service_path,
                    query=query,
                    headers=forward,
                    body=body or None,
                    timeout=pipeline.provider_timeout,
                    passthrough=True,
                ),
            )
            xroad = {k: headers[k] for k in XROAD_REQUEST_HEADERS if k in headers}
            xroad["x-road-id"] = ex.id
            target = request.url.path + (f"?{query}" if query else "")
            out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in FILTERED}
            out_headers = {k: v for k, v in out_headers.items() if not k.lower().startswith("x-road-")}
            out_headers.update(
                {
                    "X-Road-Client": str(ex.client),
                    "X-Road-Service": str(ex.service),
                    "X-Road-Id": ex.id,
                    "X-Road-Request-Id": ex.request_id,
                    "X-Road-Request-Hash": rest_request_hash(request.method, target, xroad, body),
                }
            )
            return Response(answer.content, status_code=answer.status, headers=out_headers)
    except GatewayError as error:
        return error_response(error, ex.id or ex.request_id)


async def _metaservice(ex: Exchange, token: str | None, query: str, pipeline: Pipeline, meta: Metaservices) -> Response:
    assert ex.client is not None
    assert ex.service is not None
    pipeline.catalog.client(ex.client, token)
    provider = ex.service.provider
    if ex.service.code == "getOpenAPI":
        codes = parse_qs(query).get("serviceCode", [])
        document = await meta.openapi(provider, ex.client, codes[0] if len(codes) == 1 else None)
        ex.status_code = 200
        ex.response_size = len(document)
        return Response(document, media_type="application/json")
    listing = await meta.rest_listing(provider, ex.client if ex.service.code == "allowedMethods" else None)
    content = json.dumps(listing).encode()
    ex.status_code = 200
    ex.response_size = len(content)
    return Response(content, media_type="application/json", headers={"X-Road-Id": ex.id})
