"""The knowledge-base read model: full-text search over published articles (FTS5 on
SQLite, tsvector on PostgreSQL), suggestions for a case, the articles that resolved most
cases, and an incremental build that always equals a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain.aftersales import AfterSalesCase, CaseReason
from ordertrail.domain.errors import DomainError
from ordertrail.domain.knowledge import ArticleStatus
from ordertrail.projections.knowledge import (
    ArticleHit,
    KnowledgeBase,
    KnowledgeBaseQueries,
    clean_text,
    fts5_query,
)
from tests.projections.knowledge_support import (
    KB,
    article_id_for,
    knowledge_base,
    table_contents,
)
from tests.projections.support import empty_store_like
from tests.support.clock import FakeClock

QUALITY = CaseReason.QUALITY_PROBLEM
WRONG = CaseReason.WRONG_ITEM
MISSING = CaseReason.MISSING_ITEM

HOSTILE = [
    "",
    "   ",
    "'",
    '"',
    "'\"",
    '"unterminated phrase',
    "AND OR NOT",
    "NOT teapot",
    "teapot AND",
    "OR",
    "*",
    "tea*",
    ")",
    "((teapot",
    "teapot)",
    "NEAR(teapot lid, 2)",
    "title:teapot",
    "{title body}: teapot",
    "^teapot",
    "- -- -teapot",
    "!teapot & | <-> :*",
    "'; DROP TABLE kb_articles; --",
    "teapot' OR '1'='1",
    "%s %(x)s ? ?? $1",
    "\\",
    "\x00teapot\x00",
    "\ud800 lone surrogate",
    "😀🫖🍵",
    "茶壶 破损",
    "x" * 5_000,
    "teapot " * 1_000,
    "é" * 5_000,
    "茶" * 5_000,
]


@pytest.fixture
def kb(ot: Ordertrail, store_settings: Settings) -> Iterator[KB]:
    with knowledge_base(ot, store_settings) as harness:
        yield harness


def titles(hits: list[ArticleHit]) -> list[str]:
    return [hit.title for hit in hits]


@pytest.fixture
def library(kb: KB) -> dict[str, UUID]:
    """Three published articles, a draft and a retired one."""
    made = {
        "lid": kb.draft(
            "Teapot lid cracked in transit",
            "Offer a replacement lid or a partial refund; no need to send the pot back.",
            tags=("glassware", "breakage"),
            category="teaware",
            reasons=(QUALITY,),
        ),
        "box": kb.draft(
            "Packaging guidelines",
            "A cracked teapot usually means the box was crushed: ask for a photograph.",
            tags=("shipping",),
            category="teaware",
        ),
        "oolong": kb.draft(
            "Oolong tasting notes",
            "Roasted oolong tastes of stone fruit; a customer calling it burnt is normal.",
            tags=("oolong", "brewing"),
            category="tea",
            reasons=(CaseReason.NOT_AS_DESCRIBED,),
        ),
        "draft": kb.draft(
            "Teapot spout drips",
            "Unfinished: teapot spouts.",
            category="teaware",
            publish=False,
        ),
        "retired": kb.draft(
            "Old teapot returns policy",
            "Teapots could be returned within 7 days.",
            category="teaware",
        ),
    }
    kb.retire(made["retired"], "policy changed")
    kb.run()
    return made


# --- search ----------------------------------------------------------------------------------


def test_search_finds_published_articles_by_title_body_and_tags(
    kb: KB, library: dict[str, UUID]
) -> None:
    q = kb.queries
    assert titles(q.search("oolong")) == ["Oolong tasting notes"]  # title, tag and body
    assert titles(q.search("glassware")) == ["Teapot lid cracked in transit"]  # tag only
    assert titles(q.search("photograph")) == ["Packaging guidelines"]  # body only
    assert titles(q.search("STONE Fruit")) == ["Oolong tasting notes"]  # any case
    assert q.search("stone teapot") == []  # every word must appear
    assert q.search("nothing-like-this") == []
    hit = q.search("glassware")[0]
    assert hit.article_id == library["lid"]
    assert hit.category == "teaware"
    assert hit.tags == ("glassware", "breakage")
    assert hit.reasons == (QUALITY,)
    assert hit.score > 0


def test_a_title_match_ranks_above_a_body_only_match(kb: KB, library: dict[str, UUID]) -> None:
    assert titles(kb.queries.search("teapot")) == [
        "Teapot lid cracked in transit",
        "Packaging guidelines",
    ]
    assert titles(kb.queries.search("cracked")) == [
        "Teapot lid cracked in transit",
        "Packaging guidelines",
    ]
    hits = kb.queries.search("teapot")
    assert hits[0].score > hits[1].score


def test_search_filters_by_category_and_limits(kb: KB, library: dict[str, UUID]) -> None:
    q = kb.queries
    assert titles(q.search("teapot", category="teaware")) == [
        "Teapot lid cracked in transit",
        "Packaging guidelines",
    ]
    assert q.search("teapot", category="tea") == []
    assert titles(q.search("customer", category="tea")) == ["Oolong tasting notes"]
    assert titles(q.search("teapot", limit=1)) == ["Teapot lid cracked in transit"]
    assert q.search("teapot", limit=0) == []


def test_drafts_and_retired_articles_are_not_found(kb: KB, library: dict[str, UUID]) -> None:
    q = kb.queries
    assert q.search("spout") == []  # the draft
    assert q.search("policy") == []  # retired
    kb.publish(library["draft"])
    kb.retire(library["lid"])
    kb.run()
    assert titles(q.search("spout")) == ["Teapot spout drips"]
    assert titles(q.search("teapot")) == ["Teapot spout drips", "Packaging guidelines"]
    assert q.search("glassware") == []


def test_search_follows_revisions(kb: KB, library: dict[str, UUID]) -> None:
    kb.revise(
        library["oolong"],
        "Dark roast oolong",
        "Charcoal roasting gives a smoky cup.",
        tags=("roast",),
        category="tea",
    )
    kb.run()
    q = kb.queries
    assert q.search("tasting") == []
    assert q.search("fruit") == []
    assert q.search("brewing") == []
    assert titles(q.search("smoky")) == ["Dark roast oolong"]
    assert titles(q.search("roast")) == ["Dark roast oolong"]
    # a revised draft is found with its latest content once published
    kb.revise(library["draft"], "Dripping spout", "Pour slowly.", category="teaware")
    kb.publish(library["draft"])
    kb.run()
    assert titles(q.search("slowly")) == ["Dripping spout"]
    assert q.search("unfinished") == []


def test_web_search_syntax_means_the_same_on_both_stores(kb: KB, library: dict[str, UUID]) -> None:
    q = kb.queries
    assert titles(q.search('"box was crushed"')) == ["Packaging guidelines"]
    assert q.search('"crushed box"') == []  # a phrase keeps its order
    assert titles(q.search("teapot -photograph")) == ["Teapot lid cracked in transit"]
    assert sorted(titles(q.search("glassware or oolong"))) == [
        "Oolong tasting notes",
        "Teapot lid cracked in transit",
    ]


def test_hostile_text_is_just_text(kb: KB, library: dict[str, UUID]) -> None:
    q = kb.queries
    for text in HOSTILE:
        assert isinstance(q.search(text), list), repr(text[:40])
        assert isinstance(q.search(text, category="teaware"), list), repr(text[:40])
        assert isinstance(q.suggest(QUALITY, ["teaware"], text), list), repr(text[:40])
    assert titles(q.search("teapot " * 1_000)) == titles(q.search("teapot"))


def test_text_without_words_finds_nothing(kb: KB, library: dict[str, UUID]) -> None:
    q = kb.queries
    for text in ("", "   ", "*", '"', ")", "😀", "- -", "\x00", "-teapot", "-teapot or -lid"):
        assert q.search(text) == [], text
    assert [h.score for h in q.suggest(QUALITY, ["teaware"], "-teapot")] == [0.0, 0.0]
    assert titles(q.search("\x00teapot\x00")) == titles(q.search("teapot"))
    assert titles(q.search("teapot)")) == titles(q.search("teapot"))


def test_any_text_searches_without_error(kb: KB, library: dict[str, UUID]) -> None:
    q = kb.queries

    @settings(max_examples=40, deadline=None)
    @given(text=st.text())
    @example(text="x" * 5_000)
    @example(text='" OR "')
    def search_anything(text: str) -> None:
        assert isinstance(q.search(text), list)
        assert isinstance(q.suggest(WRONG, ["teaware"], text=text), list)

    search_anything()


def test_the_fts5_query_quotes_every_term() -> None:
    assert fts5_query("teapot lid") == '(("teapot" AND "lid"))'
    assert fts5_query('say "hi there" -no or x"y') == (
        '(("say" AND "hi there") NOT "no") OR (("x" AND "y"))'
    )
    assert fts5_query('a"b') == '(("a" AND "b"))'
    assert fts5_query("NEAR(a b)") == '(("NEAR(a" AND "b)"))'
    assert fts5_query("-only -negative") is None
    assert fts5_query("* ) (") is None
    assert clean_text("a\x00b\ud800c") == "a b c"


# --- suggest ---------------------------------------------------------------------------------


def test_suggest_orders_both_matches_then_reason_then_category(kb: KB) -> None:
    both = kb.draft("Both", "Cracked teaware.", category="teaware", reasons=(QUALITY,))
    reason_only = kb.draft(
        "Reason only", "Any quality problem.", category="tea", reasons=(QUALITY, WRONG)
    )
    category_only = kb.draft("Category only", "Teaware care.", category="teaware")
    kb.draft("Unrelated", "Missing parcels.", category="tea", reasons=(MISSING,))
    kb.draft("Draft both", "Not yet.", category="teaware", reasons=(QUALITY,), publish=False)
    retired = kb.draft("Retired both", "Gone.", category="teaware", reasons=(QUALITY,))
    kb.retire(retired)
    kb.run()
    suggested = kb.queries.suggest(QUALITY, ["teaware", "cups"])
    assert titles(suggested) == ["Both", "Reason only", "Category only"]
    assert [h.article_id for h in suggested] == [both, reason_only, category_only]
    assert titles(kb.queries.suggest("quality_problem", ["teaware"])) == titles(suggested)
    assert titles(kb.queries.suggest(QUALITY, ["teaware"], limit=2)) == ["Both", "Reason only"]
    assert titles(kb.queries.suggest(QUALITY, [])) == ["Both", "Reason only"]
    assert titles(kb.queries.suggest(MISSING, ["cups"])) == ["Unrelated"]
    assert titles(kb.queries.suggest("no_such_reason", ["teaware"])) == [
        "Both",
        "Category only",
    ]
    assert kb.queries.suggest(CaseReason.CHANGED_MIND, ["cups"]) == []
    assert kb.queries.suggest(QUALITY, ["teaware"], limit=0) == []


def test_suggest_ranks_by_resolutions_then_text_then_title(kb: KB) -> None:
    def article(title: str, body: str) -> UUID:
        return kb.draft(title, body, category="teaware", reasons=(QUALITY,))

    a = article("Alpha", "Handles break.")
    article("Bravo", "Lids crack in the cold.")
    article("Charlie", "Lids chip; lids crack.")
    d = article("Delta", "Glaze fades.")
    kb.run()
    assert titles(kb.queries.suggest(QUALITY, ["teaware"])) == [
        "Alpha",
        "Bravo",
        "Charlie",
        "Delta",
    ]  # no resolutions, no text: by title
    assert titles(kb.queries.suggest(QUALITY, ["teaware"], "lids crack")) == [
        "Charlie",
        "Bravo",
        "Alpha",
        "Delta",
    ]  # text relevance breaks the tie; the rest by title
    for _ in range(2):
        kb.link(kb.open_case(QUALITY), d)
    kb.link(kb.open_case(QUALITY), a)
    kb.run()
    hits = kb.queries.suggest(QUALITY, ["teaware"], "lids crack")
    assert titles(hits) == ["Delta", "Alpha", "Charlie", "Bravo"]
    assert [h.resolutions for h in hits] == [2, 1, 0, 0]
    assert hits[2].score > hits[3].score > 0 == hits[0].score
    # a category-only article never outranks a reason match, however often it resolved
    e = kb.draft("Echo", "Lids crack.", category="teaware")
    for _ in range(3):
        kb.link(kb.open_case(QUALITY), e)
    kb.run()
    assert titles(kb.queries.suggest(QUALITY, ["teaware"]))[-1] == "Echo"


# --- resolutions -----------------------------------------------------------------------------


def test_top_resolving_counts_distinct_cases(kb: KB) -> None:
    lid = kb.draft("Lid", "Cracked lids.", reasons=(QUALITY,))
    box = kb.draft("Box", "Crushed boxes.")
    old = kb.draft("Old", "Old advice.")
    first, second, third = (kb.open_case(r) for r in (QUALITY, QUALITY, WRONG))
    kb.link(first, lid)
    kb.link(first, lid)  # the case already names it: nothing recorded
    kb.link(first, lid, force=True)  # recorded twice anyway: still one case
    kb.link(second, lid)
    kb.link(third, lid)
    kb.link(first, box)
    kb.link(second, old)
    kb.link(third, old)
    kb.retire(old)
    kb.close_case(first)
    kb.close_case(third)
    kb.run()
    top = kb.queries.top_resolving()
    assert [(t.title, t.cases, t.closed_cases) for t in top] == [
        ("Lid", 3, 2),
        ("Old", 2, 1),
        ("Box", 1, 1),
    ]
    assert top[1].status is ArticleStatus.RETIRED
    assert top[0].article_id == lid
    assert [t.title for t in kb.queries.top_resolving(limit=1)] == ["Lid"]
    view = kb.queries.article(lid)
    assert view is not None
    assert view.resolved_cases == 3
    assert view.resolutions_by_reason == ((QUALITY, 2), (WRONG, 1))
    assert kb.queries.search("lids")[0].resolutions == 3


def test_a_resolution_projected_before_its_article_counts_once_it_arrives(kb: KB) -> None:
    command_id = uuid4()
    article_id = article_id_for(command_id)
    case_id = kb.open_case(WRONG)
    kb.link(case_id, article_id)  # the article does not exist yet anywhere
    kb.run()
    assert kb.queries.top_resolving() == []
    assert kb.queries.article(article_id) is None
    kb.draft("Wrong colour sent", "Send the right colour.", reasons=(WRONG,), command_id=command_id)
    kb.run()
    [top] = kb.queries.top_resolving()
    assert (top.article_id, top.cases) == (article_id, 1)
    assert kb.queries.suggest(WRONG, [])[0].resolutions == 1


def test_the_article_view(kb: KB, library: dict[str, UUID]) -> None:
    q = kb.queries
    view = q.article(library["lid"])
    assert view is not None
    assert view.title == "Teapot lid cracked in transit"
    assert view.tags == ("glassware", "breakage")
    assert view.category == "teaware"
    assert view.reasons == (QUALITY,)
    assert view.status is ArticleStatus.PUBLISHED
    assert view.version == 2
    assert view.published_at is not None
    assert view.retired_at is None
    assert view.resolved_cases == 0
    assert view.resolutions_by_reason == ()
    retired = q.article(str(library["retired"]))
    assert retired is not None
    assert retired.status is ArticleStatus.RETIRED
    assert retired.retired_reason == "policy changed"
    assert retired.retired_at is not None
    draft = q.article(library["draft"])
    assert draft is not None
    assert draft.status is ArticleStatus.DRAFT
    assert draft.published_at is None
    assert q.article(uuid4()) is None
    assert q.article("not a uuid") is None


def test_only_the_case_events_it_needs_are_decoded() -> None:
    model = KnowledgeBase()
    assert model.wants("AfterSales", AfterSalesCase.ArticleLinked.TOPIC)
    assert model.wants("AfterSales", AfterSalesCase.Requested.TOPIC)
    assert not model.wants("AfterSales", AfterSalesCase.Approved.TOPIC)
    assert not model.wants("AfterSales", AfterSalesCase.RefundIssued.TOPIC)
    assert not model.wants("Knowledge", "ordertrail.receipts:CommandReceipt.Recorded")


# --- incremental build == rebuild ----------------------------------------------------------

WORDS = ("teapot", "lid", "cracked", "refund", "oolong", "parcel", "late", "box")
CATEGORIES = ("tea", "teaware", "")
POOL = 4  # articles per example (their ids are known before they are drafted)
CASES = 3

words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
content = st.fixed_dictionaries(
    {
        "title": words,
        "body": words,
        "tags": st.lists(st.sampled_from(WORDS), max_size=2),
        "category": st.sampled_from(CATEGORIES),
        "reasons": st.lists(st.sampled_from(list(CaseReason)), max_size=2),
    }
)
article_ref = st.integers(0, POOL - 1)
reason = st.sampled_from(list(CaseReason))
case_ref = st.integers(0, CASES - 1)
step = st.one_of(
    # an article command; on an article not drafted yet, it drafts it (with the content)
    st.tuples(st.sampled_from(("revise", "publish", "retire")), article_ref, content),
    # a case command; on a case not requested yet, it requests it (for the reason).
    # Links may name an article that is not drafted yet (or never will be).
    st.tuples(st.sampled_from(("link", "link", "relink")), case_ref, reason, article_ref),
    st.tuples(st.just("close"), case_ref, reason),
)


# Which of (Knowledge, AfterSales) the worker reads after a step. Knowledge held back while
# AfterSales runs is the hard case (links to articles the model has not seen yet), so it
# is drawn most often.
open_sources = st.sampled_from(
    [(False, True), (False, True), (True, True), (True, False), (False, False)]
)


def observe(q: KnowledgeBaseQueries, articles: list[UUID]) -> dict[str, Any]:
    """Everything the queries answer about the model."""
    return {
        "search": {w: q.search(w) for w in (*WORDS, "teapot -lid", "refund or late")},
        "by_category": {c: q.search("teapot", category=c) for c in CATEGORIES},
        "suggest": {r: q.suggest(r, ["teaware"], text="cracked lid", limit=10) for r in CaseReason},
        "suggest_plain": q.suggest(QUALITY, ["tea", "teaware"], limit=10),
        "top": q.top_resolving(limit=100),
        "articles": [q.article(a) for a in articles],
    }


def test_an_incremental_build_equals_a_rebuild(store_settings: Settings) -> None:
    """Each example starts from empty stores (so a failing example shrinks quickly)."""

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        steps=st.lists(st.tuples(step, open_sources), min_size=6, max_size=24),
        batch_size=st.integers(1, 3),
    )
    def check(steps: list[tuple[tuple[Any, ...], tuple[bool, bool]]], batch_size: int) -> None:
        with (
            empty_store_like(store_settings) as fresh,
            open_ordertrail(fresh, clock=FakeClock()) as ot,
            knowledge_base(ot, fresh) as kb,
        ):
            build_both_ways(kb, steps, batch_size)

    check()


def build_both_ways(
    kb: KB, steps: list[tuple[tuple[Any, ...], tuple[bool, bool]]], batch_size: int
) -> None:
    """Apply the steps, running the worker after each; then compare with a rebuild."""
    gates = kb.gates()
    worker = kb.worker_with(batch_size, gates)
    worker.setup()
    commands = [uuid4() for _ in range(POOL)]
    articles = [article_id_for(c) for c in commands]
    drafted: set[int] = set()
    cases: list[UUID] = []
    for action, opened in steps:
        kind, ref, *more = action
        try:
            if kind in ("revise", "publish", "retire") and ref not in drafted:
                kb.draft(**more[0], publish=False, command_id=commands[ref])
                drafted.add(ref)
            elif kind == "revise":
                kb.revise(articles[ref], **more[0])
            elif kind == "publish":
                kb.publish(articles[ref])
            elif kind == "retire":
                kb.retire(articles[ref])
            elif ref >= len(cases):
                cases.append(kb.open_case(more[0]))
            elif kind in ("link", "relink"):
                kb.link(cases[ref], articles[more[1]], force=kind == "relink")
            elif kind == "close":
                kb.close_case(cases[ref])
        except DomainError:
            pass  # e.g. publishing a published article: nothing recorded
        # After every step the worker applies one small batch from each source that is
        # open now: either store may run ahead of the other, by any distance.
        for gate, is_open in zip(gates, opened, strict=True):
            gate.open = is_open
        worker.run_once()
    for gate in gates:
        gate.open = True
    worker.run_until_idle()
    incremental = (observe(kb.queries, articles), table_contents(kb.store))
    worker.rebuild()
    rebuilt = (observe(kb.queries, articles), table_contents(kb.store))
    assert incremental == rebuilt
