"""Field minimisation: cut an answer down to the paths an agreement lists before it leaves the provider.

A path (`person.surname`) selects that node and everything under it; lists are transparent (the path
applies to each item); `*` matches any one key. Anything not on an allowed path is removed, including a
value found where the path expected an object: when in doubt, the data stays home.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from lxml import etree

XSI = "http://www.w3.org/2001/XMLSchema-instance"


class _Node:
    """One level of the allowed paths: `whole` keeps everything below; otherwise only `children` (by key)."""

    __slots__ = ("children", "whole")

    def __init__(self) -> None:
        self.whole = False
        self.children: dict[str, _Node] = {}

    def child(self, key: str) -> _Node | None:
        """The allowed subtree under `key`: the exact key and `*` united."""
        exact = self.children.get(key)
        star = self.children.get("*")
        if exact is None or star is None or exact is star:
            return exact or star
        return _merge(exact, star)


def _merge(a: _Node, b: _Node) -> _Node:
    merged = _Node()
    merged.whole = a.whole or b.whole
    if not merged.whole:
        for key in a.children.keys() | b.children.keys():
            left, right = a.children.get(key), b.children.get(key)
            merged.children[key] = _merge(left, right) if left and right else (left or right)  # type: ignore[assignment]
    return merged


@lru_cache(maxsize=256)
def _tree(fields: tuple[str, ...]) -> _Node | None:
    """The allowed paths as a tree (`None` = the whole answer); cached, since agreements repeat their lists."""
    root = _Node()
    for path in fields:
        if path.strip() == "*":
            return None
        node = root
        for segment in path.split("."):
            if node.whole:
                break
            node = node.children.setdefault(segment, _Node())
        node.whole = True
        node.children.clear()
    return root


def minimise_json(data: Any, fields: Sequence[str] | None) -> Any:
    """A new object holding only the allowed paths of `data` (a deep copy of all of it when `fields` is None)."""
    tree = None if fields is None else _tree(tuple(fields))
    if tree is None:
        return copy.deepcopy(data)
    kept = _keep_json(data, tree)
    if kept is _DROP:
        return [] if isinstance(data, list) else {}
    return kept


_DROP = object()


def _keep_json(value: Any, node: _Node) -> Any:
    if node.whole:
        return copy.deepcopy(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            below = node.child(str(key))
            if below is not None:
                kept = _keep_json(item, below)
                if kept is not _DROP:
                    out[key] = kept
        return out
    if isinstance(value, list | tuple):
        items = [_keep_json(item, node) for item in value]
        return [item for item in items if item is not _DROP]
    return _DROP  # a plain value where the path goes deeper: not allowed


def minimise_xml(element: etree._Element, fields: Sequence[str] | None) -> None:
    """Remove, in place, the child elements of the answer's root that are on no allowed path.

    Elements match by local name (namespaces ignored); repeated elements are a list. On an element that is
    kept only partly, its own text and attributes (except xsi:*) go too: they are data the path did not name.
    """
    tree = None if fields is None else _tree(tuple(fields))
    if tree is None:
        return
    _keep_xml(element, tree, root=True)


def _keep_xml(element: etree._Element, node: _Node, *, root: bool = False) -> bool:
    """Prune `element` to `node`; False when the element itself must go (a leaf where the path goes deeper)."""
    if node.whole:
        return True
    children = list(element)
    if not root and not any(isinstance(c.tag, str) for c in children):
        return False  # like a plain JSON value: the agreed path asks for something beneath it
    if element.text and element.text.strip():
        element.text = None
    if not root:
        for name in list(element.attrib):
            if not str(name).startswith(f"{{{XSI}}}"):
                del element.attrib[name]
    for child in children:
        if isinstance(child, etree._Comment | etree._ProcessingInstruction) or not isinstance(child.tag, str):
            element.remove(child)  # comments, processing instructions and entities carry no agreed field
            continue
        below = node.child(etree.QName(child).localname)
        if below is None or not _keep_xml(child, below):
            element.remove(child)  # lxml takes the child's tail text with it
        elif child.tail and child.tail.strip():
            child.tail = None  # mixed content of a partly kept element: data the path did not name
    return True
