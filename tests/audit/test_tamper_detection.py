"""On SQLite and on PostgreSQL, every log chained as deployed: an untouched history
verifies; each way of tampering with the stored rows behind the application's back is
reported with its kind at its position; cutting the tail off a log is caught by a signed
checkpoint, and so is a chain re-computed after a change."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from ordertrail.adapters.audit.chain import link_hash
from ordertrail.adapters.audit.checkpoints import (
    generate_keys,
    load_private_key,
    load_public_key,
    take_checkpoint,
    verify_checkpoint,
)
from ordertrail.adapters.audit.verify import Report, verify_all, verify_log
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from tests.audit import History, RawLog, open_chained
from tests.support.builders import customer, order_of
from tests.support.clock import FakeClock


@pytest.fixture
def history(seeded_history: History) -> History:
    return seeded_history


@pytest.fixture
def chained(store_settings: Settings, clock: FakeClock, history: History) -> Iterator[Ordertrail]:
    with open_chained(store_settings, clock) as ot:
        yield ot


@pytest.fixture
def orders_log(store_settings: Settings) -> Iterator[RawLog]:
    raw = RawLog(store_settings, "Orders")
    yield raw
    raw.close()


def orders_report(ot: Ordertrail) -> Report:
    return verify_log(ot.orders.recorder, application="Orders", batch_size=7)


def test_an_untouched_history_verifies_in_every_log(chained: Ordertrail, history: History) -> None:
    reports = verify_all(chained, batch_size=5)  # small batches: many batch boundaries
    assert all(report.ok for report in reports), [str(r) for r in reports]
    counted = {r.application: r.count for r in reports}
    for app in (chained.catalog, chained.inventory, chained.orders, chained.logistics):
        assert counted[app.name] == len(app.recorder.select_notifications(0, 10_000))
        assert counted[app.name] > 0
    assert counted["AfterSales"] > 0


# --- each way of tampering ----------------------------------------------------------------

Tamper = Callable[[Ordertrail, RawLog, list[int]], tuple[str, int]]


def _middle(positions: list[int]) -> int:
    return positions[len(positions) // 2]


def change_a_byte_of_a_state(ot: Ordertrail, raw: RawLog, positions: list[int]) -> tuple[str, int]:
    # an amount, a quantity or a timestamp digit, changed by one
    for position in positions[len(positions) // 2 :]:
        state = raw.event(position)[3]
        found = re.search(rb"\d", state)
        if found:
            digit = found.group()[0]
            index = found.start()
            raw.set_state(
                position, state[:index] + bytes([48 + (digit - 47) % 10]) + state[index + 1 :]
            )
            return "changed", position
    raise AssertionError("no digit in any state")


def change_a_topic(ot: Ordertrail, raw: RawLog, positions: list[int]) -> tuple[str, int]:
    position = _middle(positions)
    topic = raw.event(position)[2]
    cancelled = "ordertrail.orders:Order.Cancelled"
    raw.set_topic(position, cancelled if topic != cancelled else "ordertrail.orders:Order.Paid")
    return "changed", position


def null_a_state(ot: Ordertrail, raw: RawLog, positions: list[int]) -> tuple[str, int]:
    position = _middle(positions)
    raw.set_state(position, None)
    return "changed", position


def move_an_event_to_another_aggregate(
    ot: Ordertrail, raw: RawLog, positions: list[int]
) -> tuple[str, int]:
    position = positions[-2]
    raw.set_originator(position, uuid4())
    return "changed", position


def delete_an_event(ot: Ordertrail, raw: RawLog, positions: list[int]) -> tuple[str, int]:
    position = _middle(positions)
    raw.delete_event(position)
    return "missing", position


def delete_an_event_and_its_link(
    ot: Ordertrail, raw: RawLog, positions: list[int]
) -> tuple[str, int]:
    index = len(positions) // 2
    raw.delete_event(positions[index])
    raw.delete_link(positions[index])
    return "missing", positions[index + 1]


def _forge(raw: RawLog, positions: list[int]) -> tuple[bytes, str]:
    """A forged ``Order.Placed`` for a new order, copied from a real one."""
    placed = next(p for p in positions if raw.event(p)[2].endswith("Order.Placed"))
    _, _, topic, state = raw.event(placed)
    return state, topic


def forge_an_event_between_two_others(
    ot: Ordertrail, raw: RawLog, positions: list[int]
) -> tuple[str, int]:
    position = _middle(positions)
    state, topic = _forge(raw, positions)
    raw.make_room(position)
    raw.insert_event(position, uuid4(), 1, topic, state)
    return "inserted", position


def forge_an_event_and_its_link_between_two_others(
    ot: Ordertrail, raw: RawLog, positions: list[int]
) -> tuple[str, int]:
    # a forger who knows the scheme chains the forged row to the one before it
    position = _middle(positions)
    before = positions[positions.index(position) - 1]
    state, topic = _forge(raw, positions)
    raw.make_room(position)
    oid = uuid4()
    raw.insert_event(position, oid, 1, topic, state)
    prev = raw.link(before)[1]
    raw.insert_link(position, prev, link_hash(prev, position, oid, 1, topic, state))
    return "inserted", position


def forge_an_event_and_a_bogus_link_between_two_others(
    ot: Ordertrail, raw: RawLog, positions: list[int]
) -> tuple[str, int]:
    position = _middle(positions)
    state, topic = _forge(raw, positions)
    raw.make_room(position)
    raw.insert_event(position, uuid4(), 1, topic, state)
    raw.insert_link(position, *raw.link(positions[0]))  # a copied chain row
    return "inserted", position


def forge_an_event_at_the_head(
    ot: Ordertrail, raw: RawLog, positions: list[int]
) -> tuple[str, int]:
    state, topic = _forge(raw, positions)
    position = raw.insert_event(None, uuid4(), 1, topic, state)
    return "unchained", position


def forge_an_event_at_the_head_then_write_on(
    ot: Ordertrail, raw: RawLog, positions: list[int]
) -> tuple[str, int]:
    state, topic = _forge(raw, positions)
    position = raw.insert_event(None, uuid4(), 1, topic, state)
    # the application goes on writing: its next link follows the last chained event
    ot.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer())
    assert max(raw.positions()) > position
    return "inserted", position


def swap_two_events_positions(ot: Ordertrail, raw: RawLog, positions: list[int]) -> tuple[str, int]:
    index = len(positions) // 3
    raw.swap_positions(positions[index], positions[index + 4])
    return "reordered", positions[index]


def swap_two_events_contents(ot: Ordertrail, raw: RawLog, positions: list[int]) -> tuple[str, int]:
    # their ids, versions, topics and states: each position now holds the other's event
    index = len(positions) // 2
    raw.swap_contents(positions[index], positions[index + 3])
    return "reordered", positions[index]


def delete_a_link(ot: Ordertrail, raw: RawLog, positions: list[int]) -> tuple[str, int]:
    position = _middle(positions)
    raw.delete_link(position)
    return "unchained", position


TAMPERING = [
    change_a_byte_of_a_state,
    change_a_topic,
    null_a_state,
    move_an_event_to_another_aggregate,
    delete_an_event,
    delete_an_event_and_its_link,
    forge_an_event_between_two_others,
    forge_an_event_and_its_link_between_two_others,
    forge_an_event_and_a_bogus_link_between_two_others,
    forge_an_event_at_the_head,
    forge_an_event_at_the_head_then_write_on,
    swap_two_events_positions,
    swap_two_events_contents,
    delete_a_link,
]


@pytest.mark.parametrize("tamper", TAMPERING, ids=lambda t: t.__name__)
def test_tampering_is_reported_at_its_position_with_its_kind(
    chained: Ordertrail, history: History, orders_log: RawLog, tamper: Tamper
) -> None:
    before = orders_report(chained)
    assert before.ok, str(before)
    positions = orders_log.positions()
    assert before.count == len(positions) > 20

    kind, position = tamper(chained, orders_log, positions)

    report = orders_report(chained)
    assert report.broken is not None, "tampering went unnoticed"
    assert (report.broken.kind, report.broken.position) == (kind, position), str(report)
    # everything before the break verified
    assert report.count == len([p for p in orders_log.positions() if p < position])
    # the other logs are untouched
    others = [r for r in verify_all(chained) if r.application != "Orders"]
    assert all(r.ok for r in others)


# --- what the chain alone cannot show: signed checkpoints ---------------------------------


@pytest.fixture
def signing(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "audit.key.pem", tmp_path / "audit.pub.pem"
    generate_keys(private, public)
    return private, public


def test_a_truncated_tail_is_caught_by_a_signed_checkpoint(
    chained: Ordertrail, history: History, orders_log: RawLog, signing: tuple[Path, Path]
) -> None:
    signed = take_checkpoint(
        chained.orders.recorder, "Orders", load_private_key(signing[0].read_bytes())
    )
    public = load_public_key(signing[1].read_bytes())
    positions = orders_log.positions()
    assert signed.checkpoint.position == positions[-1]
    assert signed.checkpoint.count == len(positions)
    assert verify_checkpoint(chained.orders.recorder, signed, public).ok

    orders_log.truncate_from(positions[-3])  # the last three events and their links
    report = orders_report(chained)
    assert report.ok  # what is left is a valid chain: nothing in it shows the cut ...
    assert report.head_position == positions[-4]
    check = verify_checkpoint(chained.orders.recorder, signed, public)  # ... the signed head does
    assert (check.ok, check.kind, check.position) == (False, "truncated", positions[-1])


def test_a_chain_recomputed_after_a_change_is_caught_by_a_signed_checkpoint(
    chained: Ordertrail, history: History, orders_log: RawLog, signing: tuple[Path, Path]
) -> None:
    signed = take_checkpoint(
        chained.orders.recorder, "Orders", load_private_key(signing[0].read_bytes())
    )
    public = load_public_key(signing[1].read_bytes())
    # the log grows: the checkpoint still holds for what it signed
    chained.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer())
    assert verify_checkpoint(chained.orders.recorder, signed, public).ok

    # an intruder who knows the scheme changes an event and re-hashes every link after it
    positions = orders_log.positions()
    victim = positions[len(positions) // 2]
    oid, version, topic, state = orders_log.event(victim)
    orders_log.set_state(victim, state.replace(b'"cust-1"', b'"cust-2"', 1))
    assert orders_log.event(victim)[3] != state
    prev = orders_log.link(victim)[0]
    for position in (p for p in positions if p >= victim):
        oid, version, topic, state = orders_log.event(position)
        digest = link_hash(prev, position, oid, version, topic, state)
        orders_log.run(
            "UPDATE {chain} SET prev_hash = ?, hash = ? WHERE position = ?",
            (prev, digest, position),
        )
        prev = digest
    assert orders_report(chained).ok  # the chain alone says OK ...
    check = verify_checkpoint(chained.orders.recorder, signed, public)  # ... the signed head not
    assert (check.ok, check.kind, check.position) == (
        False,
        "rewritten",
        signed.checkpoint.position,
    )


def test_a_checkpoint_taken_since_the_last_one_costs_only_what_was_appended(
    chained: Ordertrail, history: History, orders_log: RawLog, signing: tuple[Path, Path]
) -> None:
    key = load_private_key(signing[0].read_bytes())
    public = load_public_key(signing[1].read_bytes())
    first = take_checkpoint(chained.orders.recorder, "Orders", key)
    chained.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer())
    second = take_checkpoint(chained.orders.recorder, "Orders", key, previous=first)
    full = take_checkpoint(chained.orders.recorder, "Orders", key)
    assert second.checkpoint.position == full.checkpoint.position > first.checkpoint.position
    assert (second.checkpoint.count, second.checkpoint.head_hash) == (
        full.checkpoint.count,
        full.checkpoint.head_hash,
    )
    assert verify_checkpoint(chained.orders.recorder, second, public).ok
    # an event appended since, then changed behind the application's back: no checkpoint
    chained.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer())
    assert orders_log.positions()[-1] > second.checkpoint.position
    orders_log.set_topic(orders_log.positions()[-1], "ordertrail.orders:Order.Cancelled")
    with pytest.raises(ValueError, match="broken"):
        take_checkpoint(chained.orders.recorder, "Orders", key, previous=second)
