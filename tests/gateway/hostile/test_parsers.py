"""Properties of the parsers at the gateway's edge: identifiers, service paths, XML documents and SOAP envelopes.

`tests/gateway/test_identifiers.py` and `test_xmlparser.py` show that valid client ids round-trip and that
no input makes the parsers fail any other way; these state what an accepted input *is*, and that each way
of being wrong is refused with its own code, whatever the rest of the input looks like.
"""

from __future__ import annotations

import contextlib
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from starlette.requests import Request

from gateway import errors
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.identifiers import MAX_PART, ClientId, IdentifierError, ServiceId
from gateway.rest import split_target
from gateway.soap import IDENT, PDU, SOAP11, SOAP12, XROAD, identifier_element, read_envelope, read_message
from gateway.xmlparser import XmlRejected, parse
from tests.conftest import RUN_SLOW

#: Pure functions, so many examples are cheap; CI (the slow run) takes ten times as many.
SETTINGS = settings(max_examples=600 if RUN_SLOW else 60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALLOWED = string.ascii_letters + string.digits + "'()+,-.="  # X-Road's set, less `?` (a query in a URL)
PART_RE = re.compile(r"[A-Za-z0-9'()+,\-.=?]{1,255}")

parts = st.text(alphabet=ALLOWED + "?", min_size=1, max_size=24).filter(lambda p: p not in (".", ".."))
url_parts = st.text(alphabet=ALLOWED, min_size=1, max_size=24).filter(lambda p: p not in (".", ".."))
clients = st.builds(ClientId, parts, parts, parts, st.none() | parts)
services = st.builds(ServiceId, st.builds(ClientId, parts, parts, parts, parts), parts, st.none() | parts)
forbidden = st.characters(exclude_characters=ALLOWED + "?/%").filter(lambda c: c.strip() == c or c in "\r\n\t")


# --- identifiers ------------------------------------------------------------------------------------------


@SETTINGS
@given(services)
def test_services_round_trip(sid: ServiceId):
    assert ServiceId.parse(str(sid)) == sid
    assert ServiceId.from_parts(str(sid).split("/")) == sid


@SETTINGS
@given(clients)
def test_each_part_may_be_percent_encoded_once(cid: ClientId):
    encoded = "/".join(quote(p, safe="") for p in str(cid).split("/"))
    assert ClientId.parse(encoded) == cid


@SETTINGS
@given(clients)
def test_double_encoding_is_never_decoded_twice(cid: ClientId):
    """One identifier, one spelling: what a second decoding would turn into `cid` is refused, or stays itself."""
    twice = "/".join(quote(quote(p, safe=""), safe="") for p in str(cid).split("/"))
    if twice == str(cid):  # nothing in it needed encoding
        return
    with pytest.raises(IdentifierError, match="may contain only letters, digits"):
        ClientId.parse(twice)


@SETTINGS
@given(st.text(max_size=300))
def test_whatever_is_accepted_is_clean(text: str):
    try:
        cid = ClientId.parse(text)
    except IdentifierError:
        return
    values = [cid.instance, cid.member_class, cid.member_code] + ([cid.subsystem] if cid.subsystem else [])
    assert all(PART_RE.fullmatch(v) and v not in (".", "..") for v in values)
    assert str(cid).count("/") == len(values) - 1


@SETTINGS
@given(clients, st.data())
def test_one_foreign_character_anywhere_is_refused(cid: ClientId, data: st.DataObject):
    pieces = str(cid).split("/")
    index = data.draw(st.integers(0, len(pieces) - 1))
    position = data.draw(st.integers(0, len(pieces[index])))
    char = data.draw(forbidden)
    outer = (index, position) in ((0, 0), (len(pieces) - 1, len(pieces[index])))
    pieces[index] = pieces[index][:position] + char + pieces[index][position:]
    with pytest.raises(IdentifierError):
        ClientId.from_parts(pieces)  # SOAP: the parts as written, never decoded
    if outer and char == "\t":  # white space around a whole header value is not part of it
        assert ClientId.parse("/".join(pieces)) == cid
        return
    with pytest.raises(IdentifierError):
        ClientId.parse("/".join(pieces))


@SETTINGS
@given(clients, st.integers(0, 3))
def test_overlong_parts_are_refused(cid: ClientId, index: int):
    pieces = str(cid).split("/")
    index = min(index, len(pieces) - 1)
    pieces[index] = pieces[index] + "A" * (MAX_PART + 1 - len(pieces[index]))
    with pytest.raises(IdentifierError, match=r"longer than 255 characters|identifier is too long"):
        ClientId.parse("/".join(pieces))


# --- the service path of a REST request --------------------------------------------------------------------

segments = st.text(alphabet=string.ascii_letters + string.digits + "-_~!$&'()*+,;=:@%", min_size=1, max_size=12)
plain_segments = segments.filter(lambda s: "%" not in s and s.split(";")[0] not in (".", ".."))


def _encode_dot(data: st.DataObject, levels: int) -> str:
    """`.` as itself or as `%2e`/`%2E`, encoded `levels` more times (`%` as `%25`)."""
    dot = data.draw(st.sampled_from([".", "%2e", "%2E"]))
    for _ in range(levels):
        dot = dot.replace("%", "%25")
    return dot


@SETTINGS
@given(
    st.builds(ServiceId, st.builds(ClientId, url_parts, url_parts, url_parts, url_parts), url_parts),
    st.lists(plain_segments, max_size=6),
)
def test_a_clean_path_passes_unchanged(sid: ServiceId, rest: list[str]):
    tail = "".join("/" + s for s in rest)
    service, path = split_target(f"/r1/{sid}{tail}".encode())
    assert service == sid
    assert path == tail


@SETTINGS
@given(st.data(), st.integers(0, 2), st.booleans(), st.booleans(), st.lists(plain_segments, max_size=3))
def test_dot_segments_are_refused_however_encoded(
    data: st.DataObject, levels: int, two: bool, parameter: bool, around: list[str]
):
    dots = _encode_dot(data, levels) + (_encode_dot(data, levels) if two else "")
    segment = dots + (";x=1" if parameter else "")
    position = data.draw(st.integers(0, len(around)))
    tail = [*around[:position], segment, *around[position:]]
    with pytest.raises(GatewayError) as refused:
        split_target(("/r1/ZZ/GOV/TAX/taxreg/taxpayers/" + "/".join(tail)).encode())
    assert refused.value.kind == errors.BAD_REQUEST


@SETTINGS
@given(st.sampled_from(["%00", "%0a", "%0D", "%7f", "%5c", "%5C", "%1b"]), st.integers(0, 2), plain_segments)
def test_control_characters_and_backslashes_are_refused(char: str, levels: int, segment: str):
    for _ in range(levels):
        char = char.replace("%", "%25")
    with pytest.raises(GatewayError) as refused:
        split_target(f"/r1/ZZ/GOV/TAX/taxreg/taxpayers/{segment}{char}x".encode())
    assert refused.value.kind == errors.BAD_REQUEST


@SETTINGS
@given(st.binary(max_size=200))
def test_any_request_target_is_split_or_refused(raw: bytes):
    with contextlib.suppress(GatewayError):
        split_target(b"/r1/" + raw)


# --- XML documents -------------------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 120), st.integers(8, 80))
def test_depth_limit_is_exact(depth: int, limit: int):
    document = b"<a>" * depth + b"</a>" * depth
    if depth <= limit:
        assert parse(document, max_depth=limit).tag == "a"
    else:
        with pytest.raises(XmlRejected, match=f"nested deeper than {limit} levels"):
            parse(document, max_depth=limit)


@SETTINGS
@given(st.sampled_from(["DOCTYPE", "ENTITY"]), st.data())
def test_declarations_are_refused_in_any_case_anywhere(word: str, data: st.DataObject):
    spelled = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in word)
    before = data.draw(st.sampled_from(["", '<?xml version="1.0"?>', "<!-- c -->", " \n"]))
    inside = data.draw(st.booleans())
    declaration = f"<!{spelled} x>"
    document = f"<a>{declaration}</a>" if inside else f"{before}{declaration}<a/>"
    with pytest.raises(XmlRejected):
        parse(document.encode())


