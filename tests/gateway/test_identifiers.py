from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.identifiers import ClientId, IdentifierError, ServiceId

PART = st.text(alphabet="ABCxyz019'()+,-.=?", min_size=1, max_size=20).filter(lambda p: p not in (".", ".."))


def test_round_trip_and_object_types():
    sub = ClientId.parse("ZZ/GOV/CRA/civreg")
    assert str(sub) == "ZZ/GOV/CRA/civreg"
    assert sub.object_type == "SUBSYSTEM"
    assert sub.member == ClientId("ZZ", "GOV", "CRA")
    assert ClientId.parse("ZZ/GOV/CRA").object_type == "MEMBER"
    svc = ServiceId.parse("ZZ/GOV/CRA/civreg/GetPerson/v1")
    assert (svc.provider, svc.code, svc.version) == (sub, "GetPerson", "v1")
    assert str(svc) == "ZZ/GOV/CRA/civreg/GetPerson/v1"


def test_parts_are_percent_decoded_one_by_one():
    assert ClientId.parse("ZZ/GOV/CRA/civ%2Dreg").subsystem == "civ-reg"
    with pytest.raises(IdentifierError, match="subsystem code may contain only"):
        ClientId.parse("ZZ/GOV/CRA/civ%2Freg")  # an encoded slash stays one part, and is refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected INSTANCE/CLASS/CODE/SUBSYSTEM, got 1 part"),
        ("ZZ/GOV", "got 2 parts"),
        ("ZZ//CRA", "member class is empty"),
        ("ZZ/GOV/CRA/a b", "subsystem code may contain only"),
        ("ZZ/GOV/CRA/..", "subsystem code may contain only"),
        ("ZZ/GOV/CRA/x\r\nSet-Cookie: a", "control characters"),
        ("ZZ/GOV/" + "A" * 256, "member code is longer than 255"),
        ("ZZ/GOV/CRA/a/b/c", "got 6 parts"),
    ],
)
def test_clear_errors(text: str, message: str):
    with pytest.raises(IdentifierError, match=message):
        ClientId.parse(text)


def test_subsystem_can_be_required():
    with pytest.raises(IdentifierError, match="a subsystem is required"):
        ClientId.parse("ZZ/GOV/CRA", require_subsystem=True)


def test_service_errors():
    with pytest.raises(IdentifierError, match="expected INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE"):
        ServiceId.parse("ZZ/GOV/CRA/civreg")
    with pytest.raises(IdentifierError, match="service code may contain only"):
        ServiceId.parse("ZZ/GOV/CRA/civreg/get<person>")


@given(st.lists(PART, min_size=4, max_size=4))
def test_any_valid_client_round_trips(parts: list[str]):
    cid = ClientId.parse("/".join(parts))
    assert ClientId.parse(str(cid)) == cid


@given(st.text(max_size=200))
def test_parsing_never_fails_any_other_way(text: str):
    with contextlib.suppress(IdentifierError):
        ServiceId.parse(text)
