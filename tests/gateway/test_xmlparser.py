from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.xmlparser import XmlRejected, parse


def test_well_formed_document():
    root = parse(b'<?xml version="1.0" encoding="utf-8"?><a><b>x</b><!-- gone --></a>')
    assert root.tag == "a"
    assert len(root) == 1  # the comment was dropped


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>", "and entities are not allowed"),
        (b'<!doctype a SYSTEM "http://127.0.0.1:9/x.dtd"><a/>', "not allowed"),
        ("<a/>".encode("utf-16"), "only UTF-8"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>', "only UTF-8"),
        (b"<a><b></a>", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (b"<a>" * 70 + b"</a>" * 70, "nested deeper than 64 levels"),
    ],
)
def test_rejections(data: bytes, message: str):
    with pytest.raises(XmlRejected, match=message):
        parse(data)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_parsed_or_rejected_cleanly(data: bytes):
    with contextlib.suppress(XmlRejected):
        parse(data)
