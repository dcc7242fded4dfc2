"""Shared machinery for the aggregate state machines.

Every machine drives one live aggregate, keeps every event it ever recorded, and checks
after each step that

* each event survives the project's stored-event mapper unchanged (same values, same types);
* folding the history (original and decoded) rebuilds an aggregate equal to the live one;
* a command that was expected to be refused raised a ``DomainError`` with one of the
  expected stable codes, recorded nothing and changed nothing;
* a command that was expected to succeed recorded exactly the expected events.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import JSONTranscoder
from hypothesis import event
from hypothesis import strategies as st

from ordertrail.application.serialization import MsgspecMapper
from ordertrail.domain.errors import DomainError
from ordertrail.domain.meta import Actor, EventMeta

START = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)

MAPPER = MsgspecMapper(transcoder=JSONTranscoder())


def new_meta() -> EventMeta:
    return EventMeta(actor=Actor.system("test"), correlation_id=uuid4(), causation_id=uuid4())


def state_of(aggregate: Aggregate) -> dict[str, Any]:
    """Everything an aggregate knows, except the events it has not handed over yet."""
    return {name: value for name, value in vars(aggregate).items() if name != "_pending_events"}


def snapshot(aggregate: Aggregate) -> dict[str, Any]:
    return copy.deepcopy(state_of(aggregate))


# --- outcomes a model predicts ---------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """The command must raise a ``DomainError`` whose code is one of ``codes``."""

    codes: frozenset[str]

    @classmethod
    def of(cls, *codes: str) -> Rejected:
        return cls(frozenset(codes))


@dataclass(frozen=True)
class Accepted:
    """The command must return ``returns`` and record exactly ``events`` (by class name)."""

    events: tuple[str, ...] = ()
    returns: object = None


@dataclass(frozen=True)
class NoEffect:
    """A retry: it must change nothing, and either return ``returns`` or be refused with one
    of ``codes`` (both are fine ways of saying "already done")."""

    returns: object
    codes: frozenset[str]


Outcome = Rejected | Accepted | NoEffect


def first_rejection(*checks: tuple[bool, str]) -> Rejected | None:
    """A ``Rejected`` listing the code of every broken rule, or ``None`` if none is broken.

    When a command breaks several rules at once any one of their codes is an acceptable
    answer: the specification is only that it is refused, and for a reason that applies.
    """
    codes = frozenset(code for broken, code in checks if broken)
    return Rejected(codes) if codes else None


# --- the event history ----------------------------------------------------------------------


def same_types(left: object, right: object, path: str = "event") -> None:
    """``left == right`` is not enough: ``"x" == StrEnum("x")``. Compare types as well."""
    assert type(left) is type(right), f"{path}: {type(left).__name__} != {type(right).__name__}"
    if dataclasses.is_dataclass(left) and not isinstance(left, type):
        for f in dataclasses.fields(left):
            same_types(getattr(left, f.name), getattr(right, f.name), f"{path}.{f.name}")
    elif isinstance(left, tuple | list):
        assert isinstance(right, tuple | list)
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            same_types(a, b, f"{path}[{index}]")
    elif isinstance(left, datetime):
        assert isinstance(right, datetime)
        assert left.utcoffset() == right.utcoffset(), path
    elif isinstance(left, enum.Enum):
        assert left is right, path


def round_trip(event: DomainEventProtocol[Any]) -> DomainEventProtocol[Any]:
    """``event`` stored and read back by the project's mapper; must equal the original."""
    stored = MAPPER.to_stored_event(event)
    decoded = MAPPER.to_domain_event(stored)
    assert decoded == event, f"{type(event).__name__} changed in the mapper"
    same_types(event, decoded, type(event).__name__)
    # Encoding is deterministic: the decoded event stores to the same bytes.
    assert MAPPER.to_stored_event(decoded).state == stored.state
    return decoded


