"""``Idempotency-Key`` for every POST: a retry gets the original response back, the same
key with a different request is refused (422), and two concurrent requests with one key
do the work once (the second waits for the first and gets its response).

Responses are kept in the read store. The command a keyed request runs gets an id derived
from the caller and the key, so the domain's own receipts agree with this cache — which
is why the cache can be purged after a retention period (``purge``): a retry that comes
later still runs the same command id, and the domain answers with its recorded outcome
instead of acting twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4, uuid5

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ordertrail.adapters.http.key_queue import KeyQueue

from ordertrail.domain.ids import NAMESPACE
from ordertrail.projections.store import ReadStore, Tx

log = logging.getLogger(__name__)
ASGIMessage = Any  # litestar's message TypedDicts are too narrow for hand-built ones
HEADER = b"idempotency-key"
_KEY = re.compile(rb"[\x21-\x7e]{1,255}")
_COMMANDS = uuid5(NAMESPACE, "http.idempotency-key")
STALE_AFTER = timedelta(minutes=2)
WAIT_FOR = 30.0
KEPT_HEADERS = (b"content-type", b"etag", b"location", b"x-ordertrail-position")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS http_idempotency ("
    " key {text} PRIMARY KEY, fingerprint {text} NOT NULL, state {text} NOT NULL,"
    " status {int}, headers {text}, body {text}, created_at {text} NOT NULL)"
)


class Stored(msgspec.Struct):
    status: int
    headers: list[tuple[str, str]]
    body: str  # base64


def command_id(scope: Scope) -> UUID:
    """The id of the command a request runs: from its idempotency key, else a new one."""
    found = scope.get("state", {}).get("ordertrail.command_id")
    return found if isinstance(found, UUID) else uuid4()


#: Keys per claiming INSERT (three parameters each; SQLite allows 32,766 per statement).
CLAIMS_PER_STATEMENT = 500

CLAIM = (
    "INSERT INTO http_idempotency (key, fingerprint, state, created_at)"
    " VALUES (?, ?, 'in_progress', ?) ON CONFLICT (key) DO NOTHING"
)


class IdempotencyStore:
    def __init__(self, store: ReadStore) -> None:
        self.store = store
        with store.transaction() as tx:
            tx.ddl(SCHEMA)
            tx.ddl(
                "CREATE INDEX IF NOT EXISTS http_idempotency_created"
                " ON http_idempotency (created_at)"
            )

    def purge(self, before: datetime) -> int:
        """Forget the keys first used before ``before``; returns how many."""
        with self.store.transaction() as tx:
            return tx.count(
                "DELETE FROM http_idempotency WHERE created_at < ?",
                (before.astimezone(UTC).isoformat(),),
            )

    def claim(self, key: str, fingerprint: str) -> tuple[str, str | None, Stored | None]:
        """("new", …) when this request may go ahead; otherwise the state, the
        fingerprint and (when done) the stored response of the request that holds the key."""
        now = datetime.now(UTC)
        # New keys are claimed a burst at a time (``claim_many``); a key comes here when it
        # was held then, so the insert is tried inside the transaction that reads it.
        with self.store.transaction() as tx:
            inserted = tx.count(CLAIM, (key, fingerprint, now.isoformat()))
            if inserted:
                return "new", fingerprint, None
            row = tx.one(
                "SELECT fingerprint, state, status, headers, body, created_at"
                " FROM http_idempotency WHERE key = ?",
                (key,),
            )
            assert row is not None
            held_by, state, status, headers, body, created = row
            if state == "in_progress" and datetime.fromisoformat(created) < now - STALE_AFTER:
                # Whoever held it died: take it over.
                _take_over(tx, key, fingerprint, now)
                return "new", fingerprint, None
        if state == "done":
            return "done", held_by, Stored(status, msgspec.json.decode(headers), body)
        return "in_progress", held_by, None

    def claim_many(self, claims: Sequence[tuple[str, str]]) -> set[str]:
        """Claim many distinct keys ((key, fingerprint) each) in one statement per
        ``CLAIMS_PER_STATEMENT``; returns those claimed now (the others were held
        already: ``claim`` tells by whom)."""
        now = datetime.now(UTC).isoformat()
        claimed: set[str] = set()
        for start in range(0, len(claims), CLAIMS_PER_STATEMENT):
            chunk = claims[start : start + CLAIMS_PER_STATEMENT]
            values = ", ".join(["(?, ?, 'in_progress', ?)"] * len(chunk))
            with self.store.single() as tx:
                rows = tx.all(
                    "INSERT INTO http_idempotency (key, fingerprint, state, created_at)"
                    f" VALUES {values} ON CONFLICT (key) DO NOTHING RETURNING key",
                    tuple(v for key, fingerprint in chunk for v in (key, fingerprint, now)),
                )
            claimed.update(str(row[0]) for row in rows)
        return claimed

    def complete_many(self, responses: Mapping[str, Stored]) -> None:
        """Store the responses of many keys in one transaction (on PostgreSQL in one
        statement per ``CLAIMS_PER_STATEMENT`` keys)."""
        rows = [
            (key, response.status, msgspec.json.encode(response.headers).decode(), response.body)
            for key, response in responses.items()
        ]
        with self.store.transaction() as tx:
            if tx.dialect != "postgres":
                tx.executemany(
                    "UPDATE http_idempotency SET state = 'done', status = ?, headers = ?,"
                    " body = ? WHERE key = ?",
                    [(status, headers, body, key) for key, status, headers, body in rows],
                )
                return
            for start in range(0, len(rows), CLAIMS_PER_STATEMENT):
                chunk = rows[start : start + CLAIMS_PER_STATEMENT]
                values = ", ".join(["(?, ?::bigint, ?, ?)"] * len(chunk))
                tx.execute(
                    "UPDATE http_idempotency AS h SET state = 'done', status = v.status,"
                    " headers = v.headers, body = v.body"
                    f" FROM (VALUES {values}) AS v (key, status, headers, body)"
                    " WHERE h.key = v.key",
                    tuple(value for row in chunk for value in row),
                )

    def release(self, key: str) -> None:
        """Forget a key whose request failed in a way worth retrying (5xx, 429)."""
        with self.store.single() as tx:
            tx.execute(
                "DELETE FROM http_idempotency WHERE key = ? AND state = 'in_progress'", (key,)
            )


def _take_over(tx: Tx, key: str, fingerprint: str, now: datetime) -> None:
    tx.execute(
        "UPDATE http_idempotency SET fingerprint = ?, created_at = ? WHERE key = ?",
        (fingerprint, now.isoformat(), key),
    )


class IdempotencyMiddleware:
    """ASGI middleware for POST requests that carry an ``Idempotency-Key``."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Callable[[], KeyQueue],
        problem: Callable[[int, str, str], bytes],
        max_body: int,
    ) -> None:
        self.app = app
        self.keys = keys
        self.problem = problem
        self.max_body = max_body

    async def __call__(self, asgi_scope: Scope, receive: Receive, send: Send) -> None:
        scope: dict[str, Any] = asgi_scope  # type: ignore[assignment]
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(asgi_scope, receive, send)
            return
        raw_key = dict(scope["headers"]).get(HEADER)
        if raw_key is None:
            await self.app(asgi_scope, receive, send)
            return
        if not _KEY.fullmatch(raw_key):
            await self._send_problem(
                send,
                400,
                "http.invalid_idempotency_key",
                "Idempotency-Key is 1 to 255 visible ASCII characters",
            )
            return
        body = await _read_body(receive, self.max_body)
        if body is None:
            await self._send_problem(
                send, 413, "http.body_too_large", f"the body is larger than {self.max_body} bytes"
            )
            return
        user = scope.get("user")
        caller = getattr(user, "key", "anonymous")
        key = hashlib.sha256(f"{caller}\x1f".encode() + raw_key).hexdigest()
        fingerprint = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\x00" + body
        ).hexdigest()
        scope.setdefault("state", {})["ordertrail.command_id"] = uuid5(_COMMANDS, key)
        keys = self.keys()
        deadline = time.monotonic() + WAIT_FOR
        while True:
            state, held_by, stored = await keys.claim(key, fingerprint)
            if held_by != fingerprint:
                await self._send_problem(
                    send,
                    422,
                    "http.idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                )
                return
            if state == "done" and stored is not None:
                await _replay(send, stored)
                return
            if state == "new":
                break
            if time.monotonic() > deadline:
                await self._send_problem(
                    send,
                    409,
                    "http.idempotency_in_progress",
                    "a request with this key is still being handled",
                )
                return
            await asyncio.sleep(0.05)
        await self._run(asgi_scope, body, send, keys, key)

    async def _run(self, scope: Scope, body: bytes, send: Send, keys: KeyQueue, key: str) -> None:
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
        delivered = False

        async def replayed_receive() -> Any:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capturing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in message.get("headers", [])
                    if name.lower() in KEPT_HEADERS
                ]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replayed_receive, capturing_send)
        except BaseException:
            await _after_response(keys.store.release, key)
            raise
        status = int(captured["status"])
        if status >= 500 or status == 429:
            await _after_response(keys.store.release, key)
        else:
            stored = Stored(
                status, captured["headers"], base64.b64encode(captured["body"]).decode()
            )
            keys.complete(key, stored)

    async def _send_problem(self, send: Send, status: int, code: str, detail: str) -> None:
        body = self.problem(status, code, detail)
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await _send_response(send, status, headers, body)


async def _after_response(action: Callable[..., None], *args: Any) -> None:
    """Book-keeping once the response is on its way: if the store fails now (it is
    restarting), the client already has its answer. A key left ``in_progress`` is
    taken over after ``STALE_AFTER``, and a retry runs the same command id, which the
    domain's receipts answer, so nothing is done twice."""
    try:
        await asyncio.to_thread(action, *args)
    except Exception as error:
        log.warning("idempotency store: %s failed after the response: %s", action.__name__, error)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _replay(send: Send, stored: Stored) -> None:
    body = base64.b64decode(stored.body)
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in stored.headers]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await _send_response(send, stored.status, headers, body)


async def _send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    start: ASGIMessage = {"type": "http.response.start", "status": status, "headers": headers}
    chunk: ASGIMessage = {"type": "http.response.body", "body": body}
    await send(start)
    await send(chunk)
