"""What every console page shares: the request context, the page and its trail note, the layout, errors.

A page handler receives a `Ctx` (the node, the signed-in user, the submitted form) and returns a
`Page`; it says what the console trail should record about the request in `ctx.note`. Routing,
sign-in, CSRF, role checks and the trail itself live in `app.py`, so no page can forget them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from gateway.console.errors import BadInput, ConsoleError
from gateway.console.html import Html, el, form, hidden, join, notice
from gateway.console.roles import Permission, Role, may
from gateway.console.static import VERSION

if TYPE_CHECKING:
    from gateway.console.app import Console
    from gateway.node import Node

Needs = Literal["vsr", "consent"] | None


@dataclass
class Note:
    """What the console trail records about the request being handled (the page fills it in)."""

    target: str | None = None
    subject_hash: str | None = None
    detail: str | None = None
    outcome: str = "ok"


@dataclass(frozen=True)
class Page:
    title: str
    body: Html
    status: int = 200
    wide: bool = False


@dataclass
class Ctx:
    console: Console
    request: Request
    user: str | None
    role: Role | None
    csrf: str | None
    form: Mapping[str, str] = field(default_factory=dict)
    note: Note = field(default_factory=Note)

    @property
    def node(self) -> Node:
        return self.console.node

    @property
    def root(self) -> str:
        return str(self.request.scope.get("root_path", ""))

    def url(self, path: str = "/") -> str:
        return self.root + path

    def may(self, permission: Permission) -> bool:
        return self.role is not None and may(self.role, permission)

    def query(self, name: str, *, max_len: int = 200) -> str:
        """A query-string value, stripped; too long is refused (and never echoed)."""
        value = self.request.query_params.get(name, "").strip()
        if len(value) > max_len:
            raise BadInput(f"the {name} filter is too long")
        return value

    def value(self, name: str, *, max_len: int = 200, required: bool = False, label: str | None = None) -> str:
        """A submitted form value, stripped; a missing required value or an overlong one is refused."""
        value = self.form.get(name, "").strip()
        if required and not value:
            raise BadInput(f"please fill in {label or name}")
        if len(value) > max_len:
            raise BadInput(f"{label or name} is longer than {max_len} characters")
        return value

    def post(self, path: str, *children: object, **attrs: object) -> Html:
        """A POST form to a console path, carrying this session's CSRF token."""
        return form(self.url(path), self.csrf, *children, **attrs)


Handler = Callable[[Ctx], Page | Response] | Callable[[Ctx], Awaitable[Page | Response]]


@dataclass(frozen=True)
class Action:
    """One console route: who may use it (one permission), what the trail calls it, what the node must host."""

    path: str
    handler: Handler
    permission: Permission
    name: str
    methods: tuple[str, ...] = ("GET",)
    needs: Needs = None
    is_async: bool = False


@dataclass(frozen=True)
class NavItem:
    permission: Permission
    path: str
    label: str
    needs: Needs = None


NAV: tuple[NavItem, ...] = (
    NavItem(Permission.OVERVIEW, "/", "Overview"),
    NavItem(Permission.EXCHANGES, "/exchanges", "Exchanges"),
    NavItem(Permission.INTEGRITY, "/integrity", "Log integrity"),
    NavItem(Permission.SUBJECT_REPORT, "/subjects", "Subject report"),
    NavItem(Permission.CONSENT, "/consent", "Consent", "consent"),
    NavItem(Permission.AGREEMENTS, "/agreements", "Agreements"),
    NavItem(Permission.CHARTS, "/charts", "Charts"),
    NavItem(Permission.PERSON_LOOKUP, "/persons", "Person look-up", "vsr"),
    NavItem(Permission.OVERSIGHT, "/oversight", "Oversight", "vsr"),
    NavItem(Permission.TRAIL, "/trail", "Console trail"),
)


def hosts(node: Node, needs: Needs) -> bool:
    """Whether the node runs what a page needs: the registry, a consent registry."""
    if needs == "vsr":
        return node.vsr is not None
    if needs == "consent":
        return node.consent is not None
    return True


def nav_items(ctx: Ctx) -> list[NavItem]:
    return [item for item in NAV if ctx.may(item.permission) and hosts(ctx.node, item.needs)]


