"""The console's web app: sign-in, the role check, CSRF, the trail, then the page.

Every request to a page goes through `_dispatch`: a valid session (else the sign-in page), for a POST
the form's origin and CSRF token, the role's permission for the route (the same table that decides
which links a page shows), the node hosting what the page needs; then the page runs and its trail
row is written before the result is sent (fail closed: no trail row, no result).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import cast
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from gateway.console.audit import UNKNOWN_USER, ConsoleAudit
from gateway.console.auth import Session, Sessions, SignInThrottle, User
from gateway.console.errors import (
    BadInput,
    ConsoleConfigError,
    ConsoleError,
    CsrfRejected,
    Forbidden,
    NotFound,
    NotHosted,
    NotSignedIn,
    SignInFailed,
    TooManyAttempts,
    TrailFailed,
)
from gateway.console.html import el, field, hidden, join, notice
from gateway.console.pages import ACTIONS
from gateway.console.queries import KnownValues
from gateway.console.roles import Role, may
from gateway.console.static import ASSETS
from gateway.console.web import Action, Ctx, Page, error_page, hosts, layout
from gateway.node import Node
from gateway.settings import NodeSettings
from gateway.subjects import node_secret

PREFIX = "/console"
COOKIE = "kiungo_console"
SIGNIN_COOKIE = "kiungo_console_signin"
MAX_FORM = 64 * 1024
MAX_PASSWORD = 1024
_log = logging.getLogger("kiungo.console")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
NOT_HOSTED = {
    "vsr": "this gateway does not host the virtual social registry",
    "consent": "this gateway keeps no consent registry",
}
AsyncHandler = Callable[[Ctx], Awaitable[Page | Response]]
SyncHandler = Callable[[Ctx], Page | Response]


def _outcome(exc: ConsoleError) -> str:
    """The trail's word for a refusal or failure."""
    for kind, word in (
        (Forbidden, "forbidden"),
        (CsrfRejected, "csrf-rejected"),
        (NotHosted, "not-hosted"),
        (NotFound, "not-found"),
        (BadInput, "bad-input"),
        (TooManyAttempts, "throttled"),
        (SignInFailed, "failed"),
    ):
        if isinstance(exc, kind):
            return word
    return "error"


async def _read_form(request: Request) -> dict[str, str]:
    """A urlencoded form of at most 64 KiB (no multipart: the console uploads nothing)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadInput("this form must be sent from the console's page")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise BadInput("the form is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise BadInput("the form could not be read") from None
    return dict(pairs)


def _check_origin(request: Request) -> None:
    """Forms are accepted from this console's own pages only (with the CSRF token, a second line of defence)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise CsrfRejected("forms are accepted from this console's own pages only")
        return
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise CsrfRejected("forms are accepted from this console's own pages only")


