"""The after-sales knowledge base (staff): writing, publishing and retiring articles,
searching the published ones, and suggestions for a case."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from msgspec import Meta

from ordertrail.adapters.http.auth import staff_only
from ordertrail.adapters.http.routes.common import (
    accepted,
    context,
    etag,
    example,
    runtime_of,
    wait_for_read_model,
)
from ordertrail.adapters.http.schemas import Body, Reply
from ordertrail.adapters.queries import suggest_articles_for_case
from ordertrail.application.knowledge import (
    ArticleSnapshot,
    DraftArticle,
    PublishArticle,
    RetireArticle,
    ReviseArticle,
)
from ordertrail.application.receipts import Accepted
from ordertrail.domain.aftersales import CaseReason
from ordertrail.domain.knowledge import MAX_BODY, MAX_TAGS, Article
from ordertrail.projections.knowledge import MAX_QUERY_CHARS, ArticleHit, KnowledgeBaseQueries

READ_MODEL = "knowledge_base"
#: Printable text only: the query goes to the read store, which refuses control characters.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

Title = Annotated[str, Meta(min_length=1, max_length=200, examples=["Cracked tea tins"])]
Tag = Annotated[str, Meta(min_length=1, max_length=40, examples=["packaging"])]
Category = Annotated[str, Meta(max_length=100, examples=["tea"])]

ARTICLE_EXAMPLE = {
    "title": "Cracked tea tins",
    "body": "Ask for a photo of the lid, then offer a replacement tin or a refund.",
    "tags": ["packaging", "damage"],
    "category": "tea",
    "reasons": ["quality_problem"],
}


class ArticleBody(Body):
    """An article's whole content (a revision replaces all of it)."""

    title: Title
    body: Annotated[str, Meta(min_length=1, max_length=MAX_BODY)]
    tags: Annotated[list[Tag], Meta(max_length=MAX_TAGS)] = []
    category: Category = ""
    reasons: Annotated[list[CaseReason], Meta(max_length=len(CaseReason))] = []

    def content(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "body": self.body,
            "tags": tuple(self.tags),
            "category": self.category,
            "reasons": tuple(self.reasons),
        }


class RetireBody(Body):
    reason: Annotated[str, Meta(min_length=1, max_length=500, examples=["policy changed"])]


class ArticleReply(Reply):
    article_id: UUID
    title: str
    body: str
    tags: list[str]
    category: str
    reasons: list[str]
    status: str
    version: int

    @classmethod
    def of(cls, article: Article) -> ArticleReply:
        return cls(
            article_id=article.id,
            title=article.title,
            body=article.body,
            tags=list(article.tags),
            category=article.category,
            reasons=[reason.value for reason in article.reasons],
            status=article.status.value,
            version=article.version,
        )


class ArticleHitReply(Reply):
    article_id: UUID
    title: str
    category: str
    tags: list[str]
    reasons: list[str]
    resolutions: int
    score: float

    @classmethod
    def of(cls, hit: ArticleHit) -> ArticleHitReply:
        return cls(
            article_id=hit.article_id,
            title=hit.title,
            category=hit.category,
            tags=list(hit.tags),
            reasons=[reason.value for reason in hit.reasons],
            resolutions=hit.resolutions,
            score=hit.score,
        )


class ArticleHitsReply(Reply):
    hits: list[ArticleHitReply]


def _article_response(
    state: State, result: Accepted[ArticleSnapshot], *, status: int = 200
) -> Response[ArticleReply]:
    article = runtime_of(state).ot.knowledge.article(result.value.article_id)
    location = f"/articles/{article.id}" if status == 201 else None
    return accepted(
        result, ArticleReply.of(article), status=status, version=article.version, location=location
    )


@post(
    "/articles",
    summary="Draft a knowledge-base article",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["knowledge"],
    status_code=201,
)
def draft_article(
    state: State,
    request: Request[Any, Any, Any],
    data: Annotated[ArticleBody, example(ARTICLE_EXAMPLE)],
) -> Response[ArticleReply]:
    result = runtime_of(state).ot.knowledge.draft_article(
        DraftArticle(**data.content()), context(request)
    )
    return _article_response(state, result, status=201)


