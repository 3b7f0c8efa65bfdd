"""Server-rendered HTML without a template engine: every value is escaped unless it is already `Html`.

Pages are built from `el()` (one element, escaped children and attributes) and a few shapes the
console repeats (tables, definition lists, form fields, notices). Keeping the escaping in one place
is what keeps a client name or a purpose typed into an agreement from becoming markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

VOID = frozenset({"br", "hr", "img", "input", "link", "meta"})


class Html(str):
    """Markup that is safe to send as it is (built here, with every value escaped)."""

    __slots__ = ()


def e(value: object) -> Html:
    """A value as text in markup: escaped, unless it is already Html; None is empty."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Html:
    return Html(e(sep).join(e(p) for p in parts))


def el(tag: str, /, *children: object, **attrs: object) -> Html:
    """`<name attrs>children</name>`. `class_` is `class`, `aria_label` is `aria-label`; True is a bare
    attribute, None and False leave it out."""
    parts = [tag]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{e(value)}"')
    opening = "<" + " ".join(parts) + ">"
    if tag in VOID:
        return Html(opening)
    return Html(opening + join(children) + f"</{tag}>")


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(value: str | None, keep: int = 12) -> Html:
    """A long hash shortened for the screen, the whole value in a tooltip and for copying."""
    if not value:
        return e("-")
    if len(value) <= keep + 1:
        return el("code", value)
    return el("code", value[:keep] + "…", title=value)


def table(
    headers: Sequence[object], rows: Iterable[Sequence[object]], *, caption: object = None, class_: str | None = None
) -> Html:
    """A data table with column headers (`scope=col`) and an optional caption; an empty body says so."""
    head = el("thead", el("tr", *(el("th", h, scope="col") for h in headers)))
    body_rows = [el("tr", *(el("td", cell) for cell in row)) for row in rows]
    if not body_rows:
        body_rows = [el("tr", el("td", "Nothing to show.", colspan=str(len(headers)), class_="empty"))]
    return el(
        "div",
        el(
            "table", el("caption", caption) if caption is not None else "", head, el("tbody", *body_rows), class_=class_
        ),
        class_="table-wrap",
    )


def dl(items: Iterable[tuple[object, object]]) -> Html:
    """A definition list: term, value."""
    return el("dl", *(Html(el("dt", k) + el("dd", v)) for k, v in items))


def notice(kind: str, *children: object, role: str | None = None) -> Html:
    """A boxed message: kind is ok, error, warn or info; `role=status|alert` announces it."""
    return el("div", *children, class_=f"notice notice-{kind}", role=role)


@dataclass(frozen=True)
class Option:
    value: str
    label: str


def field(
    name: str,
    label: str,
    *,
    kind: str = "text",
    value: str = "",
    hint: str | None = None,
    required: bool = False,
    options: Sequence[Option] | None = None,
    autocomplete: str | None = None,
    inputmode: str | None = None,
    list_id: str | None = None,
    placeholder: str | None = None,
    multiline: bool = False,
) -> Html:
    """One labelled form field (input, select or textarea) with an optional hint tied by aria-describedby."""
    ident = f"f-{name}"
    hint_id = f"{ident}-hint" if hint else None
    common: dict[str, object] = {
        "id": ident,
        "name": name,
        "required": required,
        "aria_describedby": hint_id,
    }
    if options is not None:
        control = el(
            "select",
            *(el("option", o.label, value=o.value, selected=o.value == value) for o in options),
            **common,
        )
    elif multiline:
        control = el("textarea", value, rows="3", **common)
    else:
        control = el(
            "input",
            type=kind,
            value=value,
            autocomplete=autocomplete,
            inputmode=inputmode,
            list=list_id,
            placeholder=placeholder,
            **common,
        )
    return el(
        "div",
        el("label", label, for_=ident),
        el("p", hint, id=hint_id, class_="hint") if hint else "",
        control,
        class_="field",
    )


def datalist(ident: str, values: Iterable[str]) -> Html:
    return el("datalist", *(el("option", value=v) for v in values), id=ident)


def hidden(name: str, value: str) -> Html:
    return el("input", type="hidden", name=name, value=value)


def button(text: str, *, busy: str | None = None, kind: str = "primary", name: str | None = None) -> Html:
    return el("button", text, type="submit", class_=f"button button-{kind}", data_busy=busy, name=name)


def form(action: str, csrf: str | None, *children: object, **attrs: object) -> Html:
    """A form (POST unless `method` says otherwise); POST forms carry the session's CSRF token."""
    method = str(attrs.pop("method", "post"))
    token = hidden("csrf", csrf) if method == "post" and csrf is not None else ""
    return el("form", token, *children, action=action, method=method, **attrs)
