"""``BatchTx``, the projection batch's transaction, on SQLite and PostgreSQL: held
inserts become one statement per table, and every read model sees the same tables as
with one statement per row — queries and updates see the rows inserted before them, a
table gets its rows in order, and a failing insert fails the batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ordertrail.adapters.read_models import read_store
from ordertrail.adapters.settings import Settings
from ordertrail.projections import store as store_module
from ordertrail.projections.store import ReadStore, Tx

INSERT_A = "INSERT INTO t_a (id, label) VALUES (?, ?)"
INSERT_B = "INSERT INTO t_b (id, n) VALUES (?, ?)"
INSERT_A_IF_NEW = "INSERT INTO t_a (id, label) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"


@pytest.fixture
def store(store_settings: Settings) -> Iterator[ReadStore]:
    opened = read_store(store_settings)
    with opened.transaction() as tx:
        tx.ddl("CREATE TABLE t_a (id {int} PRIMARY KEY, label {text} NOT NULL)")
        tx.ddl("CREATE TABLE t_b (id {int} PRIMARY KEY, n {int} NOT NULL)")
    try:
        yield opened
    finally:
        with opened.transaction() as tx:
            tx.ddl("DROP TABLE t_a")
            tx.ddl("DROP TABLE t_b")
        opened.close()


def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements that reach the database (the real ``Tx.execute`` runs)."""
    statements: list[str] = []
    real = Tx.execute

    def recording(self: Tx, statement: str, params: Any = ()) -> None:
        statements.append(statement)
        real(self, statement, params)

    monkeypatch.setattr(Tx, "execute", recording)
    return statements


def rows(store: ReadStore, table: str) -> list[tuple[Any, ...]]:
    with store.read() as tx:
        return tx.all(f"SELECT * FROM {table} ORDER BY id")


def test_inserts_into_each_table_become_one_statement(
    store: ReadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = sent(monkeypatch)
    with store.batch() as tx:
        for n in range(10):
            tx.execute(INSERT_A, (n, f"a{n}"))
            tx.executemany(INSERT_B, [(2 * n, n), (2 * n + 1, n)])
            tx.executemany(INSERT_B, [])
    assert len(statements) == 2
    assert rows(store, "t_a") == [(n, f"a{n}") for n in range(10)]
    assert rows(store, "t_b") == [(m, m // 2) for m in range(20)]


def test_what_comes_after_sees_what_was_inserted_before(
    store: ReadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.batch() as tx:
        tx.execute(INSERT_A, (1, "one"))
        tx.execute(INSERT_A, (2, "two"))
        assert tx.scalar("SELECT count(*) FROM t_a") == 2
        tx.execute(INSERT_A, (3, "three"))
        assert tx.count("UPDATE t_a SET label = label || '!' WHERE id >= ?", (2,)) == 2
        tx.execute(INSERT_A, (4, "four"))
        tx.execute("DELETE FROM t_a WHERE id = ?", (4,))
    assert rows(store, "t_a") == [(1, "one"), (2, "two!"), (3, "three!")]


def test_a_table_gets_its_rows_in_order(store: ReadStore) -> None:
    with store.batch() as tx:
        tx.execute(INSERT_A_IF_NEW, (1, "first"))
        tx.execute(INSERT_A_IF_NEW, (1, "second"))  # same statement: the first row wins
        tx.execute(INSERT_A, (2, "plain"))
        tx.execute(INSERT_A_IF_NEW, (2, "skipped"))  # after the plain insert: skipped
        tx.execute(INSERT_A_IF_NEW, (3, "kept"))
    assert rows(store, "t_a") == [(1, "first"), (2, "plain"), (3, "kept")]


def test_many_rows_are_cut_into_statements(
    store: ReadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "ROWS_PER_INSERT", 3)
    statements = sent(monkeypatch)
    with store.batch() as tx:
        tx.executemany(INSERT_B, [(m, m) for m in range(8)])
    assert len(statements) == 3
    assert rows(store, "t_b") == [(m, m) for m in range(8)]


def test_a_failing_insert_fails_the_batch(store: ReadStore) -> None:
    def batch() -> None:
        with store.batch() as tx:
            tx.execute(INSERT_B, (1, 1))
            tx.execute(INSERT_A, (7, "seven"))
            tx.execute(INSERT_B, (1, 2))  # held: fails when sent, at the end

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        batch()
    assert rows(store, "t_a") == []
    assert rows(store, "t_b") == []
