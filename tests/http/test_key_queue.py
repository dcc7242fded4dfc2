"""Idempotency keys claimed and completed in batches (``KeyQueue``) on SQLite and
PostgreSQL: a burst of claims is one statement, each request still gets the answer the
store's rules give it, and a response queued before a retry's claim is found by it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ordertrail.adapters.http import key_queue
from ordertrail.adapters.http.idempotency import IdempotencyStore, Stored
from ordertrail.adapters.http.key_queue import KeyQueue
from ordertrail.adapters.read_models import read_store
from ordertrail.adapters.settings import Settings

RESPONSE = Stored(201, [["content-type", "application/json"]], "e30=")  # as stored (JSON)


@pytest.fixture
def store(store_settings: Settings) -> Iterator[IdempotencyStore]:
    opened = read_store(store_settings)
    try:
        yield IdempotencyStore(opened)
    finally:
        opened.close()


@pytest.fixture
def keys(store: IdempotencyStore) -> Iterator[KeyQueue]:
    queue = KeyQueue(store, gather_seconds=0.05)
    try:
        yield queue
    finally:
        queue.close()


async def claims(keys: KeyQueue, *pairs: tuple[str, str]) -> list[Any]:
    return list(await asyncio.gather(*(keys.claim(k, f) for k, f in pairs)))


def test_a_burst_of_claims_is_one_statement(keys: KeyQueue) -> None:
    pairs = [(f"key-{n}", f"fp-{n}") for n in range(40)]
    answers = asyncio.run(claims(keys, *pairs))
    assert answers == [("new", f"fp-{n}", None) for n in range(40)]
    assert keys.statements == 1
    # Claimed for good: claiming again finds them held (in progress).
    again = asyncio.run(claims(keys, ("key-3", "fp-3"), ("key-4", "other")))
    assert again == [("in_progress", "fp-3", None), ("in_progress", "fp-4", None)]


def test_one_key_twice_in_a_burst_runs_once(keys: KeyQueue) -> None:
    answers = asyncio.run(claims(keys, ("dup", "fp-a"), ("dup", "fp-a"), ("dup", "fp-b")))
    assert answers[0] == ("new", "fp-a", None)
    # The others find it held by the first: the same request waits, another is refused.
    assert answers[1] == ("in_progress", "fp-a", None)
    assert answers[2] == ("in_progress", "fp-a", None)


def test_a_response_queued_before_a_retry_is_found_by_it(keys: KeyQueue) -> None:
    assert asyncio.run(claims(keys, ("paid", "fp")))[0][0] == "new"

    async def complete_then_retry() -> Any:
        keys.complete("paid", RESPONSE)  # not written yet: queued
        return await keys.claim("paid", "fp")

    assert asyncio.run(complete_then_retry()) == ("done", "fp", RESPONSE)


def test_closing_writes_the_queued_responses(store: IdempotencyStore) -> None:
    queue = KeyQueue(store, gather_seconds=0.05)
    assert asyncio.run(claims(queue, ("late", "fp")))[0][0] == "new"
    queue.complete("late", RESPONSE)
    queue.close()
    assert store.claim("late", "fp") == ("done", "fp", RESPONSE)


def test_a_failing_store_fails_the_claims_it_was_asked(
    keys: KeyQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_: Any) -> set[str]:
        raise ConnectionError("store down")

    monkeypatch.setattr(keys.store, "claim_many", down)

    async def claim() -> list[Any]:
        return list(await asyncio.gather(keys.claim("k1", "f"), return_exceptions=True))

    outcome = asyncio.run(asyncio.wait_for(claim(), 5))
    assert isinstance(outcome[0], ConnectionError)
    monkeypatch.undo()
    assert asyncio.run(claims(keys, ("k1", "f"))) == [("new", "f", None)]  # nothing written


def test_many_responses_are_stored_at_once_each_to_its_key(store: IdempotencyStore) -> None:
    keys = [f"k-{n}" for n in range(5)]
    assert store.claim_many([(k, f"fp-{k}") for k in keys]) == set(keys)
    responses = {
        k: Stored(200 + n, [["etag", f'"{n}"']], f"body-{n}") for n, k in enumerate(keys[:4])
    }
    store.complete_many(responses)
    for k in keys[:4]:
        assert store.claim(k, f"fp-{k}") == ("done", f"fp-{k}", responses[k])
    assert store.claim("k-4", "fp-k-4") == ("in_progress", "fp-k-4", None)  # not completed


def test_a_chunk_that_fails_fails_only_its_own_requests(
    keys: KeyQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(key_queue, "CLAIMS_PER_STATEMENT", 2)
    real = keys.store.claim_many
    calls = [0]

    def second_fails(claims: Any) -> set[str]:
        calls[0] += 1
        if calls[0] == 2:
            raise ConnectionError("store down")
        return real(claims)

    monkeypatch.setattr(keys.store, "claim_many", second_fails)

    async def burst() -> list[Any]:
        claimed = [keys.claim(f"c-{n}", "f") for n in range(5)]
        return list(await asyncio.gather(*claimed, return_exceptions=True))

    answers = asyncio.run(burst())
    assert answers[0] == answers[1] == ("new", "f", None)
    assert isinstance(answers[2], ConnectionError)
    assert isinstance(answers[3], ConnectionError)
    assert answers[4] == ("new", "f", None)
    assert keys.statements == 3
