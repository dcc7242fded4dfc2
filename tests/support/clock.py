"""A clock that tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 11, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        # Each reading moves a microsecond on, so event timestamps stay strictly ordered.
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
