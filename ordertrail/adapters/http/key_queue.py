"""Group commit for idempotency keys: the claims of concurrent keyed requests go to the
store in one statement, and their responses in one transaction, from one thread.

Why: every keyed POST claimed its key before running and stored its response after, each
a commit and a hop of the event loop to a thread; in the flash-sale benchmark that was a
quarter of the orders a second the service could take. Requests arrive in bursts (a
batch of orders is acknowledged at once and their clients send the next ones together),
so the claims waiting at any moment are many; one thread takes them all, waits a moment
(``GATHER_SECONDS``) for the rest of a burst, claims them in one statement and answers
each request on its event loop.

What does not change (``IdempotencyStore`` keeps the rules):

- a request runs only once its key is claimed; a key held already is answered by
  ``IdempotencyStore.claim`` (done: the stored response; in progress: wait; another
  request: 422);
- a response is stored after it was sent (as before, a store that fails then leaves the
  key in progress, and the domain's receipts answer a retry);
- a completion queued before a claim of the same key is written before that claim is
  made, so a retry that follows a response finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ordertrail.adapters.http.idempotency import CLAIMS_PER_STATEMENT, IdempotencyStore, Stored

log = logging.getLogger(__name__)

#: How long the thread waits, after the first claim, for the rest of a burst.
GATHER_SECONDS = 0.002

Claimed = tuple[str, str | None, Stored | None]


@dataclass
class _Claim:
    key: str
    fingerprint: str
    answer: Callable[[Claimed | BaseException], None]


class KeyQueue:
    """Claims and completions of idempotency keys, batched by one thread."""

    def __init__(self, store: IdempotencyStore, *, gather_seconds: float = GATHER_SECONDS) -> None:
        self.store = store
        self.gather_seconds = gather_seconds
        self.statements = 0  # claiming statements made (for tests and benchmarks)
        self._claims: list[_Claim] = []
        self._completions: dict[str, Stored] = {}
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="idempotency-keys", daemon=True)
        self._thread.start()

    async def claim(self, key: str, fingerprint: str) -> Claimed:
        """``IdempotencyStore.claim`` for a request on this event loop."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[Claimed] = loop.create_future()

        def answer(outcome: Claimed | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, answered, outcome)

        with self._wakeup:
            if self._closed:
                raise RuntimeError("the idempotency key queue is closed")
            self._claims.append(_Claim(key, fingerprint, answer))
            self._wakeup.notify()
        return await answered

    def complete(self, key: str, response: Stored) -> None:
        """Store a key's response soon (the caller does not wait)."""
        with self._wakeup:
            self._completions[key] = response
            self._wakeup.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._claims and not self._completions and not self._closed:
                    self._wakeup.wait()
                if self._closed and not self._claims and not self._completions:
                    return
            if self.gather_seconds and not self._closed:
                time.sleep(self.gather_seconds)
            with self._wakeup:
                claims, self._claims = self._claims, []
                completions, self._completions = self._completions, {}
            if completions:
                self._complete(completions)
            if claims:
                self._claim(claims)

    def _complete(self, completions: dict[str, Stored]) -> None:
        try:
            self.store.complete_many(completions)
        except Exception as error:
            log.warning("idempotency store: %d responses not stored: %s", len(completions), error)

    def _claim(self, claims: list[_Claim]) -> None:
        first: dict[str, _Claim] = {}
        again: list[_Claim] = []  # the same key twice in one batch: after the first
        for claim in claims:
            if claim.key in first:
                again.append(claim)
            else:
                first[claim.key] = claim
        distinct = list(first.values())
        # One statement per chunk, each answered on its own: a chunk that fails fails
        # only its requests (those of the chunks before it hold their keys and run).
        for start in range(0, len(distinct), CLAIMS_PER_STATEMENT):
            chunk = distinct[start : start + CLAIMS_PER_STATEMENT]
            try:
                self.statements += 1
                claimed = self.store.claim_many([(c.key, c.fingerprint) for c in chunk])
            except Exception as error:
                for claim in chunk:
                    claim.answer(error)
                continue
            for claim in chunk:
                if claim.key in claimed:
                    claim.answer(("new", claim.fingerprint, None))
                else:
                    self._claim_alone(claim)
        for claim in again:
            self._claim_alone(claim)

    def _claim_alone(self, claim: _Claim) -> None:
        try:
            claim.answer(self.store.claim(claim.key, claim.fingerprint))
        except Exception as error:
            claim.answer(error)


def _settle(future: asyncio.Future[Claimed], outcome: Claimed | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
