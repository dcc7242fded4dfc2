"""The after-sales knowledge base: articles that help staff solve common problems."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import rules
from ordertrail.domain.aftersales import CaseReason
from ordertrail.domain.errors import InvalidArticle, InvalidArticleTransition
from ordertrail.domain.meta import EventMeta

MAX_TAGS = 20
MAX_BODY = 20_000


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class Article(Aggregate):
    TOPIC = "ordertrail.knowledge:Article"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Drafted(Event, Aggregate.Created):
        TOPIC = "ordertrail.knowledge:Article.Drafted"
        class_version = 1
        title: str
        body: str
        tags: tuple[str, ...]
        category: str
        reasons: tuple[CaseReason, ...]

    Created = Drafted

    class Revised(Event):
        TOPIC = "ordertrail.knowledge:Article.Revised"
        class_version = 1
        title: str
        body: str
        tags: tuple[str, ...]
        category: str
        reasons: tuple[CaseReason, ...]

        def apply(self, aggregate: Article) -> None:
            aggregate.title = self.title
            aggregate.body = self.body
            aggregate.tags = self.tags
            aggregate.category = self.category
            aggregate.reasons = self.reasons

    class Published(Event):
        TOPIC = "ordertrail.knowledge:Article.Published"
        class_version = 1

        def apply(self, aggregate: Article) -> None:
            aggregate.status = ArticleStatus.PUBLISHED

    class Retired(Event):
        TOPIC = "ordertrail.knowledge:Article.Retired"
        class_version = 1
        reason: str

        def apply(self, aggregate: Article) -> None:
            aggregate.status = ArticleStatus.RETIRED

    def __init__(
        self,
        *,
        title: str,
        body: str,
        tags: tuple[str, ...],
        category: str,
        reasons: tuple[CaseReason, ...],
    ) -> None:
        self.title = title
        self.body = body
        self.tags = tags
        self.category = category
        self.reasons = reasons
        self.status = ArticleStatus.DRAFT

    @classmethod
    def draft(
        cls,
        *,
        article_id: UUID,
        title: str,
        body: str,
        tags: Sequence[str] = (),
        category: str = "",
        reasons: Sequence[CaseReason | str] = (),
        meta: EventMeta,
        now: datetime,
    ) -> Article:
        return cls._create(
            cls.Drafted,
            id=article_id,
            timestamp=now,
            meta=meta,
            **_content(title, body, tags, category, reasons),
        )

    def revise(
        self,
        *,
        title: str,
        body: str,
        tags: Sequence[str] = (),
        category: str = "",
        reasons: Sequence[CaseReason | str] = (),
        meta: EventMeta,
        now: datetime,
    ) -> None:
        content = _content(title, body, tags, category, reasons)
        if self.status is ArticleStatus.RETIRED:
            raise InvalidArticleTransition("a retired article is not revised")
        if content == {
            "title": self.title,
            "body": self.body,
            "tags": self.tags,
            "category": self.category,
            "reasons": self.reasons,
        }:
            return
        self.trigger_event(self.Revised, timestamp=now, meta=meta, **content)

    def publish(self, *, meta: EventMeta, now: datetime) -> None:
        if self.status is not ArticleStatus.DRAFT:
            raise InvalidArticleTransition(
                f"a {self.status.value} article is not published", status=self.status.value
            )
        self.trigger_event(self.Published, timestamp=now, meta=meta)

    def retire(self, reason: str, *, meta: EventMeta, now: datetime) -> None:
        why = rules.text(reason, "reason", max_length=500, error=InvalidArticle)
        if self.status is ArticleStatus.RETIRED:
            raise InvalidArticleTransition("the article is already retired")
        self.trigger_event(self.Retired, timestamp=now, meta=meta, reason=why)


def _content(
    title: str, body: str, tags: Sequence[str], category: str, reasons: Sequence[CaseReason | str]
) -> dict[str, object]:
    checked_tags = tuple(
        dict.fromkeys(
            rules.text(tag, "tag", max_length=40, error=InvalidArticle).lower() for tag in tags
        )
    )
    if len(checked_tags) > MAX_TAGS:
        raise InvalidArticle(f"at most {MAX_TAGS} tags", field="tags")
    try:
        checked_reasons = tuple(dict.fromkeys(CaseReason(r) for r in reasons))
    except ValueError as error:
        raise InvalidArticle(str(error), field="reasons") from None
    return {
        "title": rules.text(title, "title", max_length=200, error=InvalidArticle),
        "body": rules.text(body, "body", max_length=MAX_BODY, error=InvalidArticle),
        "tags": checked_tags,
        "category": rules.text(
            category, "category", max_length=100, error=InvalidArticle, allow_empty=True
        ),
        "reasons": checked_reasons,
    }
