"""Charts as inline SVG drawn on the server: no script library, readable by screen readers, printable.

Each chart is a `figure` with a caption, an SVG with `role=img`, a title and a description stating
the largest values, and the numbers themselves in a table under a disclosure, so nothing is only
visible as a shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.console.html import Html, e, el, table

WIDTH = 720
ROW = 24
LABEL = 260


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _describe(rows: Sequence[tuple[str, int]], unit: str) -> str:
    if not rows:
        return f"No {unit} in this period."
    top = sorted((r for r in rows if r[1]), key=lambda r: -r[1])[:3]
    return f"{sum(n for _, n in rows)} {unit} in all; most: " + "; ".join(f"{label}: {n}" for label, n in top) + "."


def bars(ident: str, caption: str, rows: Sequence[tuple[str, int]], *, unit: str, bad: bool = False) -> Html:
    """Horizontal bars, one per label, longest first as given."""
    height = max(1, len(rows)) * ROW + 10
    peak = max((n for _, n in rows), default=0) or 1
    span = WIDTH - LABEL - 60
    shapes: list[Html] = []
    for i, (label, n) in enumerate(rows):
        y = 5 + i * ROW
        width = max(1.0, span * n / peak) if n else 0.0
        shown = label if len(label) <= 38 else label[:36] + "…"
        shapes.append(
            el(
                "g",
                el("title", f"{label}: {n}"),
                el("text", shown, x=str(LABEL - 8), y=str(y + 16), text_anchor="end"),
                el(
                    "rect",
                    x=str(LABEL),
                    y=str(y + 3),
                    width=_num(width),
                    height=str(ROW - 6),
                    class_="bar-bad" if bad else "bar",
                ),
                el("text", str(n), x=_num(LABEL + width + 6), y=str(y + 16)),
            )
        )
    if not rows:
        shapes.append(el("text", "No data in this period.", x=str(LABEL), y="20"))
    shapes.append(el("line", x1=str(LABEL), y1="2", x2=str(LABEL), y2=str(height - 2), class_="axis"))
    return _figure(ident, caption, shapes, height, _describe(rows, unit), rows, unit)


def columns(ident: str, caption: str, rows: Sequence[tuple[str, int]], *, unit: str) -> Html:
    """Vertical columns over time (days), labels under every few columns."""
    height = 220
    base = height - 40
    peak = max((n for _, n in rows), default=0) or 1
    left = 50
    step = (WIDTH - left - 10) / max(1, len(rows))
    every = max(1, len(rows) // 8)
    shapes: list[Html] = [
        el("line", x1=str(left), y1=str(base), x2=str(WIDTH - 5), y2=str(base), class_="axis"),
        el("text", str(peak), x=str(left - 6), y="18", text_anchor="end"),
        el("text", "0", x=str(left - 6), y=str(base), text_anchor="end"),
    ]
    for i, (label, n) in enumerate(rows):
        h = (base - 15) * n / peak
        x = left + i * step + step * 0.15
        shapes.append(
            el(
                "g",
                el("title", f"{label}: {n}"),
                el("rect", x=_num(x), y=_num(base - h), width=_num(step * 0.7), height=_num(h), class_="bar"),
            )
        )
        if i % every == 0:
            shapes.append(el("text", label[5:], x=_num(x + step * 0.35), y=str(base + 16), text_anchor="middle"))
    if not rows:
        shapes.append(el("text", "No data in this period.", x=str(left + 10), y=str(base - 10)))
    return _figure(ident, caption, shapes, height, _describe(rows, unit), rows, unit)


def _figure(
    ident: str,
    caption: str,
    shapes: Sequence[Html],
    height: int,
    description: str,
    rows: Sequence[tuple[str, int]],
    unit: str,
) -> Html:
    svg = Html(
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'aria-labelledby="{e(ident)}-t {e(ident)}-d" xmlns="http://www.w3.org/2000/svg">'
        + el("title", caption, id=f"{ident}-t")
        + el("desc", description, id=f"{ident}-d")
        + "".join(shapes)
        + "</svg>"
    )
    numbers = el(
        "details",
        el("summary", f"The numbers: {caption.lower()}"),
        table(["", unit], [(label, n) for label, n in rows]),
    )
    return el("figure", el("figcaption", caption, id=ident), svg, el("p", description, class_="muted"), numbers)
