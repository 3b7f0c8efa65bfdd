"""The `kiungo` command: one typer app whose sub-command groups come from the packages.

Groups are found through the `kiungo.commands` entry-point group, so this module imports none of the
packages it must not depend on (the sandbox), and a group that fails to load is named, not hidden.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="kiungo",
    help="Kiungo: an X-Road-style exchange layer and virtual social registry.",
    no_args_is_help=True,
    add_completion=False,
)


def _load_groups() -> None:
    for ep in sorted(entry_points(group="kiungo.commands"), key=lambda e: e.name):
        try:
            group = ep.load()
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            broken = typer.Typer(help=f"(unavailable: {type(exc).__name__}: {exc})")
            app.add_typer(broken, name=ep.name)
            continue
        app.add_typer(group, name=ep.name)


_load_groups()


def main() -> None:
    app()
