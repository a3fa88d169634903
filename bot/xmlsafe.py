"""WeChat's callback XML to a dict, on expat directly: the same dict `xmltodict.parse` makes (whitespace
stripped, `@attr` keys, `#text` beside children or attributes, repeated tags as lists, an empty element as
None), with a few callbacks per element instead of xmltodict's general machinery (namespaces, paths,
post-processors, streaming). The webhook parses every callback once or twice (safe mode), so this is on the
hot path (issue 14's profile: xmltodict was about a tenth of a check-in's CPU).

No DTDs at all: a DOCTYPE, or an entity declaration, stops the parse with ValueError, as xmltodict's
`disable_entities=True` does for entities (the webhook's byte check refuses both before; this holds for any
encoding expat reads). Malformed XML raises expat's ExpatError.
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat


def _refuse(*_: object) -> None:
    raise ValueError("DTDs and entities are refused")


def parse(body: bytes) -> dict[str, Any] | None:
    """`{root: value}` as `xmltodict.parse(body, disable_entities=True)` gives it."""
    stack: list[tuple[dict[str, Any] | None, list[str]]] = []
    item: dict[str, Any] | None = None
    data: list[str] = []

    def start(name: str, attrs: list[str]) -> None:
        nonlocal item, data
        stack.append((item, data))
        item = {"@" + attrs[i]: attrs[i + 1] for i in range(0, len(attrs), 2)} if attrs else None
        data = []

    def end(name: str) -> None:
        nonlocal item, data
        text = "".join(data).strip() or None if data else None
        value: Any = item
        if value is None:
            value = text
        elif text:
            value["#text"] = text
        item, data = stack.pop()
        if item is None:
            item = {}
        if name in item:
            known = item[name]
            if isinstance(known, list):
                known.append(value)
            else:
                item[name] = [known, value]
        else:
            item[name] = value

    parser = expat.ParserCreate()
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    def characters(text: str) -> None:
        data.append(text)

    parser.CharacterDataHandler = characters
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.Parse(body, True)
    return item
