"""The pure hash chain: the documented encoding, and for random logs, every single
mutation of each kind is found at the right position with the right kind, while an
untouched log verifies."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from dataclasses import dataclass
from uuid import UUID

from hypothesis import assume, given
from hypothesis import strategies as st

from ordertrail.adapters.audit.chain import (
    GENESIS,
    Break,
    Link,
    chain_hashes,
    encode_link,
    link_hash,
    verify_links,
)

OID = UUID("5c1f3a52-8f0e-4c4e-9a51-1d2b3c4d5e6f")


def test_the_encoding_is_the_documented_one() -> None:
    prev = bytes(range(32))
    expected = (
        prev
        + struct.pack(">q", 17)
        + struct.pack(">I", 36)
        + b"5c1f3a52-8f0e-4c4e-9a51-1d2b3c4d5e6f"
        + struct.pack(">q", 3)
        + struct.pack(">I", 5)
        + b"topic"
        + struct.pack(">I", 2)
        + b"{}"
    )
    assert encode_link(prev, 17, OID, 3, "topic", b"{}") == expected
    assert link_hash(prev, 17, OID, 3, "topic", b"{}") == hashlib.sha256(expected).digest()
    # a UUID and its canonical text hash alike; the length prefixes keep fields apart
    assert link_hash(GENESIS, 1, OID, 1, "t", b"") == link_hash(GENESIS, 1, str(OID), 1, "t", b"")
    assert link_hash(GENESIS, 1, "a", 1, "bc", b"") != link_hash(GENESIS, 1, "ab", 1, "c", b"")
    assert bytes(32) == GENESIS


def test_the_chain_module_imports_only_the_standard_library() -> None:
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import ordertrail.adapters.audit.chain\n"
        "loaded = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(loaded - set(sys.stdlib_module_names) - {'ordertrail'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- random logs ------------------------------------------------------------------------


@dataclass
class Log:
    links: list[Link]

    @property
    def positions(self) -> list[int]:
        return [link.position for link in self.links]


@st.composite
def logs(draw: st.DrawFn, min_size: int = 1) -> Log:
    """A chained log: events of a few aggregates (unique id and version), positions
    increasing with gaps (rolled-back writes burn positions), random states."""
    size = draw(st.integers(min_size, 25))
    ids = draw(st.lists(st.uuids(), min_size=1, max_size=4, unique=True))
    versions: dict[UUID, int] = {}
    position = 0
    events = []
    for _ in range(size):
        oid = draw(st.sampled_from(ids))
        versions[oid] = versions.get(oid, 0) + 1
        position += draw(st.sampled_from((1, 1, 1, 2, 3)))
        topic = draw(st.sampled_from(("m:A.Created", "m:A.Changed", "m:B.Moved")))
        state = draw(st.binary(max_size=24))
        events.append((position, oid, versions[oid], topic, state))
    rows = chain_hashes(GENESIS, events)
    return Log(
        [
            Link(p, oid, v, topic, state, digest, prev)
            for (p, oid, v, topic, state), (_, prev, digest) in zip(events, rows, strict=True)
        ]
    )


def _flip(data: bytes, index: int) -> bytes:
    if not data:
        return b"\x00"
    index %= len(data)
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _first_break(links: list[Link]) -> Break | None:
    return verify_links(links).broken


@given(logs())
def test_an_untouched_log_verifies(log: Log) -> None:
    outcome = verify_links(log.links)
    assert outcome.ok
    assert outcome.count == len(log.links)
    assert outcome.head_position == log.links[-1].position
    assert outcome.head_hash == log.links[-1].stored_hash


@given(logs(), st.data())
def test_a_changed_event_or_chain_row_is_found_where_it_is(log: Log, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(log.links) - 1))
    link = log.links[i]
    what = data.draw(st.sampled_from(("state", "topic", "hash", "prev", "id")))
    assert link.state is not None
    assert link.stored_hash is not None
    assert link.stored_prev is not None
    if what == "state":
        changed = link._replace(state=_flip(link.state, data.draw(st.integers(0, 99))))
    elif what == "topic":
        changed = link._replace(topic=f"{link.topic}x")
    elif what == "hash":
        changed = link._replace(stored_hash=_flip(link.stored_hash, data.draw(st.integers(0, 31))))
    elif what == "prev":
        changed = link._replace(stored_prev=_flip(link.stored_prev, data.draw(st.integers(0, 31))))
    else:
        other = UUID(int=0x5EED)
        assume(all(other != each.originator_id for each in log.links))
        changed = link._replace(originator_id=other)
    links = [*log.links[:i], changed, *log.links[i + 1 :]]
    outcome = verify_links(links)
    assert outcome.broken is not None
    assert (outcome.broken.kind, outcome.broken.position) == ("changed", link.position)
    assert outcome.count == i


@given(logs(), st.data())
def test_a_deleted_event_is_missing(log: Log, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(log.links) - 1))
    link = log.links[i]
    # the event row alone is deleted: its chain row remains
    gone = link._replace(originator_id=None, originator_version=None, topic=None, state=None)
    broken = _first_break([*log.links[:i], gone, *log.links[i + 1 :]])
    assert broken is not None
    assert (broken.kind, broken.position) == ("missing", link.position)
    # the event and its chain row are deleted: the next link no longer connects
    both = [*log.links[:i], *log.links[i + 1 :]]
    outcome = verify_links(both)
    if i == len(log.links) - 1:
        # the newest event, deleted with its link, leaves nothing behind: that is what
        # signed checkpoints are for (the head no longer matches)
        assert outcome.ok
        assert outcome.head_position != link.position
    else:
        assert outcome.broken is not None
        assert (outcome.broken.kind, outcome.broken.position) == (
            "missing",
            log.links[i + 1].position,
        )
        assert outcome.count == i


@st.composite
def forged(draw: st.DrawFn, log: Log, position: int, prev: bytes) -> Link:
    state = draw(st.binary(max_size=24))
    oid = draw(st.uuids())
    how = draw(st.sampled_from(("none", "chained", "bogus", "copied")))
    if how == "none":
        return Link(position, oid, 1, "m:A.Created", state, None, None)
    if how == "chained":  # a forger who knows the scheme links it to its predecessor
        digest = link_hash(prev, position, oid, 1, "m:A.Created", state)
        return Link(position, oid, 1, "m:A.Created", state, digest, prev)
    if how == "copied":
        donor = draw(st.sampled_from(log.links))
        return Link(position, oid, 1, "m:A.Created", state, donor.stored_hash, donor.stored_prev)
    return Link(
        position,
        oid,
        1,
        "m:A.Created",
        state,
        draw(st.binary(min_size=32, max_size=32)),
        draw(st.binary(min_size=32, max_size=32)),
    )


@given(logs(min_size=2), st.data())
def test_events_inserted_between_two_others_are_found(log: Log, data: st.DataObject) -> None:
    i = data.draw(st.integers(1, len(log.links) - 1))
    before, rest = log.links[:i], log.links[i:]
    position = before[-1].position + 1
    prev = before[-1].stored_hash
    assert prev is not None
    inserted: list[Link] = []
    for k in range(data.draw(st.integers(1, 3))):
        fake = data.draw(forged(log, position + k, prev))
        inserted.append(fake)
        prev = fake.stored_hash or prev
    room = inserted[-1].position + 1 - rest[0].position
    if room > 0:  # no gap there: move the later rows up, as a forger must
        rest = [link._replace(position=link.position + room) for link in rest]
    outcome = verify_links([*before, *inserted, *rest])
    assert outcome.broken is not None
    assert (outcome.broken.kind, outcome.broken.position) == ("inserted", position)
    assert outcome.count <= i + len(inserted)


@given(logs(), st.data())
def test_an_event_forged_at_the_head_without_a_link_is_unchained(
    log: Log, data: st.DataObject
) -> None:
    position = log.links[-1].position + data.draw(st.integers(1, 3))
    fake = Link(position, UUID(int=1), 1, "m:A.Created", b"{}", None, None)
    assert _first_break([*log.links, fake]) == Break(
        "unchained", position, "the event has no chain row"
    )
    # once a genuine event follows it, the chain shows it was never part of the log
    head = log.links[-1]
    assert head.stored_hash is not None
    nxt_pos = position + 1
    digest = link_hash(head.stored_hash, nxt_pos, UUID(int=2), 1, "m:A.Created", b"{}")
    genuine = Link(nxt_pos, UUID(int=2), 1, "m:A.Created", b"{}", digest, head.stored_hash)
    broken = _first_break([*log.links, fake, genuine])
    assert broken is not None
    assert (broken.kind, broken.position) == ("inserted", position)


@given(logs(min_size=2), st.data())
def test_two_swapped_events_are_reordered(log: Log, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(log.links) - 2))
    j = data.draw(st.integers(i + 1, len(log.links) - 1))
    a, b = log.links[i], log.links[j]
    links = list(log.links)
    # swap the events' positions; the chain rows stay where they are
    links[i] = b._replace(position=a.position, stored_hash=a.stored_hash, stored_prev=a.stored_prev)
    links[j] = a._replace(position=b.position, stored_hash=b.stored_hash, stored_prev=b.stored_prev)
    broken = _first_break(links)
    assert broken is not None
    assert (broken.kind, broken.position) == ("reordered", a.position)


@given(logs(min_size=2), st.data())
def test_positions_out_of_order_are_reordered(log: Log, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(log.links) - 2))
    links = list(log.links)
    links[i], links[i + 1] = links[i + 1], links[i]
    broken = _first_break(links)
    assert broken is not None
    # the first line out of place (an export's lines can be; a database read is ordered)
    assert (broken.kind, broken.position) == ("reordered", links[i].position)


@given(logs(), st.data())
def test_an_event_whose_chain_row_is_deleted_is_unchained(log: Log, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(log.links) - 1))
    link = log.links[i]
    links = [*log.links[:i], link._replace(stored_hash=None, stored_prev=None), *log.links[i + 1 :]]
    broken = _first_break(links)
    assert broken is not None
    assert (broken.kind, broken.position) == ("unchained", link.position)


@given(logs(min_size=2), st.data())
def test_without_stored_prev_hashes_every_mutation_is_still_detected(
    log: Log, data: st.DataObject
) -> None:
    bare = [link._replace(stored_prev=None) for link in log.links]
    assert verify_links(bare).ok
    i = data.draw(st.integers(0, len(bare) - 2))
    link = bare[i]
    assert link.state is not None
    mutations = {
        "changed": [*bare[:i], link._replace(state=_flip(link.state, 0)), *bare[i + 1 :]],
        "missing": [*bare[:i], *bare[i + 1 :]],
        "unchained": [*bare[:i], link._replace(stored_hash=None), *bare[i + 1 :]],
        "reordered": [*bare[:i], bare[i + 1], link, *bare[i + 2 :]],
    }
    for mutated in mutations.values():
        assert not verify_links(mutated).ok


def test_a_partial_walk_starts_from_its_anchor() -> None:
    events = [(p, OID, p, "t", b"x") for p in range(1, 6)]
    rows = chain_hashes(GENESIS, events)
    links = [
        Link(p, oid, v, t, s, digest, prev)
        for (p, oid, v, t, s), (_, prev, digest) in zip(events, rows, strict=True)
    ]
    outcome = verify_links(links[2:], start_hash=rows[1][2], start_position=2)
    assert outcome.ok
    assert outcome.count == 3
    assert not verify_links(links[2:]).ok  # from GENESIS it does not connect
