"""Who and why: the metadata every event records for auditors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from ordertrail.domain.errors import InvalidValue

_ACTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")


class ActorKind(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"
    PROVIDER = "provider"  # a payment provider, calling back
    CARRIER = "carrier"  # a logistics carrier, calling back
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Actor:
    """The party on whose behalf a command ran."""

    kind: ActorKind
    id: str

    @classmethod
    def of(cls, kind: ActorKind | str, actor_id: str) -> Actor:
        """A validated actor (the constructor itself does not validate, so replay never fails)."""
        try:
            actor_kind = ActorKind(kind)
        except ValueError:
            raise InvalidValue(f"unknown actor kind {kind!r}", kind=str(kind)) from None
        if not isinstance(actor_id, str) or not _ACTOR_ID.fullmatch(actor_id):
            raise InvalidValue("actor id must be 1-128 safe characters", actor_id=actor_id)
        return cls(actor_kind, actor_id)

    @classmethod
    def system(cls, process: str = "ordertrail") -> Actor:
        return cls(ActorKind.SYSTEM, process)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True)
class EventMeta:
    """Recorded on every event.

    ``correlation_id`` follows one business request across every context it touches;
    ``causation_id`` names the command (or the event) that directly caused this event.
    """

    actor: Actor
    correlation_id: UUID
    causation_id: UUID
