"""The X-Road message protocol for REST (r1): `{METHOD} /r1/{serviceId}[/path][?query]`.

The service id's parts are percent-decoded one by one and checked; the rest of the path goes to the
provider still encoded, after dot-segments are refused (no climbing out of the service's base path).
Provider answers, errors included, pass through unchanged; the gateway's own refusals carry
`X-Road-Error` and a JSON body `{type, message, detail}`.

Two entry points: `handle` for local clients (token, then a local service or a peer gateway) and
`handle_peer` for peer gateways on the mutual-TLS listener (certificate, signature, replay, then a
local service, with a signed answer).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

import policies
from connectors import ServiceRequest, ServiceResponse
from gateway import errors, soap
from gateway.bodies import check_headers, read_body
from gateway.catalog import TOKEN_HEADER, LocalService
from gateway.errors import GatewayError
from gateway.exchange import Exchange, check_purpose, header_value, now_ms
from gateway.federation import resolve_peer
from gateway.identifiers import ClientId, IdentifierError, ServiceId
from gateway.metaservices import REST_METASERVICES
from gateway.requesthash import rest_request_hash
from gateway.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, request_payload, response_payload
from gateway.subjects import SubjectFinder
from gateway.tls import peer_certificate
from gateway.trust import check_answer

if TYPE_CHECKING:
    from gateway.node import Node

PREFIX = "/r1/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
        "date",  # each hop dates its own answer
        "content-length",
        "expect",
        TOKEN_HEADER,
        SIGNATURE_HEADER.lower(),
        TIMESTAMP_HEADER.lower(),
    }
)
# Set by gateways only: a client's own values are not passed on (the provider would take them for the gateway's).
GATEWAY_HEADERS = frozenset({"x-road-request-id", "x-road-request-hash", "x-road-service", "x-road-error"})
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


@dataclass(frozen=True)
class RestCall:
    service_path: str  # still percent-encoded
    query: str  # raw
    target: str  # raw path and query, as the request line had them
    token: str | None


def error_response(error: GatewayError, exchange_id: str) -> Response:
    body = {"type": error.code, "message": error.message, "detail": exchange_id}
    return Response(
        json.dumps(body),
        status_code=error.status,
        media_type="application/json; charset=utf-8",
        headers={"X-Road-Error": error.code},
    )


async def validation_error(request: Request, exc: Exception) -> Response:
    """A request that does not fit the operation, as an X-Road error naming where, never the value given."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))[:100]}: {str(e.get('msg', 'invalid'))[:200]}"
        for e in exc.errors()[:10]
    ]
    return error_response(GatewayError(errors.INVALID_REQUEST, "invalid request: " + "; ".join(problems)), "")


async def http_error(request: Request, exc: Exception) -> Response:
    """The HTTP layer's refusals (a body that does not parse, no such route, a method not taken) as X-Road errors."""
    assert isinstance(exc, HTTPException)
    kinds = {400: errors.BAD_REQUEST, 404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED}
    kind = kinds.get(exc.status_code, errors.BAD_REQUEST if exc.status_code < 500 else errors.INTERNAL_ERROR)
    messages = {404: "there is no such route on this gateway", 405: "the route does not take this method"}
    response = error_response(GatewayError(kind, messages.get(exc.status_code) or str(exc.detail)[:200]), "")
    response.headers.update(exc.headers or {})
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    """Whatever escaped: an X-Road internal error that says nothing of the request (the traceback is logged);
    a SOAP Fault on the SOAP endpoint."""
    error = GatewayError(errors.INTERNAL_ERROR, "internal error")
    if request.method == "POST" and request.url.path == "/":
        return soap.fault(error, "")
    return error_response(error, "")


#: The r1 routes in the OpenAPI document: the path below /r1/, and answers that are the provider's own.
OPENAPI_TARGET: dict[str, Any] = {
    "parameters": [
        {
            "name": "target",
            "in": "path",
            "required": True,
            "description": "INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/path], each part percent-encoded on its own",
            "schema": {"type": "string"},
        }
    ]
}
OPENAPI_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "the gateway's refusal (an X-Road error with X-Road-Error), or the provider's own answer",
        "headers": errors.ERROR_HEADER_DOC,
    },
    "5XX": {
        "description": "the gateway's failure (an X-Road error with X-Road-Error), or the provider's own answer",
        "headers": errors.ERROR_HEADER_DOC,
    },
    "default": {"description": "the provider's answer, passed through unchanged"},
}


