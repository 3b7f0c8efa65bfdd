"""The console's pages, one module per concept; each lists its routes in `ACTIONS`."""

from __future__ import annotations

from gateway.console.pages import (
    agreements,
    charts,
    consent,
    exchanges,
    integrity,
    oversight,
    overview,
    persons,
    subjects,
    trail,
)
from gateway.console.web import Action

ACTIONS: tuple[Action, ...] = (
    *overview.ACTIONS,
    *exchanges.ACTIONS,
    *integrity.ACTIONS,
    *subjects.ACTIONS,
    *consent.ACTIONS,
    *agreements.ACTIONS,
    *charts.ACTIONS,
    *persons.ACTIONS,
    *oversight.ACTIONS,
    *trail.ACTIONS,
)

__all__ = ["ACTIONS"]
