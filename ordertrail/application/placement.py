"""Choosing where each order line ships from: warehouses that serve its delivery group
and have the stock, preferring one warehouse per delivery group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ordertrail.application.warehouses import WarehouseDirectory
from ordertrail.domain.errors import InsufficientStock
from ordertrail.domain.order_parts import DeliveryGroup


@dataclass(frozen=True)
class LineRequest:
    """A line as a customer asks for it: no price (prices come from the catalog)."""

    sku: str
    quantity: int
    delivery_group: str = "default"


def candidate_warehouses(
    lines: Sequence[LineRequest],
    groups: Sequence[DeliveryGroup],
    directory: WarehouseDirectory,
) -> dict[str, list[str]]:
    """Per delivery group, the warehouses that ship to its address, preferred first."""
    wanted = {line.delivery_group for line in lines}
    return {
        group.group_id: [w.code for w in directory.serving(group.address)]
        for group in groups
        if group.group_id in wanted
    }


def allocate(
    lines: Sequence[LineRequest],
    candidates: Mapping[str, list[str]],
    available: Mapping[tuple[str, str], int],
) -> dict[int, str]:
    """Map each line (by index) to a warehouse.

    ``available`` is the stock each (sku, warehouse) can give this order. A delivery
    group ships from one warehouse when one has all of its lines; otherwise each line
    takes the first warehouse that has it. Raises ``InsufficientStock`` otherwise.
    """
    remaining = dict(available)
    chosen: dict[int, str] = {}
    by_group: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        by_group.setdefault(line.delivery_group, []).append(index)
    for group_id, indexes in by_group.items():
        warehouses = candidates.get(group_id, [])
        whole = next(
            (
                wh
                for wh in warehouses
                if all(remaining.get((lines[i].sku, wh), 0) >= lines[i].quantity for i in indexes)
            ),
            None,
        )
        for i in indexes:
            line = lines[i]
            wh = whole or next(
                (w for w in warehouses if remaining.get((line.sku, w), 0) >= line.quantity),
                None,
            )
            if wh is None:
                best = max((remaining.get((line.sku, w), 0) for w in warehouses), default=0)
                raise InsufficientStock(
                    f"{line.sku}: {line.quantity} requested, {best} available",
                    sku=line.sku,
                    requested=line.quantity,
                    available=best,
                )
            remaining[(line.sku, wh)] = remaining.get((line.sku, wh), 0) - line.quantity
            chosen[i] = wh
    return chosen