def split_target(raw_path: bytes) -> tuple[ServiceId, str]:
    """The service id and the remaining (still encoded) path of an r1 request."""
    try:
        path = raw_path.decode("ascii", "strict")
    except UnicodeDecodeError:
        raise GatewayError(errors.BAD_REQUEST, "the request path must be ASCII (percent-encode the rest)") from None
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
    if any(_unsafe_segment(segment) for segment in rest):
        raise GatewayError(
            errors.BAD_REQUEST,
            "the service path must not contain '.', '..' or '\\' segments (also encoded) or control characters",
        )
    return service, ("/" + "/".join(rest)) if rest else ""


def _unsafe_segment(segment: str) -> bool:
    """A segment that climbs out of the service's base path somewhere down the line, or smuggles a control character.

    Decoded up to three times (a proxy or framework behind the provider may decode again), a segment must not be
    `.` or `..`, also before a `;parameter` (`..;/`, which some servers read as `..`), nor hold a backslash (a
    separator to some servers) or a control character (`%00` ends a path in C, `%0D%0A` starts a header line).
    """
    text = segment
    for _ in range(3):
        if text.split(";", 1)[0] in (".", "..") or "\\" in text or _CONTROL.search(text):
            return True
        decoded = unquote(text)
        if decoded == text:
            return False
        text = decoded
    return text.split(";", 1)[0] in (".", "..") or "\\" in text or _CONTROL.search(text) is not None


def parse(request: Request, ex: Exchange) -> RestCall:
    """The X-Road parts of a REST request, each checked, into the exchange."""
    check_headers(request)
    headers = request.headers
    for name in (*XROAD_REQUEST_HEADERS, TOKEN_HEADER):
        # Read once here, forwarded from a dict later: a second value would be the one the provider sees.
        if len(headers.getlist(name)) > 1:
            raise GatewayError(errors.INVALID_HEADER, f"the {_header_name(name)} header is given more than once")
    ex.id = header_value(headers.get("x-road-id"), "X-Road-Id") or ex.request_id
    raw_path: bytes = request.scope["raw_path"]
    ex.service, service_path = split_target(raw_path)
    client_text = header_value(headers.get("x-road-client"), "X-Road-Client", required=True) or ""
    try:
        ex.client = ClientId.parse(client_text)
    except IdentifierError as exc:
        raise GatewayError(errors.INVALID_CLIENT_ID, f"invalid X-Road-Client: {exc}") from None
    ex.user_id = header_value(headers.get("x-road-userid"), "X-Road-UserId")
    ex.issue = header_value(headers.get("x-road-issue"), "X-Road-Issue")
    ex.represented_party = header_value(headers.get("x-road-represented-party"), "X-Road-Represented-Party")
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = raw_path.decode("ascii") + (f"?{query}" if query else "")
    return RestCall(service_path, query, target, headers.get(TOKEN_HEADER))


def _header_name(name: str) -> str:
    """A header's name as the documentation spells it."""
    if name == "x-road-userid":
        return "X-Road-UserId"
    return "-".join(p.upper() if p == "pdu" else p.capitalize() for p in name.split("-"))


def parse_purpose(request: Request, ex: Exchange) -> None:
    headers = request.headers
    ex.purpose = check_purpose(headers.get("x-road-pdu-purpose"), "X-Road-PDU-Purpose")
    ex.legal_basis = header_value(headers.get("x-road-pdu-legal-basis"), "X-Road-PDU-Legal-Basis")
    ex.consent_reference = header_value(headers.get("x-road-pdu-consent-reference"), "X-Road-PDU-Consent-Reference")


def xroad_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: headers[k] for k in XROAD_REQUEST_HEADERS if k in headers}


def forwardable(request: Request, ex: Exchange) -> dict[str, str]:
    out = {k: v for k, v in request.headers.items() if k not in FILTERED and k not in GATEWAY_HEADERS}
    out["x-road-id"] = ex.id
    return out


async def handle(request: Request, node: Node) -> Response:
    """A local client's REST exchange: a service hosted here, or one hosted by a peer gateway."""
    ex = Exchange(protocol="REST", method=request.method)
    pipeline = node.pipeline
    try:
        async with pipeline.recorded(ex):
            call = parse(request, ex)
            assert ex.service is not None
            if ex.service.code in REST_METASERVICES and not call.service_path:
                pipeline.authenticate(ex, call.token, peer_certificate(request.scope))
                body_json: dict[str, Any] = {}
                if ex.service.code == "findUsage":
                    raw = await read_body(request, 4096)
                    try:
                        parsed = json.loads(raw or b"{}")
                    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
                        raise GatewayError(errors.BAD_REQUEST, "findUsage takes a JSON body") from None
                    body_json = parsed if isinstance(parsed, dict) else {}
                return await _metaservice(ex, call.query, node, body_json)
            parse_purpose(request, ex)
            pipeline.authenticate(ex, call.token, peer_certificate(request.scope))
            if not pipeline.hosts(ex):
                return await _forward(request, ex, call, node)
            service = pipeline.service(ex, "rest")
            body = await read_body(request, node.settings.server.max_body_bytes)
            ex.received(body)
            headers = forwardable(request, ex)
            request_hash = rest_request_hash(request.method, call.target, xroad_headers(headers), body)
            answer = await _provide(ex, call, service, headers, body, node)
            pipeline.commit(ex, answer.status, answer.content, body)
            return _respond(ex, answer, request_hash, {})
    except GatewayError as error:
        return error_response(error, ex.id or ex.request_id)
    except Exception:  # already recorded as an internal error by the pipeline
        return error_response(errors.unexpected(ex.id or ex.request_id), ex.id or ex.request_id)


