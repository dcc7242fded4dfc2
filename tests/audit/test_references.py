"""``references``: the aggregate ids an event names, found in the JSON msgspec writes of
its fields, are those a walk of its values in Python finds (``_collect``, which remains
for values msgspec cannot write) — for every event of a shop where every context has
worked, and for the cases at the edges."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from ordertrail.application.system import Ordertrail
from ordertrail.projections.audit_index import _ENVELOPE, _collect, references
from tests.audit.history_support import Shop
from tests.support.clock import FakeClock


def walked(event: Any) -> frozenset[UUID]:
    found: set[UUID] = set()
    for name, value in vars(event).items():
        if name not in _ENVELOPE:
            _collect(value, found, depth=0)
    found.discard(event.originator_id)
    return frozenset(found)


def test_every_event_of_a_busy_shop(ot: Ordertrail, shop: Shop, clock: FakeClock) -> None:
    events = [
        app.mapper.to_domain_event(note)
        for app in ot.applications
        for note in app.recorder.select_notifications(start=None, limit=100_000)
    ]
    assert len(events) > 100
    with_references = 0
    for event in events:
        assert references(event) == walked(event), type(event).__qualname__
        with_references += bool(references(event))
    assert with_references > len(events) // 3


@dataclass(frozen=True)
class Sample:
    originator_id: UUID
    originator_version: int
    meta: dict[str, str]
    named: UUID
    text: str
    nested: tuple[dict[str, Any], ...]
    outcome: bytes
    not_json: bytes
    keyed: dict[UUID, int]
    odd: object


def test_what_is_found_where() -> None:
    own, named, in_text, in_nested, in_outcome, key, in_odd = (uuid4() for _ in range(7))
    hidden = uuid4()
    event = Sample(
        originator_id=own,
        originator_version=3,
        meta={"correlation_id": str(hidden)},  # the envelope: not a reference
        named=named,
        text=f"see {str(in_text).upper()} and {own}",
        nested=({"deep": [{"id": str(in_nested)}]},),
        outcome=msgspec.json.encode({"order": {"id": str(in_outcome)}}),
        not_json=str(hidden).encode() + b"\xff{",
        keyed={key: 1},
        odd=MappingProxyType({"id": in_odd}),  # msgspec cannot write it: the walk does
    )
    expected = {named, in_text, in_nested, in_outcome, key, in_odd}
    assert references(event) == expected
    assert walked(event) == expected


@pytest.mark.parametrize("value", [None, True, 7, 2.5, "", b"", (), {}])
def test_plain_values_name_nothing(value: object) -> None:
    event = Sample(uuid4(), 1, {}, uuid4(), "", (), b"{}", b"", {}, value)
    assert references(event) == {event.named}
