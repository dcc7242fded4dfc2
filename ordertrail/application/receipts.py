"""Idempotency: a receipt per handled command, saved atomically with the command's events.

The receipt's id derives from the command id, so a second attempt of the same command
collides with the first (in the same transaction as its events) and gets the recorded
outcome back instead of acting twice. Receipts are events too: auditors can see which
command, with which fingerprint, produced a change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from ordertrail.application.serialization import encode_json
from ordertrail.domain.ids import NAMESPACE
from ordertrail.domain.meta import EventMeta

_RECEIPT = uuid5(NAMESPACE, "application.command-receipt")

T = TypeVar("T")


def receipt_id(command_id: UUID) -> UUID:
    return uuid5(_RECEIPT, str(command_id))


def fingerprint(command_name: str, command: object) -> str:
    """A digest of the command's name and data: the same command gives the same digest."""
    digest = hashlib.sha256(command_name.encode())
    digest.update(b"\x00")
    digest.update(encode_json(command))
    return digest.hexdigest()


class CommandReceipt(Aggregate):
    TOPIC = "ordertrail.application:CommandReceipt"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Recorded(Event, Aggregate.Created):
        TOPIC = "ordertrail.application:CommandReceipt.Recorded"
        class_version = 1
        command_name: str
        fingerprint: str
        outcome: bytes

    Created = Recorded

    def __init__(self, *, command_name: str, fingerprint: str, outcome: bytes) -> None:
        self.command_name = command_name
        self.fingerprint = fingerprint
        self.outcome = outcome

    @classmethod
    def record(
        cls,
        command_id: UUID,
        *,
        command_name: str,
        fingerprint: str,
        outcome: bytes,
        meta: EventMeta,
        now: datetime,
    ) -> CommandReceipt:
        return cls._create(
            cls.Recorded,
            id=receipt_id(command_id),
            timestamp=now,
            meta=meta,
            command_name=command_name,
            fingerprint=fingerprint,
            outcome=outcome,
        )


@dataclass(frozen=True)
class Accepted(Generic[T]):
    """A command's outcome.

    ``positions`` maps each application the command wrote to (or, for a replay, its
    current head) to a notification id; a read model that has reached these positions
    reflects the command (read-your-writes). ``replayed`` is true when the command id had
    been handled before and this is the recorded outcome.
    """

    value: T
    positions: dict[str, int]
    replayed: bool = False
