"""Every stored event class names its topic and version explicitly, and every topic
resolves back to its class: moving or renaming a class must not break stored history."""

from __future__ import annotations

import re

import pytest
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import resolve_topic

from ordertrail.application.receipts import CommandReceipt
from ordertrail.domain import AbandonedPlacement, InventoryItem, Order, Product

AGGREGATES = (Product, InventoryItem, Order, AbandonedPlacement, CommandReceipt)


def event_classes() -> list[type]:
    found = []
    for aggregate in AGGREGATES:
        for name, value in vars(aggregate).items():
            if (
                isinstance(value, type)
                and issubclass(value, CanMutateAggregate)
                and name not in ("Event", "Created")
            ):
                found.append(value)
    return found


@pytest.mark.parametrize("event_class", event_classes(), ids=lambda c: c.__qualname__)
def test_each_event_has_an_explicit_topic_and_class_version(event_class: type) -> None:
    assert "TOPIC" in vars(event_class)
    assert "class_version" in vars(event_class)
    assert event_class.TOPIC.startswith("ordertrail.")
    assert resolve_topic(event_class.TOPIC) is event_class


@pytest.mark.parametrize("event_class", event_classes(), ids=lambda c: c.__qualname__)
def test_each_event_is_named_in_the_past_tense(event_class: type) -> None:
    words = re.findall(r"[A-Z][a-z]*", event_class.__name__)
    assert any(word.endswith("ed") or word == "Paid" for word in words), words


def test_each_event_records_who_and_why() -> None:
    for event_class in event_classes():
        assert "meta" in event_class.__dataclass_fields__, event_class
