"""The sandbox's agreements are valid against its members and services (one is expired on purpose)."""

from __future__ import annotations

import json
from pathlib import Path

import policies
from sandbox import federation

SERVICES = Path(federation.__file__).with_name("services.json")


def test_sandbox_agreements_pass_the_check_but_for_the_ended_one():
    agreements = policies.load_agreements([federation.AGREEMENTS])
    assert len(agreements) >= 8
    services = json.loads(SERVICES.read_text())
    members = [member for member, _ in federation.MEMBERS.values()]
    problems = policies.check_agreements(agreements, members=members, services=services)
    assert len(problems) == 1, problems
    assert "DSA-SSF-MSP-2024" in problems[0]
    assert "expired" in problems[0]


def test_every_agreement_names_clients_the_sandbox_has():
    clients = {cid for cid, _, _ in federation.CLIENTS}
    for agreement in policies.load_agreements([federation.AGREEMENTS]):
        assert set(agreement.clients) <= clients, agreement.id
