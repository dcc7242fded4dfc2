"""What every command carries besides its data: its id, who sent it, and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

from ordertrail.domain.meta import Actor, EventMeta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CommandContext:
    """The envelope of one command.

    ``command_id`` makes the command idempotent: the same id yields the same outcome and
    records nothing new. ``correlation_id`` defaults to the command id (a new request);
    ``causation_id`` defaults to the command id (the command caused its events).
    ``expected_version``, when given, is the version of the command's aggregate that the
    sender saw (an HTTP ``If-Match``): if it has changed since, the command is refused.
    """

    actor: Actor
    command_id: UUID = field(default_factory=uuid4)
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    expected_version: int | None = None

    @property
    def meta(self) -> EventMeta:
        return EventMeta(
            actor=self.actor,
            correlation_id=self.correlation_id or self.command_id,
            causation_id=self.causation_id or self.command_id,
        )

    def caused(self, command_id: UUID) -> CommandContext:
        """A follow-up command this one causes, in the same correlation."""
        return CommandContext(
            actor=self.actor,
            command_id=command_id,
            correlation_id=self.correlation_id or self.command_id,
            causation_id=self.command_id,
        )
