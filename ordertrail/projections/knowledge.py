"""The knowledge base as staff search it: the current content and status of every article,
full-text search over published ones, suggestions for an after-sales case, and which cases
each article resolved.

Articles come from the "Knowledge" store, resolutions (``AfterSalesCase.ArticleLinked``)
and the cases' reasons from the "AfterSales" store. Each table is written by one source
only (``kb_articles``, ``kb_article_reasons`` and the SQLite search index by Knowledge;
``kb_cases`` and ``kb_resolutions`` by AfterSales), and counts are joined when queried, so
a resolution projected before its article, or an article before the cases that used it,
gives the same tables as a rebuild.

Search runs on SQLite's FTS5 (``kb_search``, ranked by ``bm25()`` with the title weighted
above tags above body) or on a PostgreSQL ``tsvector`` column (weights A title, B tags,
C body, config ``simple``; GIN index; ``websearch_to_tsquery`` and ``ts_rank``). Only
published articles are in either index. Both accept any user text: a quoted
``"phrase"``, ``-word`` to exclude and ``or`` between alternatives, as on a web search
engine; everything else is a word that must appear.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from ordertrail.domain.aftersales import AfterSalesCase, CaseReason
from ordertrail.domain.knowledge import Article, ArticleStatus
from ordertrail.projections.readmodel import Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx

#: Only the first this many characters of a search text count.
MAX_QUERY_CHARS = 1000
#: At most this many words and phrases of a search text count (SQLite).
MAX_QUERY_TERMS = 64
#: bm25() weights of the FTS5 columns title, body, tags (higher counts more).
BM25_WEIGHTS = (10.0, 1.0, 4.0)

_PUBLISHED = ArticleStatus.PUBLISHED.value


@dataclass(frozen=True)
class ArticleHit:
    """A published article found by ``search`` or ``suggest``.

    ``score`` is the text relevance (higher is better; 0.0 when no text was given or it
    did not match). Its scale is the store's own (bm25 on SQLite, ts_rank on PostgreSQL):
    compare scores within one answer only.
    """

    article_id: UUID
    title: str
    category: str
    tags: tuple[str, ...]
    reasons: tuple[CaseReason, ...]
    resolutions: int
    score: float


@dataclass(frozen=True)
class ArticleResolutions:
    """How many distinct cases an article resolved (and how many of them are closed)."""

    article_id: UUID
    title: str
    status: ArticleStatus
    cases: int
    closed_cases: int


@dataclass(frozen=True)
class ArticleView:
    article_id: UUID
    title: str
    body: str
    tags: tuple[str, ...]
    category: str
    reasons: tuple[CaseReason, ...]
    status: ArticleStatus
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    retired_at: datetime | None
    retired_reason: str | None
    resolved_cases: int
    #: resolved cases per case reason, most frequent first
    resolutions_by_reason: tuple[tuple[CaseReason, int], ...]


_ARTICLE_TOPICS = frozenset(
    {
        Article.Drafted.TOPIC,
        Article.Revised.TOPIC,
        Article.Published.TOPIC,
        Article.Retired.TOPIC,
    }
)
_CASE_TOPICS = frozenset(
    {
        AfterSalesCase.Requested.TOPIC,
        AfterSalesCase.ArticleLinked.TOPIC,
        AfterSalesCase.Closed.TOPIC,
    }
)


class KnowledgeBase(ReadModel):
    name = "knowledge_base"
    sources = ("Knowledge", "AfterSales")
    topics = {"Knowledge": _ARTICLE_TOPICS, "AfterSales": _CASE_TOPICS}

    def tables(self) -> Sequence[str]:
        # kb_search exists on SQLite only; dropping it elsewhere is a no-op.
        return ("kb_articles", "kb_article_reasons", "kb_search", "kb_cases", "kb_resolutions")

    def create(self, tx: Tx) -> None:
        search_vector = ""
        if tx.dialect == "postgres":
            # Generated, so it can never disagree with the content; NULL unless published,
            # so drafts and retired articles are not in the index at all.
            search_vector = (
                ", search_vector tsvector GENERATED ALWAYS AS (CASE WHEN status = 'published'"
                " THEN setweight(to_tsvector('simple', title), 'A')"
                " || setweight(to_tsvector('simple', tags_text), 'B')"
                " || setweight(to_tsvector('simple', body), 'C') END) STORED"
            )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS kb_articles ("
            " article_id {text} PRIMARY KEY, doc_id {int} NOT NULL UNIQUE,"
            " title {text} NOT NULL, body {text} NOT NULL, tags {text} NOT NULL,"
            " tags_text {text} NOT NULL, category {text} NOT NULL, reasons {text} NOT NULL,"
            " status {text} NOT NULL, version {int} NOT NULL, created_at {text} NOT NULL,"
            " updated_at {text} NOT NULL, published_at {text}, retired_at {text},"
            " retired_reason {text}" + search_vector + ")"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS kb_articles_status_category"
            " ON kb_articles (status, category)"
        )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS kb_article_reasons ("
            " reason {text} NOT NULL, article_id {text} NOT NULL,"
            " PRIMARY KEY (reason, article_id))"
        )
        if tx.dialect == "postgres":
            tx.ddl(
                "CREATE INDEX IF NOT EXISTS kb_articles_search"
                " ON kb_articles USING GIN (search_vector)"
            )
        else:
            # rowid = the article's doc_id (the position of its Drafted event), so the
            # index is the same whichever way it was built.
            tx.ddl(
                "CREATE VIRTUAL TABLE IF NOT EXISTS kb_search USING fts5("
                "title, body, tags, tokenize = 'unicode61 remove_diacritics 2')"
            )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS kb_cases ("
            " case_id {text} PRIMARY KEY, reason {text} NOT NULL, closed {bool} NOT NULL,"
            " requested_at {text} NOT NULL, closed_at {text})"
        )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS kb_resolutions ("
            " article_id {text} NOT NULL, case_id {text} NOT NULL, position {int} NOT NULL,"
            " linked_at {text} NOT NULL, PRIMARY KEY (article_id, case_id))"
        )
        tx.ddl("CREATE INDEX IF NOT EXISTS kb_resolutions_case ON kb_resolutions (case_id)")

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        match event:
            case Article.Drafted():
                self._drafted(tx, event, position)
            case Article.Revised():
                self._revised(tx, event)
            case Article.Published():
                _touch(tx, event, "status = ?, published_at = ?", _PUBLISHED, _at(event))
            case Article.Retired():
                _touch(
                    tx,
                    event,
                    "status = ?, retired_at = ?, retired_reason = ?",
                    ArticleStatus.RETIRED.value,
                    _at(event),
                    event.reason,
                )
            case AfterSalesCase.Requested():
                tx.execute(
                    "INSERT INTO kb_cases (case_id, reason, closed, requested_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (case_id) DO NOTHING",
                    (str(event.originator_id), event.reason.value, False, _at(event)),
                )
            case AfterSalesCase.ArticleLinked():
                # Stored even if the article is not (yet) known here: counts are joined
                # when queried, so the order in which the two stores are read never matters.
                tx.execute(
                    "INSERT INTO kb_resolutions (article_id, case_id, position, linked_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (article_id, case_id) DO NOTHING",
                    (str(event.article_id), str(event.originator_id), position.id, _at(event)),
                )
            case AfterSalesCase.Closed():
                tx.execute(
                    "UPDATE kb_cases SET closed = ?, closed_at = ? WHERE case_id = ?",
                    (True, _at(event), str(event.originator_id)),
                )
            case _:
                return
        if isinstance(event, Article.Event):
            _sync_search(tx, str(event.originator_id))

    def _drafted(self, tx: Tx, event: Article.Drafted, position: Position) -> None:
        article_id = str(event.originator_id)
        tx.execute(
            "INSERT INTO kb_articles (article_id, doc_id, title, body, tags, tags_text,"
            " category, reasons, status, version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                article_id,
                position.id,
                event.title,
                event.body,
                _json(event.tags),
                " ".join(event.tags),
                event.category,
                _json(r.value for r in event.reasons),
                ArticleStatus.DRAFT.value,
                event.originator_version,
                _at(event),
                _at(event),
            ),
        )
        _set_reasons(tx, article_id, event.reasons)

    def _revised(self, tx: Tx, event: Article.Revised) -> None:
        _touch(
            tx,
            event,
            "title = ?, body = ?, tags = ?, tags_text = ?, category = ?, reasons = ?",
            event.title,
            event.body,
            _json(event.tags),
            " ".join(event.tags),
            event.category,
            _json(r.value for r in event.reasons),
        )
        _set_reasons(tx, str(event.originator_id), event.reasons)


def _at(event: Article.Event | AfterSalesCase.Event) -> str:
    return event.timestamp.isoformat()


def _json(values: Any) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _touch(tx: Tx, event: Article.Event, assignments: str, *values: object) -> None:
    tx.execute(
        f"UPDATE kb_articles SET {assignments}, version = ?, updated_at = ? WHERE article_id = ?",
        (*values, event.originator_version, _at(event), str(event.originator_id)),
    )


def _set_reasons(tx: Tx, article_id: str, reasons: Sequence[CaseReason]) -> None:
    tx.execute("DELETE FROM kb_article_reasons WHERE article_id = ?", (article_id,))
    tx.executemany(
        "INSERT INTO kb_article_reasons (reason, article_id) VALUES (?, ?)"
        " ON CONFLICT (reason, article_id) DO NOTHING",
        [(reason.value, article_id) for reason in reasons],
    )


def _sync_search(tx: Tx, article_id: str) -> None:
    """SQLite: the article's FTS row holds its current content while it is published."""
    if tx.dialect != "sqlite":
        return  # PostgreSQL: the generated tsvector column follows the row by itself
    row = tx.one(
        "SELECT doc_id, status, title, body, tags_text FROM kb_articles WHERE article_id = ?",
        (article_id,),
    )
    if row is None:
        return
    doc_id, status, title, body, tags_text = row
    tx.execute("DELETE FROM kb_search WHERE rowid = ?", (doc_id,))
    if status == _PUBLISHED:
        tx.execute(
            "INSERT INTO kb_search (rowid, title, body, tags) VALUES (?, ?, ?, ?)",
            (doc_id, title, body, tags_text),
        )


