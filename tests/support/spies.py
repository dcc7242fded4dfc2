"""Counting calls of a real method (the method still runs): to check that work is
batched or skipped, without replacing the store."""

from __future__ import annotations

from typing import Any


def counted(app: Any, name: str) -> list[int]:
    """Counts calls of one of ``app.recorder``'s methods; ``[n]`` is read after."""
    calls = [0]
    original = getattr(app.recorder, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(app.recorder, name, counting)
    return calls
