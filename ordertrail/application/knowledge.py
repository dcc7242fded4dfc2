"""Knowledge-base commands: writing, publishing and retiring articles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ordertrail.application.base import Decision, OrdertrailApplication
from ordertrail.application.context import CommandContext
from ordertrail.application.receipts import Accepted
from ordertrail.domain import ids
from ordertrail.domain.aftersales import CaseReason
from ordertrail.domain.errors import ArticleNotFound
from ordertrail.domain.knowledge import Article, ArticleStatus


@dataclass(frozen=True)
class DraftArticle:
    title: str
    body: str
    tags: tuple[str, ...] = ()
    category: str = ""
    reasons: tuple[CaseReason, ...] = ()


@dataclass(frozen=True)
class ReviseArticle:
    article_id: UUID
    title: str
    body: str
    tags: tuple[str, ...] = ()
    category: str = ""
    reasons: tuple[CaseReason, ...] = ()


@dataclass(frozen=True)
class PublishArticle:
    article_id: UUID


@dataclass(frozen=True)
class RetireArticle:
    article_id: UUID
    reason: str


@dataclass(frozen=True)
class ArticleSnapshot:
    article_id: UUID
    title: str
    status: ArticleStatus
    version: int

    @classmethod
    def of(cls, article: Article) -> ArticleSnapshot:
        return cls(article.id, article.title, article.status, article.version)


class KnowledgeApplication(OrdertrailApplication):
    name = "Knowledge"

    def article(self, article_id: UUID) -> Article:
        found = self.find_as(article_id, Article)
        if found is None:
            raise ArticleNotFound(f"no article {article_id}", article_id=str(article_id))
        return found

    def draft_article(
        self, command: DraftArticle, ctx: CommandContext
    ) -> Accepted[ArticleSnapshot]:
        def decide(now: datetime) -> Decision[ArticleSnapshot]:
            article = Article.draft(
                article_id=ids.article_id(ctx.command_id),
                title=command.title,
                body=command.body,
                tags=command.tags,
                category=command.category,
                reasons=command.reasons,
                meta=ctx.meta,
                now=now,
            )
            return Decision(ArticleSnapshot.of(article), [article])

        return self.execute(command, ctx, decide, ArticleSnapshot)

    def revise_article(
        self, command: ReviseArticle, ctx: CommandContext
    ) -> Accepted[ArticleSnapshot]:
        def decide(now: datetime) -> Decision[ArticleSnapshot]:
            article = self.article(command.article_id)
            article.revise(
                title=command.title,
                body=command.body,
                tags=command.tags,
                category=command.category,
                reasons=command.reasons,
                meta=ctx.meta,
                now=now,
            )
            return Decision(ArticleSnapshot.of(article), [article])

        return self.execute(command, ctx, decide, ArticleSnapshot)

    def publish_article(
        self, command: PublishArticle, ctx: CommandContext
    ) -> Accepted[ArticleSnapshot]:
        def decide(now: datetime) -> Decision[ArticleSnapshot]:
            article = self.article(command.article_id)
            article.publish(meta=ctx.meta, now=now)
            return Decision(ArticleSnapshot.of(article), [article])

        return self.execute(command, ctx, decide, ArticleSnapshot)

    def retire_article(
        self, command: RetireArticle, ctx: CommandContext
    ) -> Accepted[ArticleSnapshot]:
        def decide(now: datetime) -> Decision[ArticleSnapshot]:
            article = self.article(command.article_id)
            article.retire(command.reason, meta=ctx.meta, now=now)
            return Decision(ArticleSnapshot.of(article), [article])

        return self.execute(command, ctx, decide, ArticleSnapshot)