# --- SOAP envelopes -------------------------------------------------------------------------------------------

printable = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60)
purposes = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,40}", fullmatch=True)
REQUIRED = ("client", "service", "id", "protocolVersion")


def build(
    client: ClientId,
    service: ServiceId,
    message_id: str,
    purpose: str,
    user_id: str | None,
    extra: list[etree._Element],
) -> list[etree._Element]:
    """The header elements of an X-Road SOAP request, made with lxml (so any text is escaped as it must be)."""

    def text(tag: str, value: str) -> etree._Element:
        element = etree.Element(tag)
        element.text = value
        return element

    headers = [
        identifier_element(f"{{{XROAD}}}client", client),
        identifier_element(f"{{{XROAD}}}service", service),
        text(f"{{{XROAD}}}id", message_id),
        text(f"{{{XROAD}}}protocolVersion", "4.0"),
        text(f"{{{PDU}}}purpose", purpose),
    ]
    if user_id is not None:
        headers.append(text(f"{{{XROAD}}}userId", user_id))
    return headers + extra


def envelope_bytes(headers: list[etree._Element], operation: str, declaration: bool = True) -> bytes:
    root = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"s": SOAP11, "xroad": XROAD, "id": IDENT, "pdu": PDU})
    header = etree.SubElement(root, f"{{{SOAP11}}}Header")
    for element in headers:
        header.append(element)
    body = etree.SubElement(root, f"{{{SOAP11}}}Body")
    etree.SubElement(body, f"{{urn:x}}{operation}").text = "9000000001"
    return etree.tostring(root, xml_declaration=declaration, encoding="UTF-8")


