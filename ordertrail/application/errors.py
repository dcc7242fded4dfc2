"""Errors the application layer adds to the domain's (same hierarchy, same stable codes)."""

from __future__ import annotations

from ordertrail.domain.errors import DomainError, ErrorKind


class CommandIdReused(DomainError):
    """A command id came back with a different command: ids identify one command only."""

    code = "command.id_reused"
    kind = ErrorKind.CONFLICT


class ConcurrencyConflict(DomainError):
    """Other writers kept changing the same aggregates; the command may be retried."""

    code = "command.conflict"
    kind = ErrorKind.CONFLICT


class StoreUnavailable(DomainError):
    """The event store could not be reached; nothing was written."""

    code = "store.unavailable"
    kind = ErrorKind.CONFLICT


class VersionMismatch(DomainError):
    """The aggregate changed since the sender last saw it (a stale ``If-Match``)."""

    code = "command.version_mismatch"
    kind = ErrorKind.CONFLICT