# --- user text -----------------------------------------------------------------------------

_TERM = re.compile(r'-?"[^"]*"?|[^\s"]+')


def clean_text(text: object) -> str:
    """User text that every store accepts: control characters and lone surrogates (which
    neither driver can send) become spaces; only the first ``MAX_QUERY_CHARS`` count."""
    if not isinstance(text, str):
        return ""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text[:MAX_QUERY_CHARS]
    )
    return cleaned.strip()


def _has_token(term: str) -> bool:
    return any(ch.isalnum() for ch in term)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts5_query(text: str) -> str | None:
    """An FTS5 MATCH expression for web-search-style user text, or None if it has no word.

    Every word or phrase is quoted, so nothing the user types is FTS5 syntax; the
    structure (AND between words, ``or``, ``-`` to exclude) is rebuilt here, as
    ``websearch_to_tsquery`` does on PostgreSQL.
    """
    clauses: list[tuple[list[str], list[str]]] = [([], [])]
    terms = 0
    for match in _TERM.finditer(clean_text(text)):
        token = match.group()
        if token.lower() == "or":
            if clauses[-1][0] or clauses[-1][1]:
                clauses.append(([], []))
            continue
        negated = token.startswith("-") and len(token) > 1
        if negated:
            token = token[1:]
        if token.startswith('"'):
            token = token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:]
        if not _has_token(token):
            continue
        positives, negatives = clauses[-1]
        (negatives if negated else positives).append(_quoted(token))
        terms += 1
        if terms >= MAX_QUERY_TERMS:
            break
    expressions = [
        "(" + " AND ".join(positives) + ")" + "".join(f" NOT {n}" for n in negatives)
        for positives, negatives in clauses
        if positives  # FTS5 cannot say "everything but": a clause of exclusions only is dropped
    ]
    if not expressions:
        return None
    return " OR ".join(f"({e})" for e in expressions)


