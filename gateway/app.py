"""The node's HTTP application: X-Road REST and SOAP, metaservices, health, metrics and the operator API."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from lxml import etree
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

import certs
from consent import ConsentError, ConsentNotFound, ConsentRecord, ConsentStore
from gateway import errors, rest, soap, tls
from gateway.console import PREFIX, Console, ConsoleError, create_console
from gateway.errors import ConfigError, GatewayError
from gateway.events import DeliveryNotFound, EventsError, EventService
from gateway.exchangelog import LogError, SignedTreeHead
from gateway.identifiers import ClientId, IdentifierError, ServiceId
from gateway.node import Node
from gateway.server import Listener, bind
from gateway.settings import NodeSettings

REST_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_SOAP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/xml": {"schema": {"type": "string", "description": "SOAP 1.1 envelope with X-Road headers"}}},
    }
}

PageLimit = Annotated[int, Query(ge=1, le=1000)]
MAX_INT = 2**63 - 1  # what the databases hold: a larger number is refused, not a crash
PageOffset = Annotated[int, Query(ge=0, le=MAX_INT)]


def create_app(settings: NodeSettings) -> FastAPI:
    node = Node(settings)
    console = _console(settings, node)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node.start()
        yield
        await node.aclose()
        if console is not None:
            console.close()

    app = FastAPI(
        title=f"Kiungo gateway: {settings.name}",
        version="1",
        description=(
            "An X-Road-style gateway node. Clients call services with the X-Road message protocol for REST "
            "(`/r1/{serviceId}[/path]`) or for SOAP (POST `/`), presenting their access token in "
            "`X-Kiungo-Client-Token` and the purpose of the exchange in `X-Road-PDU-Purpose` (REST) or "
            "`pdu:purpose` (SOAP). Gateway errors carry `X-Road-Error`."
        ),
        lifespan=lifespan,
        responses=errors.openapi_responses(),
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.node = node
    app.state.console = console
    if console is not None and not console.own_listener:
        app.mount(PREFIX, console.app)  # the web console, on the client listener (docs/console.md)
    node.loopback.app = app
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, rest.validation_error)
    app.add_exception_handler(HTTPException, rest.http_error)
    app.add_exception_handler(Exception, rest.internal_error)
    operator = [Depends(operator_guard(settings.operator.token_sha256))]

    async def rest_exchange(request: Request) -> Response:
        return await rest.handle(request, node)

    for method in REST_METHODS:
        app.add_api_route(
            "/r1/{target:path}",
            rest_exchange,
            methods=[method],
            name=f"rest_{method.lower()}",
            operation_id=f"rest_{method.lower()}",
            summary=f"X-Road REST exchange ({method})",
            tags=["exchange"],
            responses=rest.OPENAPI_RESPONSES,
            openapi_extra=rest.OPENAPI_TARGET,
        )

    @app.post(
        "/",
        tags=["exchange"],
        summary="X-Road SOAP exchange",
        openapi_extra=_SOAP_BODY,
        response_class=Response,
        responses=soap.OPENAPI_RESPONSES,
    )
    async def soap_exchange(request: Request) -> Response:
        return await soap.handle(request, node)

    @app.get("/listClients", tags=["metaservices"], summary="Members and subsystems known to this node")
    async def list_clients(request: Request) -> Response:
        listing = node.meta.list_clients()
        if "xml" in request.headers.get("accept", ""):
            root = etree.Element(f"{{{soap.XROAD}}}clientList", nsmap={"xroad": soap.XROAD, "id": soap.IDENT})
            for cid, name in listing:
                member = etree.SubElement(root, f"{{{soap.XROAD}}}member")
                etree.SubElement(member, f"{{{soap.XROAD}}}name").text = name
                member.append(soap.identifier_element(f"{{{soap.XROAD}}}id", cid))
            return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), media_type="text/xml")
        members = [{"id": _json_id(cid), "name": name} for cid, name in listing]
        return JSONResponse({"member": members})

    @app.get(
        "/wsdl",
        tags=["metaservices"],
        summary="getWsdl: the WSDL of a SOAP service, pointing at this node",
        response_class=Response,
        responses={200: {"description": "the WSDL", "content": {"text/xml": {"schema": {"type": "string"}}}}},
    )
    async def get_wsdl(
        request: Request,
        xRoadInstance: str,
        memberClass: str,
        memberCode: str,
        subsystemCode: str,
        serviceCode: str,
        version: str | None = None,
    ) -> Response:
        text = "/".join(
            [xRoadInstance, memberClass, memberCode, subsystemCode, serviceCode] + ([version] if version else [])
        )
        try:
            sid = ServiceId.parse(text)
            document = await node.meta.wsdl(sid, str(request.base_url))
        except IdentifierError as exc:
            return rest.error_response(GatewayError(errors.INVALID_SERVICE_ID, str(exc)), "")
        except GatewayError as exc:
            return rest.error_response(exc, "")
        return Response(document, media_type="text/xml; charset=utf-8")

    @app.get("/health", tags=["operations"], summary="Liveness and what the node hosts")
    async def health() -> dict[str, Any]:
        return _health(node)

    @app.post(
        "/api/operator/directory/refresh",
        tags=["operations"],
        summary="Fetch the federation directory now",
        dependencies=operator,
        responses={502: {"description": "the directory could not be fetched or verified: its status, as on 200"}},
    )
    async def refresh_directory() -> Response:
        if node.federation is None:
            raise GatewayError(errors.BAD_REQUEST, "this node is not in a federation")
        ok = await node.federation.directory.refresh()
        return JSONResponse({"refreshed": ok, **node.federation.directory.status()}, status_code=200 if ok else 502)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(node.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    _consent_routes(app, node, operator)
    _log_routes(app, node, operator)
    _events_routes(app, node, operator)

    @app.get(
        "/api/operator/monitoring", tags=["operations"], summary="Operational monitoring records", dependencies=operator
    )
    def monitoring(
        since: Annotated[int | None, Query(ge=0, le=MAX_INT, description="from this time, ms since the epoch")] = None,
        until: Annotated[int | None, Query(ge=0, le=MAX_INT, description="before this time, ms")] = None,
        client: Annotated[str | None, Query(description="client subsystem id")] = None,
        service: Annotated[str | None, Query(description="service id")] = None,
        after_seq: Annotated[int, Query(ge=0, le=MAX_INT, description="page: records after this seq")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        records = node.monitor.query(
            since=since, until=until, client=client, service=service, after_seq=after_seq, limit=limit
        )
        return JSONResponse({"records": records})

    return app


class ConsentGrant(BaseModel):
    """A data subject's consent, as recorded by the controller's staff (GovStack: consent record)."""

    subject_id: str = Field(
        min_length=1, max_length=64, description="the data subject's identifier (hashed on arrival)"
    )
    recipients: list[str] = Field(min_length=1, description="client subsystems (or members) that may receive the data")
    purposes: list[str] = Field(min_length=1)
    data_categories: list[str] = Field(min_length=1)
    valid_until: dt.datetime
    valid_from: dt.datetime | None = None
    privacy_notice: str = ""
    language: str = "en"


class SubjectQuery(BaseModel):
    subject_id: str = Field(min_length=1, max_length=64)


def _consent_routes(app: FastAPI, node: Node, operator: list[Any]) -> None:
    """Grant, withdraw and list consents; identifiers travel in bodies, never in URLs (which get logged)."""
    tags: list[str | Enum] = ["consent"]

    def registry() -> ConsentStore:
        if node.consent is None:
            raise GatewayError(errors.UNKNOWN_SERVICE, "this node keeps no consent registry")
        return node.consent

    consent_store = Depends(registry)  # resolved when the route is called, not at import

    def failure(exc: ConsentError) -> GatewayError:
        kind = errors.UNKNOWN_SERVICE if isinstance(exc, ConsentNotFound) else errors.BAD_REQUEST
        return GatewayError(kind, str(exc))

    def view(record: ConsentRecord) -> dict[str, Any]:
        return {**record.as_json(), "state": record.state()}

    @app.post(
        "/api/consent/records",
        tags=tags,
        summary="Record a consent; answers the record and a signed receipt",
        dependencies=operator,
        status_code=201,
    )
    def grant(body: ConsentGrant, store: ConsentStore = consent_store) -> Response:
        try:
            record = store.grant(
                subject_id=body.subject_id,
                controller=node.enforcement.controller or "",
                recipients=body.recipients,
                purposes=body.purposes,
                data_categories=body.data_categories,
                valid_until=body.valid_until,
                valid_from=body.valid_from,
                privacy_notice=body.privacy_notice,
                language=body.language,
                actor="operator",
            )
        except ConsentError as exc:
            raise failure(exc) from None
        receipt = node.receipts.receipt(record) if node.receipts else None
        return JSONResponse({"record": view(record), "receipt": receipt}, status_code=201)

    @app.post(
        "/api/consent/records/search",
        tags=tags,
        summary="A data subject's consent records, newest first",
        dependencies=operator,
    )
    def search(body: SubjectQuery, store: ConsentStore = consent_store) -> Response:
        return JSONResponse({"records": [view(r) for r in store.list_by_subject(body.subject_id)]})

    @app.get("/api/consent/records/{record_id}", tags=tags, summary="One consent record", dependencies=operator)
    def get(record_id: str, store: ConsentStore = consent_store) -> Response:
        try:
            return JSONResponse(view(store.get(record_id)))
        except ConsentError as exc:
            raise failure(exc) from None

    @app.post(
        "/api/consent/records/{record_id}/withdraw",
        tags=tags,
        summary="Withdraw a consent, from now on",
        dependencies=operator,
    )
    def withdraw(record_id: str, store: ConsentStore = consent_store) -> Response:
        try:
            return JSONResponse(view(store.withdraw(record_id, actor="operator")))
        except ConsentError as exc:
            raise failure(exc) from None

    @app.get("/api/consent/receipt-key", tags=tags, summary="The public key that verifies consent receipts offline")
    def receipt_key() -> Response:
        if node.receipts is None:
            raise GatewayError(errors.UNKNOWN_SERVICE, "this node signs no consent receipts")
        return Response(node.receipts.public_key_pem(), media_type="application/x-pem-file")


class LogQuery(BaseModel):
    subject_id: str | None = Field(None, max_length=64, description="hashed at query time; never stored")
    client: str | None = None
    service: str | None = None
    purpose: str | None = None
    decision: str | None = None
    issue: str | None = Field(None, max_length=255, description="X-Road-Issue, e.g. a registry query's exchange id")
    since_ms: int | None = Field(None, ge=0, le=MAX_INT)
    until_ms: int | None = Field(None, ge=0, le=MAX_INT)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_INT)


def _log_routes(app: FastAPI, node: Node, operator: list[Any]) -> None:
    """The exchange log for operators and DPOs: tree heads, proofs, verification, search."""
    tags: list[str | Enum] = ["exchange log"]
    log = node.log

    def head_json(sth: SignedTreeHead) -> dict[str, Any]:
        return {
            "node": sth.node,
            "size": sth.size,
            "root": sth.root,
            "timestamp": sth.timestamp,
            "jws": sth.jws,
            "tsa_token": base64.b64encode(sth.tsa_token).decode() if sth.tsa_token else None,
            "tsa_error": sth.tsa_error,
        }

    @app.get(
        "/api/log/tree-heads",
        tags=tags,
        summary="Signed tree heads, oldest first, and the current head",
        dependencies=operator,
    )
    def tree_heads() -> Response:
        head = log.tree_head()
        current = {"size": head.size, "root": head.root, "timestamp": head.timestamp}
        return JSONResponse({"current": current, "signed": [head_json(h) for h in log.signed_tree_heads()]})

    @app.post(
        "/api/log/tree-heads",
        tags=tags,
        summary="Sign (and time-stamp) the tree head now",
        dependencies=operator,
        status_code=201,
    )
    def sign_now() -> Response:
        try:
            return JSONResponse(head_json(log.sign_tree_head()), status_code=201)
        except LogError as exc:
            raise GatewayError(errors.INTERNAL_ERROR, str(exc)) from None

    @app.get(
        "/api/log/proofs/inclusion", tags=tags, summary="RFC 9162 inclusion proof of one record", dependencies=operator
    )
    def inclusion(index: int, size: int | None = None) -> Response:
        try:
            proof = log.inclusion_proof(index, size)
        except (LogError, ValueError, IndexError) as exc:
            raise GatewayError(errors.BAD_REQUEST, str(exc)) from None
        leaf = log.leaf_hash_at(index)
        return JSONResponse({"index": index, "size": size or log.size(), "leaf_hash": leaf, "proof": proof})

    @app.get(
        "/api/log/proofs/consistency",
        tags=tags,
        summary="RFC 9162 consistency proof between two sizes",
        dependencies=operator,
    )
    def consistency(old: int, new: int | None = None) -> Response:
        try:
            proof = log.consistency_proof(old, new)
        except (LogError, ValueError, IndexError) as exc:
            raise GatewayError(errors.BAD_REQUEST, str(exc)) from None
        return JSONResponse({"old": old, "new": new or log.size(), "proof": proof})

    @app.post(
        "/api/log/verify",
        tags=tags,
        summary="Verify the whole log now; the first problem, if any",
        dependencies=operator,
    )
    def verify() -> Response:
        report = log.verify()
        return JSONResponse(dataclasses.asdict(report))

    @app.post(
        "/api/log/records/search",
        tags=tags,
        summary="Search the log; a subject id is hashed at query time",
        dependencies=operator,
    )
    def search(body: LogQuery) -> Response:
        rows = log.search(
            subject_hash=node.subject_hash(body.subject_id) if body.subject_id else None,
            client=body.client,
            service=body.service,
            purpose=body.purpose,
            decision=body.decision,
            issue=body.issue,
            since_ms=body.since_ms,
            until_ms=body.until_ms,
            limit=body.limit,
            offset=body.offset,
        )
        return JSONResponse({"records": [{"index": i, **r.to_dict()} for i, r in rows]})


def _events_routes(app: FastAPI, node: Node, operator: list[Any]) -> None:
    """The event service's subscriptions and dead letters, for the operator (404 where it is not hosted)."""
    tags: list[str | Enum] = ["events"]

    def hosted() -> EventService:
        if node.events is None:
            raise GatewayError(errors.UNKNOWN_SERVICE, "this node hosts no event service")
        return node.events

    service = Depends(hosted)

    @app.get("/api/operator/events/subscriptions", tags=tags, summary="Every subscription", dependencies=operator)
    def subscriptions(events: EventService = service, limit: PageLimit = 100, offset: PageOffset = 0) -> Response:
        return JSONResponse({"subscriptions": events.subscriptions(limit=limit, offset=offset)})

    @app.get("/api/operator/events/dead-letters", tags=tags, summary="Deliveries given up on", dependencies=operator)
    def dead_letters(events: EventService = service, limit: PageLimit = 100, offset: PageOffset = 0) -> Response:
        return JSONResponse({"dead_letters": [d.as_dict() for d in events.dead_letters(limit=limit, offset=offset)]})

    @app.post(
        "/api/operator/events/dead-letters/replay",
        tags=tags,
        summary="Send every dead letter again",
        dependencies=operator,
    )
    def replay_all(events: EventService = service) -> Response:
        return JSONResponse({"replayed": events.replay_all()})

    @app.post(
        "/api/operator/events/dead-letters/{delivery_id}/replay",
        tags=tags,
        summary="Send one dead letter again (its attempts start anew)",
        dependencies=operator,
    )
    def replay(delivery_id: str, events: EventService = service) -> Response:
        try:
            return JSONResponse(events.replay(delivery_id).as_dict())
        except EventsError as exc:
            kind = errors.UNKNOWN_SERVICE if isinstance(exc, DeliveryNotFound) else errors.INTERNAL_ERROR
            raise GatewayError(kind, str(exc)) from None