def request(content_type: str = "text/xml; charset=utf-8") -> Request:
    return Request(
        {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", content_type.encode())]}
    )


others = st.lists(
    st.builds(lambda n, t: _element(f"{{urn:other}}{n}", t), st.from_regex(r"[a-z]{1,8}", fullmatch=True), printable),
    max_size=3,
)


def _element(tag: str, value: str) -> etree._Element:
    element = etree.Element(tag)
    element.text = value
    return element


operations = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,20}", fullmatch=True)  # a SOAP operation is an XML name too
soap_services = st.builds(ServiceId, st.builds(ClientId, parts, parts, parts, parts), operations, st.none() | parts)


@dataclass
class Case:
    """One generated request: its X-Road values, other headers, the order they come in, a declaration or not."""

    client: ClientId
    service: ServiceId
    message_id: str
    purpose: str
    user_id: str | None
    extra: list[etree._Element]
    order: Random
    declaration: bool

    def headers(self) -> list[etree._Element]:
        headers = build(self.client, self.service, self.message_id, self.purpose, self.user_id, self.extra)
        self.order.shuffle(headers)
        return headers

    def document(self, headers: list[etree._Element] | None = None) -> bytes:
        return envelope_bytes(self.headers() if headers is None else headers, self.service.code, self.declaration)


envelopes = st.builds(
    Case,
    st.builds(ClientId, parts, parts, parts, parts),
    soap_services,
    printable,
    purposes,
    st.none() | printable,
    others,
    st.randoms(use_true_random=False),
    st.booleans(),
)


@SETTINGS
@given(envelopes)
def test_valid_envelopes_read_back_exactly(case: Case):
    ex = Exchange(protocol="SOAP")
    msg = read_message(case.document(), request(), ex, 64)
    assert (ex.client, ex.service, ex.id, ex.protocol_version, ex.user_id) == (
        case.client,
        case.service,
        case.message_id,
        "4.0",
        case.user_id,
    )
    assert msg.headers["purpose"].text == case.purpose
    assert etree.QName(msg.body_element).localname == case.service.code


@SETTINGS
@given(envelopes, st.sampled_from(REQUIRED))
def test_a_missing_required_header_is_named(case: Case, missing: str):
    kept = [h for h in case.headers() if etree.QName(h).localname != missing]
    with pytest.raises(GatewayError) as refused:
        read_message(case.document(kept), request(), Exchange(protocol="SOAP"), 64)
    assert refused.value.kind == errors.MISSING_HEADER
    assert refused.value.message == f"the X-Road header {missing} is required"


@SETTINGS
@given(envelopes, st.data())
def test_any_duplicate_header_is_refused(case: Case, data: st.DataObject):
    headers = case.headers()
    twice = data.draw(st.sampled_from([h for h in headers if etree.QName(h).namespace in (XROAD, PDU)]))
    headers.insert(data.draw(st.integers(0, len(headers))), etree.fromstring(etree.tostring(twice)))
    with pytest.raises(GatewayError) as refused:
        read_envelope(case.document(headers), "text/xml", 64)
    assert refused.value.kind == errors.INVALID_SOAP
    assert refused.value.message == f"duplicate header {etree.QName(twice).localname}"


@SETTINGS
@given(
    envelopes,
    st.sampled_from(
        [
            (SOAP11, SOAP12, "SOAP 1.2 is not supported: send SOAP 1.1"),
            (SOAP11, "urn:soap", "the document is not a SOAP 1.1 Envelope"),
            (XROAD, "urn:xroad", "the X-Road header client is required"),
        ]
    ),
)
def test_namespaces_decide(case: Case, change: tuple[str, str, str]):
    document = case.document().replace(change[0].encode(), change[1].encode())
    with pytest.raises(GatewayError) as refused:
        read_message(document, request(), Exchange(protocol="SOAP"), 64)
    assert refused.value.message == change[2]


MANGLE: list[Callable[[bytes], bytes]] = [
    lambda d: d[: len(d) // 2],  # cut short
    lambda d: d.replace(b"<", b"<!DOCTYPE x [<!ENTITY e 'e'>]><", 1),  # a DTD in front
    lambda d: d.decode().encode("utf-16"),  # another encoding
    lambda d: d + b"<trailing/>",  # a second root
    lambda d: d.replace(b"<", b"<\x00", 1),  # a NUL byte
]


@SETTINGS
@given(envelopes, st.sampled_from(range(len(MANGLE))))
def test_broken_documents_are_invalid_soap(case: Case, which: int):
    with pytest.raises(GatewayError) as refused:
        read_message(MANGLE[which](case.document()), request(), Exchange(protocol="SOAP"), 64)
    assert refused.value.kind == errors.INVALID_SOAP
