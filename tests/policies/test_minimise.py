"""Field minimisation of JSON and XML answers: only agreed paths leave the provider."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from policies import minimise_json, minimise_xml

ANSWER: dict[str, Any] = {
    "found": True,
    "person": {
        "surname": "Banda",
        "givenName": "Grace",
        "nationalId": "1234567890",
        "address": {"village": "Chilomoni", "district": "Blantyre"},
    },
    "households": [
        {"id": "H1", "members": [{"name": "A", "income": 10}, {"name": "B", "income": 20}]},
        {"id": "H2", "members": []},
    ],
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["found"], {"found": True}),
        (["person.surname"], {"person": {"surname": "Banda"}}),
        (
            ["person.address"],
            {"person": {"address": {"village": "Chilomoni", "district": "Blantyre"}}},
        ),
        (["person.address.district", "found"], {"found": True, "person": {"address": {"district": "Blantyre"}}}),
        (
            ["households.members.name"],
            {"households": [{"members": [{"name": "A"}, {"name": "B"}]}, {"members": []}]},
        ),
        (["households.id"], {"households": [{"id": "H1"}, {"id": "H2"}]}),
        (
            ["person.*"],
            {"person": ANSWER["person"]},
        ),
        (
            ["*.surname", "*.id"],
            {"person": {"surname": "Banda"}, "households": [{"id": "H1"}, {"id": "H2"}]},
        ),
        (
            ["person.*.district", "person.surname"],
            {"person": {"surname": "Banda", "address": {"district": "Blantyre"}}},
        ),
        (["person", "person.surname"], {"person": ANSWER["person"]}),
        (["found.deeper"], {}),  # a plain value where the path goes deeper is not released
        (["nothing.here"], {}),
    ],
)
def test_minimise_json(fields: list[str], expected: dict[str, Any]) -> None:
    result = minimise_json(ANSWER, fields)
    assert result == expected
    assert ANSWER["person"]["nationalId"] == "1234567890"  # the input is untouched


def test_minimise_json_whole_answer_is_a_copy() -> None:
    for fields in (None, ["*"]):
        copied = minimise_json(ANSWER, fields)
        assert copied == ANSWER
        assert copied is not ANSWER
        copied["person"]["surname"] = "changed"
        assert ANSWER["person"]["surname"] == "Banda"
    released = minimise_json(ANSWER, ["person"])
    released["person"]["surname"] = "changed"
    assert ANSWER["person"]["surname"] == "Banda"


def test_minimise_json_top_level_list_and_scalars() -> None:
    assert minimise_json([{"a": 1, "b": 2}, {"a": 3}], ["a"]) == [{"a": 1}, {"a": 3}]
    assert minimise_json([1, 2], ["a"]) == []
    assert minimise_json("secret", ["a"]) == {}
    assert minimise_json({"tags": ["x", "y"], "n": 1}, ["tags"]) == {"tags": ["x", "y"]}
    assert minimise_json({"tags": ["x", {"k": 1, "v": 2}]}, ["tags.k"]) == {"tags": [{"k": 1}]}
    assert minimise_json({}, []) == {}


NS = "http://kiungo.example/civreg"
XML = f"""\
<cr:GetPersonByNationalIdResponse xmlns:cr="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1">
  <cr:found>true</cr:found>
  <cr:person id="P-9">
    <cr:surname>Banda</cr:surname>
    <cr:givenName>Grace</cr:givenName>
    <cr:nationalId>1234567890</cr:nationalId>
    <cr:deathDate xsi:nil="true"/>
    <other:note xmlns:other="urn:other">private note</other:note>
    <!-- internal remark -->
  </cr:person>
  <cr:household>
    <cr:member><cr:name>A</cr:name><cr:income>10</cr:income></cr:member>
    <cr:member><cr:name>B</cr:name><cr:income>20</cr:income></cr:member>
  </cr:household>
</cr:GetPersonByNationalIdResponse>
"""


def _parse() -> etree._Element:
    return etree.fromstring(XML.encode())


def _paths(element: etree._Element) -> list[str]:
    paths = []
    for node in element.iter():
        if node is element or not isinstance(node.tag, str):
            continue
        chain = [etree.QName(node).localname]
        parent = node.getparent()
        while parent is not None and parent is not element:
            chain.append(etree.QName(parent).localname)
            parent = parent.getparent()
        paths.append(".".join(reversed(chain)))
    return paths


def test_minimise_xml_keeps_agreed_paths_ignoring_namespaces() -> None:
    root = _parse()
    minimise_xml(root, ["found", "person.surname", "person.deathDate", "person.note"])
    assert _paths(root) == ["found", "person", "person.surname", "person.deathDate", "person.note"]
    person = root.find(f"{{{NS}}}person")
    assert person is not None
    assert person.get("id") is None  # an attribute on a partly kept element is data nobody agreed to
    assert root.get("version") == "1"  # the root's own attributes stay
    death = person.find(f"{{{NS}}}deathDate")
    assert death is not None
    assert death.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"
    assert b"internal remark" not in etree.tostring(root)
    assert b"1234567890" not in etree.tostring(root)


def test_minimise_xml_lists_and_wildcards() -> None:
    root = _parse()
    minimise_xml(root, ["household.member.name"])
    member = ["household.member", "household.member.name"]
    assert _paths(root) == ["household", *member, *member]
    assert [e.text for e in root.iter(f"{{{NS}}}name")] == ["A", "B"]

    root = _parse()
    minimise_xml(root, ["*.surname", "*.member.income"])
    assert _paths(root) == [
        "person",
        "person.surname",
        "household",
        "household.member",
        "household.member.income",
        "household.member",
        "household.member.income",
    ]


def test_minimise_xml_whole_subtree_and_whole_answer() -> None:
    root = _parse()
    minimise_xml(root, ["person"])
    person = root.find(f"{{{NS}}}person")
    assert person is not None
    assert person.get("id") == "P-9"
    assert b"private note" in etree.tostring(root)
    assert b"internal remark" in etree.tostring(root)
    assert root.find(f"{{{NS}}}found") is None

    for fields in (None, ["*"]):
        root = _parse()
        before = etree.tostring(root)
        minimise_xml(root, fields)
        assert etree.tostring(root) == before


def test_minimise_xml_drops_text_where_the_path_goes_deeper() -> None:
    root = etree.fromstring(b"<r><a>secret<b>kept</b>tail secret</a></r>")
    minimise_xml(root, ["a.b"])
    assert etree.tostring(root) == b"<r><a><b>kept</b></a></r>"
    root = etree.fromstring(b"<r><a>x</a>tail secret<b>1</b></r>")
    minimise_xml(root, ["b"])
    assert etree.tostring(root) == b"<r><b>1</b></r>"
    root = etree.fromstring(b"<r><a>secret</a><c>x<d>1</d></c></r>")
    minimise_xml(root, ["a.b", "c.e"])
    assert etree.tostring(root) == b"<r><c/></r>"  # like JSON: a leaf where the path goes deeper is not released
