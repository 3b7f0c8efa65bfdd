"""Parsing untrusted XML: no DTD, no entities, no network, bounded size and depth, UTF-8 only.

A document type declaration is refused before parsing, which closes entity expansion ("billion
laughs"), external entities and DTD retrieval at once; SOAP has no use for DTDs.
"""

from __future__ import annotations

import io
import re

from lxml import etree

_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")


class XmlRejected(ValueError):
    """The document is not acceptable; the message says why, without echoing the document."""


def parse(data: bytes, *, max_depth: int = 64) -> etree._Element:
    if data[:4] in _BOMS or data[:2] in _BOMS or b"\x00" in data[:64]:
        raise XmlRejected("only UTF-8 documents are accepted")
    declared = _DECL_ENCODING.match(data)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise XmlRejected("only UTF-8 documents are accepted")
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise XmlRejected("document type declarations (DTDs) and entities are not allowed")
    depth = 0
    root: etree._Element | None = None
    try:
        for event, element in etree.iterparse(
            io.BytesIO(data),
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        ):
            if event == "start":
                depth += 1
                if root is None:
                    root = element
                if depth > max_depth:
                    raise XmlRejected(f"document is nested deeper than {max_depth} levels")
            else:
                depth -= 1
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"not well-formed XML (line {exc.lineno})") from None
    if root is None:
        raise XmlRejected("empty document")
    return root