def _nav(ctx: Ctx) -> Html:
    current = str(ctx.request.scope.get("path", ""))
    relative = current[len(ctx.root) :] if current.startswith(ctx.root) else current
    links = []
    for item in nav_items(ctx):
        here = relative == item.path or (item.path != "/" and relative.startswith(item.path + "/"))
        links.append(el("li", el("a", item.label, href=ctx.url(item.path), aria_current="page" if here else None)))
    return el("nav", el("ul", *links), aria_label="Console pages")


def layout(ctx: Ctx, page: Page) -> Html:
    """The whole document: skip link, header with the node and the pages this role may open, main, footer."""
    settings = ctx.node.settings
    member = ctx.node.federation.member if ctx.node.federation is not None else settings.instance
    header_parts: list[object] = [
        el("div", "Kiungo console ", el("span", f"· {settings.name} ({member})"), class_="brand")
    ]
    if ctx.user is not None and ctx.role is not None:
        header_parts.append(_nav(ctx))
        header_parts.append(
            el(
                "div",
                el("span", "Signed in as ", el("strong", ctx.user), f", {ctx.role.label}"),
                ctx.post("/sign-out", el("button", "Sign out", type="submit", class_="button")),
                class_="who",
            )
        )
    title = f"{page.title} · Kiungo console · {settings.name}"
    css = ctx.url(f"/static/console.css?v={VERSION}")
    js = ctx.url(f"/static/console.js?v={VERSION}")
    return Html(
        "<!doctype html>\n"
        + el(
            "html",
            el(
                "head",
                el("meta", charset="utf-8"),
                el("meta", name="viewport", content="width=device-width, initial-scale=1"),
                el("title", title),
                el("link", rel="stylesheet", href=css),
                el("script", src=js, defer=True),
            ),
            el(
                "body",
                el("a", "Skip to main content", href="#main", class_="skip"),
                el("header", *header_parts, class_="top"),
                el("main", el("h1", page.title), page.body, id="main", tabindex="-1"),
                el(
                    "footer",
                    "Kiungo gateway console. Every action on this console is recorded in its trail; "
                    "personal identifiers are kept only as keyed hashes.",
                ),
            ),
            lang="en",
        )
    )


def error_page(exc: ConsoleError, ctx: Ctx | None = None) -> Page:
    """A clear page for a refusal or failure: what happened, and what to do."""
    parts: list[object] = [notice("error", el("p", exc.message), role="alert")]
    if exc.status == 403 and ctx is not None and ctx.role is not None:
        parts.append(
            el(
                "p",
                f"Your role, {ctx.role.label}, does not include this. The pages you may open are in the menu above.",
            )
        )
    if exc.status == 401:
        parts.append(el("p", el("a", "Sign in", href=ctx.url("/sign-in") if ctx else "sign-in")))
    parts.append(el("p", f"Status {exc.status}.", class_="muted"))
    return Page(exc.title, join(parts), status=exc.status)


def outcome_badge(outcome: str | None) -> Html:
    """ok, or the error's last part (AccessDenied) with the whole code as a tooltip."""
    if outcome == "ok":
        return el("span", "ok", class_="badge badge-ok")
    return el("span", (outcome or "-").rsplit(".", 1)[-1], class_="badge badge-bad", title=outcome)


def paging(ctx: Ctx, *, shown: int, limit: int, offset: int, path: str, keep: Mapping[str, str]) -> Html:
    """Newer / older links for GET searches (the filters travel in the query; never a personal identifier)."""
    links: list[object] = []
    base = {k: v for k, v in keep.items() if v}
    if offset > 0:
        links.append(
            el("a", "← Newer", href=ctx.url(path) + "?" + urlencode(base | {"offset": max(0, offset - limit)}))
        )
    if shown == limit:
        links.append(el("a", "Older →", href=ctx.url(path) + "?" + urlencode(base | {"offset": offset + limit})))
    return el("div", *links, class_="pager") if links else Html("")


def keep_hidden(values: Mapping[str, str]) -> Html:
    return Html("".join(hidden(k, v) for k, v in values.items() if v))
