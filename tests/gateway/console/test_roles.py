"""The roles separate functions: the table that decides both the links and the server's answers."""

from __future__ import annotations

from gateway.console import GRANTS, Permission, Role, may
from gateway.console.roles import ACTING, PERSONAL


def test_operators_never_reach_personal_data() -> None:
    assert not GRANTS[Role.OPERATOR] & PERSONAL


def test_auditors_read_and_never_act() -> None:
    assert not GRANTS[Role.AUDITOR] & ACTING
    assert not may(Role.AUDITOR, Permission.SUBJECT_REPORT)
    assert not may(Role.AUDITOR, Permission.SUBJECT_SEARCH)
    assert may(Role.AUDITOR, Permission.EXCHANGES)
    assert may(Role.AUDITOR, Permission.VERIFY)


def test_a_dpo_holds_everything_an_auditor_does_and_answers_people() -> None:
    assert GRANTS[Role.AUDITOR] < GRANTS[Role.DPO]
    extra = GRANTS[Role.DPO] - GRANTS[Role.AUDITOR]
    assert extra == {
        Permission.SUBJECT_SEARCH,
        Permission.SUBJECT_REPORT,
        Permission.CONSENT,
        Permission.PERSON_LOOKUP,
    }
    assert not may(Role.DPO, Permission.DIRECTORY_REFRESH)


def test_every_permission_belongs_to_some_role_and_every_role_sees_the_overview() -> None:
    assert set(Permission) == set().union(*GRANTS.values())
    assert all(may(role, Permission.OVERVIEW) for role in Role)
    assert {r.label for r in Role} == {"data protection officer", "auditor (read-only)", "operator"}