def _safe_next(root: str, value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith(root + "/") and len(value) <= 200 and "//" not in value and "\\" not in value:
        return value
    return root + "/"


class Console:
    """One node's console: users and sessions, the trail, and the web app (mounted or on its own listener)."""

    def __init__(self, settings: NodeSettings, node: Node) -> None:
        config = settings.console
        if config is None:
            raise ConsoleConfigError("this node has no [console] settings")
        self.config = config
        self.node = node
        try:
            secret = node_secret(config.secret_file or settings.data_dir / "console.secret")
        except (OSError, ValueError) as exc:
            raise ConsoleConfigError(f"console.secret_file: {exc}") from None
        users = {name: User(name, Role(u.role), u.password_hash, u.name) for name, u in config.users.items()}
        self.sessions = Sessions(
            secret, users, idle_seconds=config.idle_minutes * 60, max_seconds=config.max_hours * 3600
        )
        self.throttle = SignInThrottle(config.signin_failures, config.signin_window_seconds)
        self.audit = ConsoleAudit.open(node.databases["console"])
        self.known = KnownValues(node.log)
        self.app = self._build()

    @property
    def own_listener(self) -> bool:
        """Whether the console has its own listener (`console.port`), else it is mounted at /console."""
        return self.config.port is not None

    def close(self) -> None:
        self.audit.close()

    # -- the apps -------------------------------------------------------------------------------------

    def _build(self) -> Starlette:
        routes: list[Route] = [
            Route("/static/{name}", self._static, methods=["GET"]),
            Route("/sign-in", self._signin_form, methods=["GET"]),
            Route("/sign-in", self._signin, methods=["POST"]),
            Route("/sign-out", self._signout, methods=["POST"]),
        ]
        routes += [Route(a.path, self._endpoint(a), methods=list(a.methods)) for a in ACTIONS]
        return Starlette(
            routes=routes,
            exception_handlers={404: self._not_found, 405: self._not_allowed, Exception: self._crashed},
        )

    def admin_app(self) -> Starlette:
        """The console's own listener: the console at /console, and / leading there."""

        async def home(request: Request) -> Response:
            return RedirectResponse(PREFIX + "/", status_code=307)

        return Starlette(routes=[Route("/", home), Mount(PREFIX, app=self.app)])

    def _endpoint(self, action: Action) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._dispatch(request, action)

        return endpoint

    # -- helpers ----------------------------------------------------------------------------------------

    def _ctx(self, request: Request, session: Session | None) -> Ctx:
        return Ctx(
            console=self,
            request=request,
            user=session.user if session else None,
            role=session.role if session else None,
            csrf=self.sessions.csrf_token(session) if session else None,
        )

    def _secure(self, request: Request) -> bool:
        if self.config.secure_cookies is not None:
            return self.config.secure_cookies
        return request.url.scheme == "https"

    def _cookie(self, response: Response, request: Request, name: str, value: str) -> None:
        root = str(request.scope.get("root_path", "")) or "/"
        response.set_cookie(name, value, httponly=True, samesite="strict", secure=self._secure(request), path=root)

    def _forget(self, response: Response, request: Request, name: str) -> None:
        root = str(request.scope.get("root_path", "")) or "/"
        response.delete_cookie(name, path=root, httponly=True, samesite="strict", secure=self._secure(request))

    @staticmethod
    def _headers(response: Response) -> Response:
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def _render(self, ctx: Ctx, page: Page) -> Response:
        return self._headers(HTMLResponse(layout(ctx, page), status_code=page.status))

    def _record(self, ctx: Ctx, actor: str, role: Role | None, action: str) -> None:
        client = ctx.request.client
        note = ctx.note
        self.audit.record(
            actor=actor,
            role=str(role) if role else None,
            action=action,
            outcome=note.outcome,
            target=note.target,
            subject_hash=note.subject_hash,
            detail=note.detail,
            remote=client.host if client else None,
        )

    # -- pages ------------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request, action: Action) -> Response:
        session = self.sessions.read(request.cookies.get(COOKIE))
        if session is None:
            if request.method in ("GET", "HEAD"):
                target = _safe_next(str(request.scope.get("root_path", "")), request.url.path)
                sign_in = str(request.scope.get("root_path", "")) + "/sign-in"
                return self._headers(RedirectResponse(f"{sign_in}?next={target}", status_code=303))
            ctx = self._ctx(request, None)
            return self._render(ctx, error_page(NotSignedIn("your session has ended: sign in again"), ctx))
        ctx = self._ctx(request, session)
        result: Page | Response
        try:
            if request.method == "POST":
                _check_origin(request)
                ctx.form = await _read_form(request)
                self.sessions.check_csrf(session, ctx.form.get("csrf"))
            if not may(session.role, action.permission):
                raise Forbidden(f"the {session.role.label} role may not use this page or action")
            if not hosts(self.node, action.needs):
                raise NotHosted(NOT_HOSTED.get(str(action.needs), "not on this gateway"))
            if action.is_async:
                result = await cast(AsyncHandler, action.handler)(ctx)
            else:
                result = await run_in_threadpool(cast(SyncHandler, action.handler), ctx)
        except ConsoleError as exc:
            ctx.note.outcome = _outcome(exc)
            ctx.note.detail = exc.message
            result = error_page(exc, ctx)
        except Exception as exc:  # a bug or a store failure: a clear page, and no detail that could be personal
            _log.error("console: %s in %r", type(exc).__name__, action.name)
            ctx.note.outcome = "error"
            ctx.note.detail = type(exc).__name__
            result = error_page(ConsoleError("the console met an unexpected problem; the operator can see it"), ctx)
        try:
            await run_in_threadpool(self._record, ctx, session.user, session.role, action.name)
        except TrailFailed as exc:
            result = error_page(exc, ctx)
        response = self._headers(result) if isinstance(result, Response) else self._render(ctx, result)
        _, cookie = self.sessions.renew(session)
        self._cookie(response, request, COOKIE, cookie)
        return response

    async def _static(self, request: Request) -> Response:
        asset = ASSETS.get(str(request.path_params.get("name", "")))
        if asset is None:
            raise HTTPException(404)
        body, media_type = asset
        response = Response(
            body, media_type=media_type, headers={"Cache-Control": "public, max-age=31536000, immutable"}
        )
        return self._headers(response)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        session = self.sessions.read(request.cookies.get(COOKIE))
        ctx = self._ctx(request, session)
        return self._render(ctx, error_page(NotFound("there is no such page on this console"), ctx))

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        session = self.sessions.read(request.cookies.get(COOKIE))
        ctx = self._ctx(request, session)
        error = BadInput("this page does not take that kind of request")
        error.status = 405
        return self._render(ctx, error_page(error, ctx))

    async def _crashed(self, request: Request, exc: Exception) -> Response:
        _log.error("console: %s", type(exc).__name__)
        ctx = self._ctx(request, None)
        return self._render(ctx, error_page(ConsoleError("the console met an unexpected problem"), ctx))

    # -- signing in and out -----------------------------------------------------------------------------

    def _signin_page(self, ctx: Ctx, nonce: str, next_path: str, problem: ConsoleError | None) -> Page:
        parts: list[object] = []
        if problem is not None:
            parts.append(notice("error", el("p", el("strong", f"{problem.title}: "), problem.message), role="alert"))
        parts.append(
            el(
                "form",
                hidden("csrf", self.sessions.signin_token(nonce)),
                hidden("next", next_path),
                field("username", "User name", required=True, autocomplete="username"),
                field("password", "Password", kind="password", required=True, autocomplete="current-password"),
                el("button", "Sign in", type="submit", class_="button button-primary"),
                method="post",
                action=ctx.url("/sign-in"),
            )
        )
        parts.append(
            el(
                "p",
                "Sign-ins, successful or not, are recorded in the console trail. After "
                f"{self.throttle.failures} failures within {self.throttle.window:g} s sign-in is refused for a while.",
                class_="muted",
            )
        )
        return Page("Sign in", join(parts), status=problem.status if problem else 200)

    async def _signin_form(self, request: Request) -> Response:
        root = str(request.scope.get("root_path", ""))
        if self.sessions.read(request.cookies.get(COOKIE)) is not None:
            return self._headers(RedirectResponse(root + "/", status_code=303))
        nonce = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(16)
        ctx = self._ctx(request, None)
        page = self._signin_page(ctx, nonce, _safe_next(root, request.query_params.get("next")), None)
        response = self._render(ctx, page)
        self._cookie(response, request, SIGNIN_COOKIE, nonce)
        return response

    async def _signin(self, request: Request) -> Response:
        root = str(request.scope.get("root_path", ""))
        ctx = self._ctx(request, None)
        nonce = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(16)
        next_path = root + "/"
        actor = UNKNOWN_USER
        try:
            _check_origin(request)
            form = await _read_form(request)
            next_path = _safe_next(root, form.get("next"))
            self.sessions.check_signin_token(request.cookies.get(SIGNIN_COOKIE), form.get("csrf"))
            name = form.get("username", "").strip().lower()[:64]
            password = form.get("password", "")[:MAX_PASSWORD]
            actor = name if name in self.sessions.users else UNKNOWN_USER  # never a mistyped password as a name
            remote = request.client.host if request.client else "-"
            keys = (f"user:{name}", f"addr:{remote}")
            self.throttle.check(*keys)
            user = await run_in_threadpool(self.sessions.authenticate, name, password)
            if user is None:
                self.throttle.failed(*keys)
                raise SignInFailed("the user name or the password is not right")
            self.throttle.succeeded(keys[0])
            _, cookie = self.sessions.issue(user)
            ctx.note.detail = f"signed in as {user.role}"
            await run_in_threadpool(self._record, ctx, user.name, user.role, "sign-in")
        except ConsoleError as exc:
            ctx.note.outcome = _outcome(exc)
            ctx.note.detail = exc.message
            problem: ConsoleError = exc
            if not isinstance(exc, TrailFailed):
                try:
                    await run_in_threadpool(self._record, ctx, actor, None, "sign-in")
                except TrailFailed as failed:
                    problem = failed
            response = self._render(ctx, self._signin_page(ctx, nonce, next_path, problem))
            self._cookie(response, request, SIGNIN_COOKIE, nonce)
            return response
        response = self._headers(RedirectResponse(next_path, status_code=303))
        self._cookie(response, request, COOKIE, cookie)
        self._forget(response, request, SIGNIN_COOKIE)
        return response

    async def _signout(self, request: Request) -> Response:
        root = str(request.scope.get("root_path", ""))
        session = self.sessions.read(request.cookies.get(COOKIE))
        response: Response = RedirectResponse(root + "/sign-in", status_code=303)
        if session is not None:
            ctx = self._ctx(request, session)
            try:
                _check_origin(request)
                form = await _read_form(request)
                self.sessions.check_csrf(session, form.get("csrf"))
            except ConsoleError as exc:
                return self._render(ctx, error_page(exc, ctx))
            self.sessions.revoke(session)
            try:
                await run_in_threadpool(self._record, ctx, session.user, session.role, "sign-out")
            except TrailFailed as exc:
                response = self._render(ctx, error_page(exc, ctx))
        self._forget(response, request, COOKIE)
        return self._headers(response)


def create_console(settings: NodeSettings, node: Node) -> Console:
    """The node's console from its `[console]` settings; ConsoleError when they are unusable."""
    return Console(settings, node)