@dataclass
class EventLog:
    """All events one aggregate recorded, as recorded and as read back from storage."""

    events: list[DomainEventProtocol[Any]] = field(default_factory=list)
    decoded: list[DomainEventProtocol[Any]] = field(default_factory=list)

    def collect(self, aggregate: Aggregate) -> list[DomainEventProtocol[Any]]:
        new: list[DomainEventProtocol[Any]] = list(aggregate.collect_events())
        for recorded in new:
            assert recorded.originator_id == aggregate.id
            assert recorded.originator_version == len(self.events) + 1, "versions are contiguous"
            self.decoded.append(round_trip(recorded))
            self.events.append(recorded)
        assert aggregate.version == len(self.events)
        return new

    def check_rebuilds(self, aggregate: Aggregate) -> None:
        live = state_of(aggregate)
        for history in (self.events, self.decoded):
            rebuilt: Aggregate | None = project_aggregate(None, history)
            assert rebuilt is not None
            assert type(rebuilt) is type(aggregate)
            assert state_of(rebuilt) == live, "replaying the history gives another state"


def perform(
    aggregate: Aggregate,
    log: EventLog,
    command: Callable[[], object],
    expected: Outcome,
    label: str,
) -> list[DomainEventProtocol[Any]]:
    """Run ``command`` on ``aggregate`` and check it did what ``expected`` says."""
    assert not aggregate.pending_events
    if isinstance(expected, Rejected):
        event(f"{label}: refused")
    elif isinstance(expected, NoEffect):
        event(f"{label}: retry ignored")
    else:
        event(f"{label}: {'+'.join(expected.events) or 'nothing recorded'}")
    before = snapshot(aggregate)
    if isinstance(expected, NoEffect):
        try:
            returned = command()
        except DomainError as error:
            assert error.code in expected.codes, f"a retry was refused with {error!r}"
        else:
            assert returned == expected.returns, f"a retry returned {returned!r}"
        assert aggregate.pending_events == [], "a retry recorded events"
        assert state_of(aggregate) == before, "a retry changed the aggregate"
        return []
    if isinstance(expected, Rejected):
        try:
            returned = command()
        except DomainError as error:
            assert error.code in expected.codes, (
                f"refused with {error!r}, expected one of {sorted(expected.codes)}"
            )
            assert aggregate.pending_events == [], "a refused command recorded events"
            assert state_of(aggregate) == before, "a refused command changed the aggregate"
            return []
        raise AssertionError(
            f"expected a refusal with one of {sorted(expected.codes)}, got {returned!r} "
            f"and events {[type(e).__name__ for e in aggregate.pending_events]}"
        )
    returned = command()
    assert returned == expected.returns, f"returned {returned!r}, expected {expected.returns!r}"
    assert type(returned) is type(expected.returns), f"returned {returned!r}"
    new = log.collect(aggregate)
    assert tuple(type(e).__name__ for e in new) == expected.events, (
        f"recorded {[type(e).__name__ for e in new]}, expected {list(expected.events)}"
    )
    if not new:
        assert state_of(aggregate) == before, "a command that recorded nothing changed state"
    return new


# --- input strategies that know whether they are valid --------------------------------------


@dataclass(frozen=True)
class Text:
    """A piece of text given to a command, and what the domain should make of it."""

    value: str
    valid: bool

    @property
    def stripped(self) -> str:
        return self.value.strip()


_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_WORD = st.builds(
    str.__add__,
    st.sampled_from(_FIRST),
    st.text(alphabet=_FIRST + " ._-", max_size=30),
)


def valid_texts(max_length: int) -> st.SearchStrategy[Text]:
    """Text the domain accepts, possibly padded with spaces that it strips."""
    return st.builds(
        lambda pad_left, body, pad_right: Text(pad_left + body + pad_right, True),
        st.sampled_from(["", " ", "  "]),
        _WORD.map(lambda s: s[:max_length]),
        st.sampled_from(["", " ", "\t"]),
    )


def texts(max_length: int, *, allow_empty: bool = False) -> st.SearchStrategy[Text]:
    """Valid free text and invalid text of several kinds (empty, too long, control bytes)."""
    empties = st.sampled_from(["", "   ", "\t"]).map(lambda s: Text(s, allow_empty))
    invalid = st.sampled_from(
        [
            "x" * (max_length + 1),
            " " + "y" * (max_length + 1) + " ",
            "bad\x00byte",
            "bell\x07",
            "escape\x1b[31m",
        ]
    ).map(lambda s: Text(s, False))
    return st.one_of(valid_texts(max_length), empties, invalid)


def distinct(values: Iterable[object]) -> bool:
    seen = list(values)
    return len(seen) == len(set(seen))