async def handle_peer(request: Request, node: Node) -> Response:
    """A peer gateway's REST exchange: its certificate, signature and freshness, then a local service."""
    ex = Exchange(protocol="REST", method=request.method)
    federation = node.federation
    assert federation is not None
    try:
        async with node.pipeline.recorded(ex):
            call = parse(request, ex)
            parse_purpose(request, ex)
            assert ex.client is not None
            member = str(ex.client.member)
            directory = federation.directory.current(errors.OUTDATED_GLOBAL_CONF)
            await federation.verifier.authenticate(peer_certificate(request.scope), member, directory)
            body = await read_body(request, node.settings.server.max_body_bytes)
            ex.received(body)
            headers = forwardable(request, ex)
            request_hash = rest_request_hash(request.method, call.target, xroad_headers(headers), body)
            federation.accept_signed(request.headers, request_hash, member, ex.id, directory)
            service = node.pipeline.service(ex, "rest")
            answer = await _provide(ex, call, service, headers, body, node)
            signed_at = now_ms()
            content_type = answer.headers.get("content-type", "")
            signature = federation.signer.sign(
                response_payload(request_hash, answer.status, content_type, answer.content, signed_at)
            )
            ex.request_signature = request.headers.get(SIGNATURE_HEADER)
            ex.response_signature = signature
            node.pipeline.commit(ex, answer.status, answer.content, body)
            return _respond(ex, answer, request_hash, {TIMESTAMP_HEADER: str(signed_at), SIGNATURE_HEADER: signature})
    except GatewayError as error:
        return error_response(error, ex.id or ex.request_id)
    except Exception:  # already recorded as an internal error by the pipeline
        return error_response(errors.unexpected(ex.id or ex.request_id), ex.id or ex.request_id)


async def _provide(
    ex: Exchange, call: RestCall, service: LocalService, headers: dict[str, str], body: bytes, node: Node
) -> ServiceResponse:
    """Decide by the agreements (and consent), call the agency system, cut the answer to the agreed fields."""
    assert ex.service is not None
    decision = node.enforcement.decide(ex, service, ex.method, call.service_path or "/")
    subjects = _subjects(service.subjects, call, body)
    node.mark_subjects(ex, subjects)
    named: list[str | None] = [*subjects] or [None]
    for subject in named:  # a batch needs every subject's consent (where consent is the basis)
        node.enforcement.check_consent(ex, decision, subject)
    ex.path_template = node.meta.path_template(service, ex.method or "GET", call.service_path or "/")
    headers = dict(headers)
    headers["x-road-request-id"] = ex.request_id
    headers["x-road-service"] = str(ex.service)
    answer = await node.pipeline.call(
        ex,
        service,
        ServiceRequest(
            operation=service.operation,
            method=ex.method or "GET",
            path=call.service_path,
            query=call.query,
            headers=headers,
            body=body or None,
            timeout=node.pipeline.provider_timeout,
            passthrough=True,
        ),
    )
    return minimised(answer, decision.fields if decision else None)


def _subjects(finder: SubjectFinder, call: RestCall, body: bytes) -> list[str]:
    """Whose data the request is about. A JSON body nested past the stack cannot be read for it, and an exchange
    whose subject the log cannot name is refused (a provider with a deeper parser might read it after all)."""
    try:
        return finder.rest_all(call.service_path, call.query, body)
    except RecursionError:
        raise GatewayError(errors.BAD_REQUEST, "the JSON body is nested too deeply to be read") from None


