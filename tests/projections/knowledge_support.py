"""A small harness for the knowledge-base read model: articles through the Knowledge
application, after-sales cases saved straight into an AfterSales application (which has
no commands yet), and a projection worker over both."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import AfterSalesApplication
from ordertrail.application.knowledge import (
    DraftArticle,
    PublishArticle,
    RetireArticle,
    ReviseArticle,
)
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Money, ids
from ordertrail.domain.aftersales import AfterSalesCase, CaseKind, CaseLine, CaseReason
from ordertrail.projections.knowledge import KnowledgeBase, KnowledgeBaseQueries
from ordertrail.projections.readmodel import EventSource
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.projections.support import GatedSource, opened
from tests.support.builders import staff

KB_TABLES = ("kb_articles", "kb_article_reasons", "kb_cases", "kb_resolutions")


@contextmanager
def aftersales_app(settings: Settings) -> Iterator[AfterSalesApplication]:
    app = AfterSalesApplication(settings.eventsourcing_env())
    try:
        yield app
    finally:
        app.close()


@dataclass
class KB:
    ot: Ordertrail
    aftersales: AfterSalesApplication
    store: ReadStore
    worker: ProjectionWorker

    @property
    def queries(self) -> KnowledgeBaseQueries:
        return KnowledgeBaseQueries(self.store)

    def worker_with(self, batch_size: int, gates: Sequence[GatedSource] = ()) -> ProjectionWorker:
        sources: dict[str, EventSource] = {
            "Knowledge": self.ot.knowledge,
            "AfterSales": self.aftersales,
        }
        sources.update({gate.name: gate for gate in gates})
        return ProjectionWorker(KnowledgeBase(), self.store, sources, batch_size=batch_size)

    def gates(self) -> tuple[GatedSource, GatedSource]:
        return GatedSource(self.ot.knowledge), GatedSource(self.aftersales)

    def run(self) -> int:
        return self.worker.run_until_idle()

    # --- articles ------------------------------------------------------------------------

    def draft(
        self,
        title: str,
        body: str,
        *,
        tags: Sequence[str] = (),
        category: str = "",
        reasons: Sequence[CaseReason] = (),
        publish: bool = True,
        command_id: UUID | None = None,
    ) -> UUID:
        ctx = staff(command_id)
        draft = DraftArticle(title, body, tuple(tags), category, tuple(reasons))
        article_id = self.ot.knowledge.draft_article(draft, ctx).value.article_id
        if publish:
            self.publish(article_id)
        return article_id

    def publish(self, article_id: UUID) -> None:
        self.ot.knowledge.publish_article(PublishArticle(article_id), staff())

    def revise(
        self,
        article_id: UUID,
        title: str,
        body: str,
        *,
        tags: Sequence[str] = (),
        category: str = "",
        reasons: Sequence[CaseReason] = (),
    ) -> None:
        revise = ReviseArticle(article_id, title, body, tuple(tags), category, tuple(reasons))
        self.ot.knowledge.revise_article(revise, staff())

    def retire(self, article_id: UUID, reason: str = "outdated") -> None:
        self.ot.knowledge.retire_article(RetireArticle(article_id, reason), staff())

    # --- cases ---------------------------------------------------------------------------

    def open_case(self, reason: CaseReason = CaseReason.QUALITY_PROBLEM) -> UUID:
        case = AfterSalesCase.request(
            case_id=uuid4(),
            order_id=uuid4(),
            customer_id="cust-1",
            kind=CaseKind.RETURN,
            reason=reason,
            lines=[CaseLine(1, "TEA-1", 1, unit_price=Money(6800, "CNY"))],
            meta=staff().meta,
            now=self.ot.clock(),
        )
        self.aftersales.save(case)
        return case.id

    def case(self, case_id: UUID) -> AfterSalesCase:
        found: object = self.aftersales.repository.get(case_id)
        assert isinstance(found, AfterSalesCase)
        return found

    def link(self, case_id: UUID, article_id: UUID, *, force: bool = False) -> None:
        """Record that the article resolved the case; ``force`` records the event even if
        the case already names the article (as a concurrent or older writer might)."""
        case = self.case(case_id)
        if force:
            case.trigger_event(
                AfterSalesCase.ArticleLinked,
                timestamp=self.ot.clock(),
                meta=staff().meta,
                article_id=article_id,
            )
        else:
            case.link_article(article_id, meta=staff().meta, now=self.ot.clock())
        self.aftersales.save(case)

    def close_case(self, case_id: UUID) -> None:
        case = self.case(case_id)
        case.close("resolved with an article", meta=staff().meta, now=self.ot.clock())
        self.aftersales.save(case)


@contextmanager
def knowledge_base(ot: Ordertrail, settings: Settings, batch_size: int = 500) -> Iterator[KB]:
    with aftersales_app(settings) as aftersales, opened(settings) as store:
        kb = KB(ot, aftersales, store, None)  # type: ignore[arg-type]
        kb.worker = kb.worker_with(batch_size)
        kb.worker.setup()
        yield kb


def article_id_for(command_id: UUID) -> UUID:
    """The id the article drafted by ``command_id`` gets (known before it exists)."""
    return ids.article_id(command_id)


def table_contents(store: ReadStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the model's tables (and of the SQLite search index), in a stable order."""
    contents: dict[str, list[tuple[Any, ...]]] = {}
    with store.read() as tx:
        for table in KB_TABLES:
            contents[table] = sorted(tx.all(f"SELECT * FROM {table}"), key=repr)
        if tx.dialect == "sqlite":
            contents["kb_search"] = tx.all(
                "SELECT rowid, title, body, tags FROM kb_search ORDER BY rowid"
            )
    return contents
