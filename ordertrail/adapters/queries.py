"""Queries that combine a read model with the write side (one aggregate by id)."""

from __future__ import annotations

from uuid import UUID

from ordertrail.application.system import Ordertrail
from ordertrail.domain.errors import ProductNotFound
from ordertrail.projections.knowledge import ArticleHit, KnowledgeBaseQueries


def suggest_articles_for_case(
    ot: Ordertrail, kb: KnowledgeBaseQueries, case_id: UUID, limit: int = 5
) -> list[ArticleHit]:
    """Knowledge-base articles for a case: by its reason and its products' categories,
    then by how often they resolved cases, then by its description's words."""
    case = ot.aftersales.case(case_id)
    categories = set()
    for line in case.lines:
        try:
            categories.add(ot.catalog.product(line.sku).category)
        except ProductNotFound:
            continue
    return kb.suggest(case.reason, sorted(categories), text=case.description, limit=limit)
