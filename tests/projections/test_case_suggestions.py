"""Staff see knowledge-base articles suggested for a case from its reason and the
categories of its products, and which articles resolve most."""

from __future__ import annotations

from ordertrail.adapters.queries import suggest_articles_for_case
from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import LinkArticle
from ordertrail.application.knowledge import DraftArticle, PublishArticle
from ordertrail.application.system import Ordertrail
from ordertrail.domain.aftersales import CaseKind, CaseReason
from ordertrail.projections.knowledge import KnowledgeBase, KnowledgeBaseQueries
from ordertrail.projections.runner import ProjectionWorker
from tests.application.test_aftersales import delivered_order, open_case
from tests.projections.support import opened
from tests.support.builders import staff
from tests.support.clock import FakeClock


def publish(ot: Ordertrail, title: str, category: str, *reasons: CaseReason):
    draft = ot.knowledge.draft_article(
        DraftArticle(title, f"How to handle: {title}.", ("howto",), category, reasons), staff()
    ).value
    ot.knowledge.publish_article(PublishArticle(draft.article_id), staff())
    return draft.article_id


def test_articles_are_suggested_for_a_case_and_ranked_by_resolutions(
    ot: Ordertrail, clock: FakeClock, store_settings: Settings
) -> None:
    order = delivered_order(ot, clock, quantity=3)  # TEA-1 is in category "tea"
    both = publish(ot, "Dented tea tins", "tea", CaseReason.QUALITY_PROBLEM)
    reason_only = publish(ot, "Broken cups", "teaware", CaseReason.QUALITY_PROBLEM)
    category_only = publish(ot, "Tea went stale", "tea", CaseReason.NOT_AS_DESCRIBED)
    publish(ot, "Late parcels", "shipping", CaseReason.MISSING_ITEM)
    case = open_case(ot, order, 1, CaseKind.RETURN, CaseReason.QUALITY_PROBLEM)
    with opened(store_settings) as store:
        worker = ProjectionWorker(
            KnowledgeBase(), store, {"Knowledge": ot.knowledge, "AfterSales": ot.aftersales}
        )
        worker.setup()
        worker.run_until_idle()
        kb = KnowledgeBaseQueries(store)
        hits = suggest_articles_for_case(ot, kb, case.case_id)
        assert [h.article_id for h in hits] == [both, reason_only, category_only]
        ot.aftersales.link_article(LinkArticle(case.case_id, reason_only), staff())
        worker.run_until_idle()
        assert kb.top_resolving(1)[0].article_id == reason_only