# --- queries -------------------------------------------------------------------------------

_RESOLUTION_COUNTS = "SELECT article_id, COUNT(*) AS n FROM kb_resolutions GROUP BY article_id"
_HIT_COLUMNS = "a.article_id, a.title, a.category, a.tags, a.reasons, COALESCE(r.n, 0)"


def _title_order(tx: Tx) -> str:
    # Code-point order on both stores, whatever the PostgreSQL database's collation.
    return 'a.title COLLATE "C"' if tx.dialect == "postgres" else "a.title"


def _hit(row: tuple[Any, ...], score: float) -> ArticleHit:
    article_id, title, category, tags, reasons, resolutions = row[:6]
    return ArticleHit(
        article_id=UUID(article_id),
        title=title,
        category=category,
        tags=tuple(json.loads(tags)),
        reasons=tuple(CaseReason(r) for r in json.loads(reasons)),
        resolutions=int(resolutions),
        score=float(score or 0.0),
    )


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class KnowledgeBaseQueries:
    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def search(
        self, text: str, *, category: str | None = None, limit: int = 20
    ) -> list[ArticleHit]:
        """Published articles matching ``text``, most relevant first (a title match
        counts more than a tag match, which counts more than a body match).

        Any text is safe: what is not a word is ignored, and text without a word finds
        nothing."""
        limit = int(limit)
        cleaned = clean_text(text)
        # Text with no word that must appear (empty, punctuation, only "-excluded" words)
        # finds nothing on either store (websearch_to_tsquery would match all but those).
        match = fts5_query(cleaned)
        if limit <= 0 or match is None:
            return []
        with self.store.read() as tx:
            params: list[Any] = []
            if tx.dialect == "postgres":
                sql = (
                    f"SELECT {_HIT_COLUMNS},"
                    " ts_rank(a.search_vector, websearch_to_tsquery('simple', ?)) AS score"
                    f" FROM kb_articles a LEFT JOIN ({_RESOLUTION_COUNTS}) r"
                    " ON r.article_id = a.article_id"
                    " WHERE a.status = 'published'"
                    " AND a.search_vector @@ websearch_to_tsquery('simple', ?)"
                )
                params += [cleaned, cleaned]
            else:
                weights = ", ".join(str(w) for w in BM25_WEIGHTS)
                sql = (
                    f"SELECT {_HIT_COLUMNS}, m.score"
                    f" FROM (SELECT rowid AS doc_id, -bm25(kb_search, {weights}) AS score"
                    " FROM kb_search WHERE kb_search MATCH ?) m"
                    " JOIN kb_articles a ON a.doc_id = m.doc_id"
                    f" LEFT JOIN ({_RESOLUTION_COUNTS}) r ON r.article_id = a.article_id"
                    " WHERE a.status = 'published'"
                )
                params.append(match)
            if category is not None:
                sql += " AND a.category = ?"
                params.append(category)
            sql += f" ORDER BY score DESC, {_title_order(tx)}, a.article_id LIMIT ?"
            params.append(limit)
            rows = tx.all(sql, params)
        return [_hit(row, row[6]) for row in rows]

    def suggest(
        self,
        reason: CaseReason | str,
        categories: Sequence[str],
        text: str = "",
        limit: int = 5,
    ) -> list[ArticleHit]:
        """Published articles for a case: those that answer its reason and/or cover one
        of its products' categories. Both first, then reason only, then category only;
        within each, more resolutions first, then relevance to ``text`` (if given), then
        title. A reason that is not a ``CaseReason`` matches no article."""
        limit = int(limit)
        if limit <= 0:
            return []
        reason_value = reason.value if isinstance(reason, CaseReason) else str(reason)
        if isinstance(categories, str):
            categories = (categories,)
        wanted = list(dict.fromkeys(c for c in categories if isinstance(c, str) and c))
        cleaned = clean_text(text)
        match = fts5_query(cleaned)  # None: no word to rank by (as in ``search``)
        with self.store.read() as tx:
            params: list[Any] = [reason_value]
            if wanted:
                category_match = (
                    f"CASE WHEN a.category IN ({', '.join('?' * len(wanted))}) THEN 1 ELSE 0 END"
                )
                params += wanted
            else:
                category_match = "0"
            text_join = ""
            text_score = "0.0"
            if match is not None and tx.dialect == "postgres":
                text_score = (
                    "CASE WHEN a.search_vector @@ tq.q THEN ts_rank(a.search_vector, tq.q)"
                    " ELSE 0.0 END"
                )
                text_join = " CROSS JOIN (SELECT websearch_to_tsquery('simple', ?) AS q) tq"
                params.append(cleaned)
            elif match is not None:
                weights = ", ".join(str(w) for w in BM25_WEIGHTS)
                text_score = "COALESCE(m.score, 0.0)"
                text_join = (
                    f" LEFT JOIN (SELECT rowid AS doc_id, -bm25(kb_search, {weights}) AS score"
                    " FROM kb_search WHERE kb_search MATCH ?) m ON m.doc_id = a.doc_id"
                )
                params.append(match)
            sql = (
                "WITH cand AS (SELECT a.article_id, a.title, a.category, a.tags, a.reasons,"
                " CASE WHEN EXISTS (SELECT 1 FROM kb_article_reasons ar"
                " WHERE ar.article_id = a.article_id AND ar.reason = ?) THEN 1 ELSE 0 END"
                f" AS reason_match, {category_match} AS category_match,"
                f" {text_score} AS score"
                f" FROM kb_articles a{text_join} WHERE a.status = 'published')"
                f" SELECT {_HIT_COLUMNS}, a.score FROM cand a"
                f" LEFT JOIN ({_RESOLUTION_COUNTS}) r ON r.article_id = a.article_id"
                " WHERE a.reason_match = 1 OR a.category_match = 1"
                " ORDER BY a.reason_match DESC, a.category_match DESC,"
                f" COALESCE(r.n, 0) DESC, a.score DESC, {_title_order(tx)}, a.article_id"
                " LIMIT ?"
            )
            params.append(limit)
            rows = tx.all(sql, params)
        return [_hit(row, row[6]) for row in rows]

    def top_resolving(self, limit: int = 10) -> list[ArticleResolutions]:
        """Articles (whatever their status) by how many distinct cases they resolved."""
        limit = int(limit)
        if limit <= 0:
            return []
        with self.store.read() as tx:
            rows = tx.all(
                "SELECT a.article_id, a.title, a.status, COUNT(*) AS cases,"
                " SUM(CASE WHEN c.closed THEN 1 ELSE 0 END)"
                " FROM kb_resolutions res JOIN kb_articles a ON a.article_id = res.article_id"
                " LEFT JOIN kb_cases c ON c.case_id = res.case_id"
                " GROUP BY a.article_id, a.title, a.status"
                f" ORDER BY cases DESC, {_title_order(tx)}, a.article_id LIMIT ?",
                (limit,),
            )
        return [
            ArticleResolutions(UUID(aid), title, ArticleStatus(status), int(n), int(closed or 0))
            for aid, title, status, n, closed in rows
        ]

    def article(self, article_id: UUID | str) -> ArticleView | None:
        try:
            key = str(article_id if isinstance(article_id, UUID) else UUID(str(article_id)))
        except ValueError:
            return None
        with self.store.read() as tx:
            row = tx.one(
                "SELECT title, body, tags, category, reasons, status, version, created_at,"
                " updated_at, published_at, retired_at, retired_reason"
                " FROM kb_articles WHERE article_id = ?",
                (key,),
            )
            if row is None:
                return None
            by_reason = tx.all(
                "SELECT c.reason, COUNT(*) AS n FROM kb_resolutions res"
                " JOIN kb_cases c ON c.case_id = res.case_id WHERE res.article_id = ?"
                " GROUP BY c.reason ORDER BY n DESC, c.reason",
                (key,),
            )
            resolved = tx.scalar("SELECT COUNT(*) FROM kb_resolutions WHERE article_id = ?", (key,))
        (title, body, tags, category, reasons, status, version, created, updated,
         published, retired, retired_reason) = row  # fmt: skip
        return ArticleView(
            article_id=UUID(key),
            title=title,
            body=body,
            tags=tuple(json.loads(tags)),
            category=category,
            reasons=tuple(CaseReason(r) for r in json.loads(reasons)),
            status=ArticleStatus(status),
            version=int(version),
            created_at=datetime.fromisoformat(created),
            updated_at=datetime.fromisoformat(updated),
            published_at=_when(published),
            retired_at=_when(retired),
            retired_reason=retired_reason,
            resolved_cases=int(resolved or 0),
            resolutions_by_reason=tuple((CaseReason(r), int(n)) for r, n in by_reason),
        )