def minimised(answer: ServiceResponse, fields: Sequence[str] | None) -> ServiceResponse:
    """The answer with only the fields the agreement grants; errors pass unchanged (they are the provider's)."""
    if fields is None or not 200 <= answer.status < 300:
        return answer
    media = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (media == "application/json" or media.endswith("+json")):
        raise GatewayError(errors.INVALID_RESPONSE, "the answer is not JSON, so it cannot be cut to the agreed fields")
    try:
        data = json.loads(answer.content)
        content = json.dumps(policies.minimise_json(data, fields), ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack goes
        raise GatewayError(errors.INVALID_RESPONSE, "the provider's JSON answer does not parse") from None
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
    return dataclasses.replace(answer, content=content, headers=headers, data=None)


def _respond(ex: Exchange, answer: ServiceResponse, request_hash: str, extra: dict[str, str]) -> Response:
    out = {k: v for k, v in answer.headers.items() if k.lower() not in FILTERED and not k.lower().startswith("x-road-")}
    out.update(
        {
            "X-Road-Client": str(ex.client),
            "X-Road-Service": str(ex.service),
            "X-Road-Id": ex.id,
            "X-Road-Request-Id": ex.request_id,
            "X-Road-Request-Hash": request_hash,
            **extra,
        }
    )
    return Response(answer.content, status_code=answer.status, headers=out)


async def _forward(request: Request, ex: Exchange, call: RestCall, node: Node) -> Response:
    """Send the exchange to the provider's gateway, signed, and check its signed answer."""
    federation, directory, peer = resolve_peer(ex, node.federation, "rest")
    assert ex.service is not None
    provider = ex.service.provider
    body = await read_body(request, node.settings.server.max_body_bytes)
    ex.received(body)
    finder = peer.finder(provider.subsystem or "", ex.service.code)
    node.mark_subjects(ex, _subjects(finder, call, body) if finder else [])
    headers = forwardable(request, ex)
    request_hash = rest_request_hash(request.method, call.target, xroad_headers(headers), body)
    signed_at = now_ms()
    headers[TIMESTAMP_HEADER] = str(signed_at)
    headers[SIGNATURE_HEADER] = federation.signer.sign(request_payload(request_hash, signed_at))
    ex.request_out_ts = now_ms()
    answer = await federation.send(peer, request.method, call.target, headers, body)
    ex.response_in_ts = now_ms()
    ex.status_code = answer.status_code
    ex.response_size = len(answer.content)
    out = {k: v for k, v in answer.headers.items() if k.lower() not in FILTERED}
    ex.request_signature = headers[SIGNATURE_HEADER]
    if "x-road-error" in answer.headers:  # the provider's gateway refused: its code reaches the client
        ex.remote_fault = answer.headers["x-road-error"]
        node.pipeline.commit(ex, answer.status_code, answer.content, body)
        return Response(answer.content, status_code=answer.status_code, headers=out)
    if answer.headers.get("x-road-request-hash") != request_hash:
        raise GatewayError(errors.INVALID_SIGNATURE_CLIENT, "the provider's answer is for another request")
    check_answer(answer, request_hash, str(provider.member), directory)
    ex.response_signature = answer.headers.get(SIGNATURE_HEADER)
    node.pipeline.commit(ex, answer.status_code, answer.content, body)
    return Response(answer.content, status_code=answer.status_code, headers=out)


async def _find_usage(ex: Exchange, body: dict[str, Any], node: Node) -> Response:
    """Who used a person's data held by this subsystem (Estonia's Data Tracker pattern), newest first."""
    assert ex.client is not None
    assert ex.service is not None
    if str(ex.client) not in node.settings.usage_clients:
        raise GatewayError(errors.ACCESS_DENIED, f"no_agreement: client {ex.client} may not ask findUsage")
    subject = body.get("subject_id")
    offset, limit = body.get("offset", 0), body.get("limit", 20)
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 64:
        raise GatewayError(errors.BAD_REQUEST, "findUsage needs subject_id (1 to 64 characters)")
    if not isinstance(offset, int) or not isinstance(limit, int) or offset < 0 or not 1 <= limit <= 100:
        raise GatewayError(errors.BAD_REQUEST, "offset must be >= 0 and limit between 1 and 100")
    provider = str(ex.service.provider) + "/"
    rows = node.log.search(subject_hash=node.subject_hash(subject), limit=10_000)
    used = [
        r
        for _, r in reversed(rows)
        if r.side == "Producer" and r.outcome == "ok" and (r.service or "").startswith(provider)
    ]
    usage = [
        {
            "logtime": r.request_in_ts,
            "action": f"{r.service} ({r.method or 'SOAP'})",
            "receiver": r.client,
            "purpose": r.purpose,
            "lawful_basis": r.lawful_basis,
        }
        for r in used[offset : offset + limit]
    ]
    ex.status_code = 200
    return Response(json.dumps({"usage": usage, "total": len(used)}), media_type="application/json")


async def _metaservice(ex: Exchange, query: str, node: Node, body_json: dict[str, Any]) -> Response:
    assert ex.client is not None
    assert ex.service is not None
    meta = node.meta
    provider = ex.service.provider
    if ex.service.code == "findUsage":
        return await _find_usage(ex, body_json, node)
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
