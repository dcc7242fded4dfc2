"""Summarise a py-spy ``--idle -f raw`` recording of the API workers (collapsed stacks).

    python benchmarks/profile_summary.py PROFILE.txt

Every sample is one thread at one moment. Threads with nothing to do (idle I/O pool
threads, the batch writer waiting for commands, the event loop in ``select``) are counted
apart; the rest is split into what a request or the writer was waiting for or computing.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable

Rule = tuple[str, Callable[[str, str], bool]]


def _has(*parts: str) -> Callable[[str, str], bool]:
    return lambda stack, _leaf: all(p in stack for p in parts)


def _pg_wait(stack: str, leaf: str) -> bool:
    return "psycopg" in leaf and ("wait" in leaf.lower() or "waiting" in leaf)


IDLE: list[Rule] = [
    ("uvicorn supervisor, multiprocessing resource tracker",
     lambda s, leaf: "multiprocessing/connection.py" in leaf or "resource_tracker.py" in leaf
     or ("uvicorn/supervisors" in s and "asyncio/runners.py" not in s)),
    ("event loop inside uvloop's C code (epoll wait, socket I/O)",
     lambda _s, leaf: leaf.startswith("Runner.run (asyncio/runners.py")),
    ("batch writer idle (no commands queued)",
     lambda s, _l: "PlacementBatcher._run " in s and "PlacementBatcher._place" not in s),
    ("batch recorder idle", lambda s, _l: "PlacementBatcher._run_recorder" in s
     and "PlacementBatcher._record" not in s),
    ("I/O pool thread idle", lambda s, _l: "_worker (concurrent/futures/thread.py" in s
     and "ordertrail/" not in s and "idempotency" not in s and "litestar" not in s),
    ("event loop waiting (select)", lambda s, leaf: "select (selectors.py" in leaf
     or ("_run_once" in s and "select" in leaf)),
    ("other idle thread", lambda s, leaf: ("wait (threading.py" in leaf or "sleep" in leaf)
     and "ordertrail/" not in s),
]

BUSY: list[Rule] = [
    ("request waiting for its batch to commit",
     lambda s, _l: "PlacementBatcher.place " in s and "result (concurrent/futures/_base.py" in s),
    ("writer: inventory transaction (PostgreSQL)",
     lambda s, leaf: "PlacementBatcher._reserve" in s and _pg_wait(s, leaf)),
    ("writer: per-batch reads, existing orders and catalog (PostgreSQL)",
     lambda s, leaf: ("PlacementBatcher._not_placed" in s
                      or "PlacementBatcher._with_current_products" in s) and _pg_wait(s, leaf)),
    ("recorder: orders transaction (PostgreSQL)",
     lambda s, leaf: "PlacementBatcher._record" in s and _pg_wait(s, leaf)),
    ("writer/recorder: CPU (deciding, encoding)",
     lambda s, _l: "PlacementBatcher._place" in s or "PlacementBatcher._record" in s
     or "PlacementBatcher._catch_up" in s),
    ("request: before the batch, PostgreSQL (catalog if not cached, stock reads)",
     lambda s, leaf: "PlacementBatcher.submit" in s and _pg_wait(s, leaf)),
    ("request: before the batch, deepcopy (library cache)",
     lambda s, _l: "PlacementBatcher.submit" in s and "deepcopy" in s),
    ("request: before the batch, CPU (rules, replay)",
     lambda s, _l: "PlacementBatcher.submit" in s),
    ("idempotency store: PostgreSQL",
     lambda s, leaf: "idempotency" in s and _pg_wait(s, leaf)),
    ("idempotency store: waiting for a pooled read-store connection",
     _has("idempotency", "ConnectionPool.getconn")),
    ("idempotency store: CPU", _has("idempotency")),
    ("waiting for a pooled connection (other)", _has("getconn")),
    ("other PostgreSQL waits", _pg_wait),
    ("JWT", lambda s, _l: "jwt" in s.lower()),
    ("JSON / msgspec", lambda s, leaf: "msgspec" in leaf or "json" in leaf.lower()),
    ("Litestar / uvicorn / asyncio", lambda s, leaf: any(
        k in leaf for k in ("litestar", "uvicorn", "asyncio", "h11", "httptools"))),
    ("other ordertrail code", lambda s, _l: "ordertrail/" in s),
    ("other", lambda _s, _l: True),
]


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
    return frames, int(count)


def summarise(raw: str, top: int = 12) -> str:
    idle: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            frames, count = _frames(line)
        except ValueError:
            continue
        if not frames:
            continue
        total += count
        stack, leaf = ";".join(frames), frames[-1]
        name = next((n for n, rule in IDLE if rule(stack, leaf)), None)
        if name is not None:
            idle[name] += count
            continue
        busy[next(n for n, rule in BUSY if rule(stack, leaf))] += count
        func, _, where = leaf.partition(" (")
        leaves[f"{func} ({where.rsplit('/', 1)[-1]}"] += count
    working = sum(busy.values())
    out = [f"py-spy samples (threads x time): {total:,}; idle threads {sum(idle.values()):,}, "
           f"working {working:,}", "", "Idle (not counted below):"]
    out += [f"  {n:<55} {c:>8,}" for n, c in idle.most_common()]
    out += ["", "Working samples (share of working):"]
    out += [f"  {n:<70} {c / working:6.1%}" for n, c in busy.most_common()] if working else []
    out += ["", f"Top {top} leaf frames of working samples:"]
    if working:
        out += [f"  {n[:90]:<90} {c / working:6.1%}" for n, c in leaves.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        print(summarise(handle.read()))