@put(
    "/articles/{article_id:uuid}",
    summary="Revise an article: its whole content (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["knowledge"],
)
def revise_article(
    state: State,
    request: Request[Any, Any, Any],
    article_id: FromPath[UUID],
    data: Annotated[ArticleBody, example(ARTICLE_EXAMPLE)],
) -> Response[ArticleReply]:
    result = runtime_of(state).ot.knowledge.revise_article(
        ReviseArticle(article_id, **data.content()), context(request, versioned=True)
    )
    return _article_response(state, result)


@post(
    "/articles/{article_id:uuid}/publish",
    summary="Publish a draft article (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["knowledge"],
    status_code=200,
)
def publish_article(
    state: State, request: Request[Any, Any, Any], article_id: FromPath[UUID]
) -> Response[ArticleReply]:
    result = runtime_of(state).ot.knowledge.publish_article(
        PublishArticle(article_id), context(request, versioned=True)
    )
    return _article_response(state, result)


@post(
    "/articles/{article_id:uuid}/retire",
    summary="Retire an article (If-Match)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["knowledge"],
    status_code=200,
)
def retire_article(
    state: State,
    request: Request[Any, Any, Any],
    article_id: FromPath[UUID],
    data: Annotated[RetireBody, example({"reason": "policy changed"})],
) -> Response[ArticleReply]:
    result = runtime_of(state).ot.knowledge.retire_article(
        RetireArticle(article_id, data.reason), context(request, versioned=True)
    )
    return _article_response(state, result)


@get(
    "/articles/{article_id:uuid}",
    summary="One article, from its events (with its ETag)",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["knowledge"],
)
def get_article(state: State, article_id: FromPath[UUID]) -> Response[ArticleReply]:
    article = runtime_of(state).ot.knowledge.article(article_id)
    return Response(ArticleReply.of(article), headers={"ETag": etag(article.version)})


@get(
    "/articles/search",
    summary='Search published articles (web-search syntax: "phrase", -word, or)',
    description="From the knowledge_base read model; honours X-Ordertrail-Wait-For.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["knowledge"],
)
def search_articles(
    state: State,
    request: Request[Any, Any, Any],
    q: Annotated[str, QueryParameter(max_length=MAX_QUERY_CHARS, pattern=_PRINTABLE)],
    category: Annotated[str | None, QueryParameter(max_length=100, pattern=_PRINTABLE)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
) -> Response[ArticleHitsReply]:
    runtime = runtime_of(state)
    headers = wait_for_read_model(request, runtime, READ_MODEL)
    hits = KnowledgeBaseQueries(runtime.read.store).search(q, category=category, limit=limit)
    return Response(
        ArticleHitsReply(hits=[ArticleHitReply.of(hit) for hit in hits]), headers=headers
    )


@get(
    "/cases/{case_id:uuid}/suggestions",
    summary="Published articles that may solve an after-sales case",
    description="By the case's reason and its products' categories, then by how often "
    "they solved cases. From the knowledge_base read model; honours X-Ordertrail-Wait-For.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["knowledge"],
)
def case_suggestions(
    state: State,
    request: Request[Any, Any, Any],
    case_id: FromPath[UUID],
    limit: Annotated[int, QueryParameter(ge=1, le=50)] = 5,
) -> Response[ArticleHitsReply]:
    runtime = runtime_of(state)
    headers = wait_for_read_model(request, runtime, READ_MODEL)
    kb = KnowledgeBaseQueries(runtime.read.store)
    hits = suggest_articles_for_case(runtime.ot, kb, case_id, limit=limit)
    return Response(
        ArticleHitsReply(hits=[ArticleHitReply.of(hit) for hit in hits]), headers=headers
    )


ROUTES = [
    draft_article,
    revise_article,
    publish_article,
    retire_article,
    get_article,
    search_articles,
    case_suggestions,
]