def create_peer_app(node: Node) -> Starlette:
    """The mutual-TLS listener for peer gateways: X-Road REST and SOAP from other members' gateways only."""

    async def rest_exchange(request: Request) -> Response:
        return await rest.handle_peer(request, node)

    async def soap_exchange(request: Request) -> Response:
        return await soap.handle_peer(request, node)

    async def health(request: Request) -> Response:
        return JSONResponse(_health(node))

    return Starlette(
        routes=[
            Route("/r1/{target:path}", rest_exchange, methods=list(REST_METHODS)),
            Route("/", soap_exchange, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def listeners(
    settings: NodeSettings,
    *,
    client_sock: socket.socket | None = None,
    peer_sock: socket.socket | None = None,
    admin_sock: socket.socket | None = None,
) -> dict[str, Listener]:
    """The node's listeners: local clients on plain HTTP, (in a federation) peers on mutual TLS, and the
    console on its own listener when `console.port` is set (with the client listener's TLS, if any)."""
    app = create_app(settings)
    node: Node = app.state.node
    server = settings.server
    context = None
    if server.tls_cert is not None and server.tls_key is not None:
        passphrase_file = server.passphrase_file or (
            settings.federation.passphrase_file if settings.federation else None
        )
        try:
            passphrase = certs.passphrase_from(file=passphrase_file)
            context = tls.server_context(
                server.tls_cert,
                server.tls_key,
                passphrase,
                client_cas=node.catalog.client_certificates(),
                require_client_cert=False,
            )
        except (certs.CertsError, OSError, ssl.SSLError) as exc:
            raise ConfigError(f"server.tls_cert/tls_key: {exc}") from None
    out = {"gateway": Listener(app, client_sock or bind(server.host, server.port), context)}
    if node.federation is not None:
        fed = node.federation.settings
        sock = peer_sock or bind(fed.host, fed.port)
        out["peers"] = Listener(create_peer_app(node), sock, node.federation.server_ssl)
    console: Console | None = app.state.console
    if console is not None and settings.console is not None and settings.console.port is not None:
        admin = admin_sock or bind(settings.console.host, settings.console.port)
        out["admin"] = Listener(console.admin_app(), admin, context)
    return out


def _console(settings: NodeSettings, node: Node) -> Console | None:
    """The web console when `[console]` is set; a problem with it is a configuration error of the node."""
    if settings.console is None:
        return None
    try:
        return create_console(settings, node)
    except ConsoleError as exc:
        raise ConfigError(f"console: {exc}") from None


def _health(node: Node) -> dict[str, Any]:
    settings = node.settings
    out: dict[str, Any] = {
        "status": "ok",
        "instance": settings.instance,
        "name": settings.name,
        "subsystems": len(node.catalog.subsystems),
        "services": sum(len(s.services) for s in node.catalog.subsystems.values()),
    }
    out["shared_state"] = node.state.health()
    if out["shared_state"] == "unreachable":
        out["status"] = "degraded"
    # the log's own view, from its last write: no probe here, a health check must not add writes or waits
    failing = not node.log.available() or node.log.last_failure is not None
    out["log"] = {"status": "failing" if failing else "ok", "last_tsa_error": node.log.last_tsa_error}
    if failing:
        out["status"] = "degraded"
    if node.federation is not None:
        out["member"] = node.federation.member
        out["directory"] = node.federation.directory.status()
        if out["directory"]["expired"]:
            out["status"] = "degraded"
    return out


def _json_id(cid: ClientId) -> dict[str, str]:
    out = {
        "object_type": cid.object_type,
        "xroad_instance": cid.instance,
        "member_class": cid.member_class,
        "member_code": cid.member_code,
    }
    if cid.subsystem is not None:
        out["subsystem_code"] = cid.subsystem
    return out


def operator_guard(token_sha256: str | None) -> Callable[[Request], None]:
    """A route dependency: the operator's bearer token, or the refusal (rendered by `_gateway_error`)."""

    def require(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not (
            token_sha256 is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), token_sha256)
        ):
            raise GatewayError(
                errors.OPERATOR_AUTHENTICATION, "the operator API needs `Authorization: Bearer <operator token>`"
            )

    return require


async def _gateway_error(request: Request, exc: Exception) -> Response:
    """The gateway's own refusals on its HTTP API, in the X-Road error form."""
    assert isinstance(exc, GatewayError)
    response = rest.error_response(exc, "")
    if exc.kind == errors.OPERATOR_AUTHENTICATION:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response
