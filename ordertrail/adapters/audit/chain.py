"""The hash chain of an event log: how one link is hashed, and how a log is checked.

Pure code, standard library only (the offline verifier relies on that): no I/O, no
database, no third-party package.

The link hash
=============

Every stored event at position *n* (its notification id) is bound to the one before it::

    hash_n = SHA-256( prev_hash                                   32 bytes
                    ‖ int64_be(position)                          8 bytes
                    ‖ uint32_be(len(id))      ‖ id                UTF-8 text of the originator id
                    ‖ int64_be(originator_version)                8 bytes
                    ‖ uint32_be(len(topic))   ‖ topic             UTF-8
                    ‖ uint32_be(len(state))   ‖ state )           the stored bytes, as stored

- ``prev_hash`` is the hash of the previous event of the same log, and ``GENESIS``
  (32 zero bytes) for the first one;
- ``int64_be`` is a signed 64-bit big-endian integer (PostgreSQL's ``bigint``),
  ``uint32_be`` an unsigned 32-bit big-endian length in bytes of what follows;
- the originator id is its canonical text: a UUID as 36 lower-case characters with
  hyphens (``str(uuid)``), any other id as the string itself;
- ``state`` is hashed exactly as the recorder stored it (after any compression or
  encryption), never a re-encoding of it.

Every variable-length field is length-prefixed and every other field has a fixed size,
so two different events can never encode to the same bytes.

Checking a log
==============

``verify_links`` walks a log in position order, one ``Link`` per position that holds an
event row, a chain row, or both, and returns the FIRST break:

``changed``    the event's content (or its chain row) no longer gives its stored hash;
``missing``    a chain row whose event row is gone, or an intact link whose predecessor
               is gone (events deleted together with their chain rows);
``inserted``   an event the chain skips: the next link connects across it (a forged row,
               with or without a forged chain row, or one written without the chain);
``reordered``  the event at this position is one that the chain places at another
               position, or positions do not increase;
``unchained``  an event without a chain row whose own link cannot be told apart from a
               genuine one (its chain row was deleted, or it is the newest event and
               nothing after it says whether it belongs).
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple
from uuid import UUID

GENESIS = bytes(32)
"""The ``prev_hash`` of the first event of every log."""

HASH_SIZE = 32

BreakKind = Literal[
    "changed", "missing", "inserted", "reordered", "unchained", "truncated", "rewritten"
]
"""The first five are found by walking the chain; ``truncated`` and ``rewritten`` only by
comparing it with a signed checkpoint (``checkpoints``, ``offline``)."""

#: How far ahead a mismatching event is looked for elsewhere in the chain (reordering).
LOOKAHEAD = 512
#: How many accepted links are remembered to recognise a chain that skips inserted rows.
LOOKBEHIND = 4096

_HEAD = struct.Struct(">32sqI")  # prev_hash, position, len(id)
_MIDDLE = struct.Struct(">qI")  # originator_version, len(topic)
_TAIL = struct.Struct(">I")  # len(state)
_MAX_LEN = 0xFFFFFFFF


def canonical_id(originator_id: UUID | str) -> str:
    """The text of an originator id that is hashed (and exported)."""
    return originator_id if isinstance(originator_id, str) else str(originator_id)


def encode_link(  # noqa: PLR0917 - the fields of the formula, in its order
    prev_hash: bytes,
    position: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """The exact bytes that are hashed for one link (see the module docstring)."""
    if len(prev_hash) != HASH_SIZE:
        raise ValueError(f"prev_hash must be {HASH_SIZE} bytes, not {len(prev_hash)}")
    ident = canonical_id(originator_id).encode("utf-8")
    name = topic.encode("utf-8")
    if max(len(ident), len(name), len(state)) > _MAX_LEN:
        raise ValueError("a hashed field is longer than 4 GiB")
    return b"".join(
        (
            _HEAD.pack(prev_hash, position, len(ident)),
            ident,
            _MIDDLE.pack(originator_version, len(name)),
            name,
            _TAIL.pack(len(state)),
            state,
        )
    )


def link_hash(  # noqa: PLR0917 - the fields of the formula, in its order
    prev_hash: bytes,
    position: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """``hash_n`` of one event, given ``hash_{n-1}`` (``GENESIS`` for the first)."""
    return hashlib.sha256(
        encode_link(prev_hash, position, originator_id, originator_version, topic, state)
    ).digest()


def chain_hashes(
    prev_hash: bytes,
    events: Iterable[tuple[int, UUID | str, int, str, bytes]],
) -> list[tuple[int, bytes, bytes]]:
    """``(position, prev_hash, hash)`` for consecutive new events (in position order)."""
    rows = []
    for position, originator_id, version, topic, state in events:
        digest = link_hash(prev_hash, position, originator_id, version, topic, state)
        rows.append((position, prev_hash, digest))
        prev_hash = digest
    return rows


class Link(NamedTuple):
    """One position of a log: its event (``topic`` None when the event row is missing)
    and its chain row (``stored_hash`` None when the chain row is missing).

    ``stored_prev`` is the ``prev_hash`` recorded with the link, when the source has it
    (the recorders and the exports do); without it a break is still found, but a deleted
    event and a changed one are told apart less precisely.
    """

    position: int
    originator_id: UUID | str | None
    originator_version: int | None
    topic: str | None
    state: bytes | None
    stored_hash: bytes | None
    stored_prev: bytes | None = None

    @property
    def has_event(self) -> bool:
        return self.topic is not None

    def computed(self, prev_hash: bytes) -> bytes:
        assert self.topic is not None
        assert self.originator_id is not None
        assert self.originator_version is not None
        assert self.state is not None
        return link_hash(
            prev_hash,
            self.position,
            self.originator_id,
            self.originator_version,
            self.topic,
            self.state,
        )


@dataclass(frozen=True)
class Break:
    kind: BreakKind
    position: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at position {self.position}: {self.detail}"


@dataclass(frozen=True)
class Outcome:
    """What a walk over links found: how many events verified up to the first break (or
    the end), the last verified position and its hash, and the first break if any."""

    count: int
    head_position: int
    head_hash: bytes
    broken: Break | None
    #: ``position -> (count, hash)`` at each watched position that verified
    marks: Mapping[int, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.broken is None


class _Peekable:
    def __init__(self, links: Iterable[Link]) -> None:
        self._it: Iterator[Link] = iter(links)
        self._buffer: deque[Link] = deque()

    def next(self) -> Link | None:
        if self._buffer:
            return self._buffer.popleft()
        return next(self._it, None)

    def peek(self, index: int) -> Link | None:
        """The link ``index`` places ahead of the next one (0: the next one)."""
        while len(self._buffer) <= index:
            item = next(self._it, None)
            if item is None:
                return None
            self._buffer.append(item)
        return self._buffer[index]


def _intact(link: Link, prev_hash: bytes) -> bool:
    return (
        link.has_event
        and link.stored_hash is not None
        and link.computed(prev_hash) == link.stored_hash
    )


def verify_links(
    links: Iterable[Link],
    *,
    start_hash: bytes = GENESIS,
    start_position: int = 0,
    start_count: int = 0,
    watch: Collection[int] = (),
    lookahead: int = LOOKAHEAD,
    lookbehind: int = LOOKBEHIND,
) -> Outcome:
    """Walk ``links`` (in increasing position) from ``start_hash`` and report the first
    break. Memory stays bounded by ``lookahead`` and ``lookbehind``, whatever the length.

    ``start_hash``/``start_position``/``start_count``: where a partial walk starts (the
    ``prev_hash`` of its first event, a position below it, and the count of events up to
    there). ``watch``: positions whose running count and hash to report in ``marks``
    (signed checkpoints are checked against them).
    """
    stream = _Peekable(links)
    expected = start_hash
    last_position = start_position
    count = start_count
    recent: deque[tuple[int, bytes]] = deque(maxlen=lookbehind)
    watched = frozenset(watch)
    marks: dict[int, tuple[int, bytes]] = {}

    def outcome(kind: BreakKind, position: int, detail: str) -> Outcome:
        return Outcome(count, last_position, expected, Break(kind, position, detail), marks)

    if len(start_hash) != HASH_SIZE:
        raise ValueError(f"start_hash must be {HASH_SIZE} bytes")
    # The hot loop hashes inline (as ``encode_link`` does, checks aside: ``expected`` is
    # always 32 bytes here); a million links go through it per verification.
    sha256, pack_head, pack_middle, pack_tail = (
        hashlib.sha256,
        _HEAD.pack,
        _MIDDLE.pack,
        _TAIL.pack,
    )
    while (link := stream.next()) is not None:
        position, originator_id, version, topic, state, stored, stored_prev = link
        if position <= last_position:
            return outcome(
                "reordered", position, f"position {position} comes after {last_position}"
            )
        if topic is None or state is None or originator_id is None or version is None:
            if stored is None:  # nothing at all: not a position of the log
                continue
            return outcome("missing", position, "the chain has a link here but no event")
        if stored is not None and (stored_prev is None or stored_prev == expected):
            ident = (
                originator_id if originator_id.__class__ is str else canonical_id(originator_id)
            ).encode()
            name = topic.encode()
            digest = sha256(
                b"".join(
                    (
                        pack_head(expected, position, len(ident)),
                        ident,
                        pack_middle(version, len(name)),
                        name,
                        pack_tail(len(state)),
                        state,
                    )
                )
            ).digest()
            if digest == stored:
                count += 1
                recent.append((position, digest))
                expected = digest
                last_position = position
                if position in watched:
                    marks[position] = (count, digest)
                continue
        # Something is wrong here: say what.
        lower = _lower_ahead(stream, position, lookahead)
        if lower is not None:  # (an export's lines, moved; a database read is ordered)
            return outcome("reordered", position, f"position {position} comes before {lower}")
        seen = {digest: at for at, digest in recent}
        seen[expected] = last_position
        resumed = _resumed_after(link, stream, seen, expected, lookahead)
        if resumed is not None:
            # The links verified after ``resumed`` were not part of the chain after all.
            undone = [(at, digest) for at, digest in recent if at > resumed]
            first = undone[0][0] if undone else position
            head = next((digest for at, digest in recent if at == resumed), None)
            return Outcome(
                count - len(undone),
                resumed,
                expected if head is None else head,
                Break(
                    "inserted",
                    first,
                    f"the chain goes on from position {resumed}: the events from {first} "
                    "on are not part of it",
                ),
                {at: mark for at, mark in marks.items() if at <= resumed},
            )
        if link.stored_hash is None:
            return outcome("unchained", position, "the event has no chain row")
        if (
            link.stored_prev is not None
            and link.stored_prev != expected
            and _intact(link, link.stored_prev)
        ):
            return outcome(
                "missing",
                position,
                f"the event is intact, but what it followed (after position "
                f"{last_position}) is gone",
            )
        elsewhere = _found_elsewhere(stream, link, expected, lookahead)
        if elsewhere is not None:
            return outcome("reordered", position, f"the event here belongs at position {elsewhere}")
        return outcome("changed", position, "the event no longer matches its hash")
    return Outcome(count, last_position, expected, None, marks)


def _lower_ahead(stream: _Peekable, position: int, lookahead: int) -> int | None:
    """The position of a link ahead that is lower than ``position``, if any."""
    for index in range(lookahead):
        other = stream.peek(index)
        if other is None:
            return None
        if other.position < position:
            return other.position
    return None


def _intact_between(link: Link, prev_hash: bytes, low: int, high: int) -> bool:
    """Whether ``link`` is intact at some position in ``(low, high]``: rows moved up to
    make room for inserted ones no longer match at their new position."""
    for position in range(high, max(low, high - LOOKBEHIND), -1):
        if _intact(link._replace(position=position), prev_hash):
            return True
    return False


def _resumed_after(
    link: Link, stream: _Peekable, seen: dict[bytes, int], expected: bytes, lookahead: int
) -> int | None:
    """The verified position that ``link`` or a link ahead of it follows directly,
    although later links were verified or stand here: the chain as written skips them.
    When several links say so (forged rows may chain among themselves, or to a copied
    hash), the furthest of them is believed: the genuine continuation comes after the
    rows inserted before it, and is the last link that points back into verified links.

    ``seen`` maps the hashes of recently verified links to their positions, ``expected``
    (the newest) included. A link that repeats a verified hash is a copied chain row and tells
    nothing. Without stored prev hashes, only the next chained link is asked.
    """
    newest = seen[expected]
    best: int | None = None
    for index in range(lookahead + 1):
        candidate = link if index == 0 else stream.peek(index - 1)
        if candidate is None:
            break
        if candidate.stored_hash is None or not candidate.has_event:
            continue
        if candidate.stored_prev is None:
            if index == 0:
                continue
            return newest if _intact(candidate, expected) else best
        if candidate.stored_hash in seen:
            continue
        after = seen.get(candidate.stored_prev)
        if after is None or (index == 0 and after == newest):
            continue  # (the link at hand follows the newest: its content is what is wrong)
        if _intact_between(candidate, candidate.stored_prev, after, candidate.position):
            best = after
    return best


def _found_elsewhere(stream: _Peekable, link: Link, expected: bytes, lookahead: int) -> int | None:
    """The position of a link ahead whose place is held by ``link``'s event, or whose
    event belongs where ``link`` is."""
    prev = link.stored_hash
    for index in range(lookahead):
        other = stream.peek(index)
        if other is None:
            return None
        other_prev = other.stored_prev if other.stored_prev is not None else prev
        if other.stored_hash is not None and other_prev is not None:
            moved_here = link._replace(
                position=other.position, stored_hash=other.stored_hash, stored_prev=other_prev
            )
            if _intact(moved_here, other_prev):
                return other.position
        if other.has_event and link.stored_hash is not None:
            moved_there = other._replace(
                position=link.position, stored_hash=link.stored_hash, stored_prev=expected
            )
            if _intact(moved_there, expected):
                return other.position
        prev = other.stored_hash
    return None
