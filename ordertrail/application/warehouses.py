"""Which warehouses exist and which delivery destinations each can serve."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ordertrail.domain.errors import NoWarehouseServes, UnknownWarehouse
from ordertrail.domain.order_parts import Address

DEFAULT_WAREHOUSE = "main"


@dataclass(frozen=True)
class Warehouse:
    """``countries`` empty means it ships anywhere. Lower ``priority`` is preferred."""

    code: str
    countries: frozenset[str] = frozenset()
    priority: int = 100

    def serves(self, address: Address) -> bool:
        return not self.countries or address.country in self.countries


class WarehouseDirectory:
    """The configured warehouses; one default warehouse unless more are configured."""

    def __init__(self, warehouses: Iterable[Warehouse] = ()) -> None:
        listed = tuple(warehouses) or (Warehouse(DEFAULT_WAREHOUSE),)
        codes = [w.code for w in listed]
        if len(set(codes)) != len(codes):
            raise ValueError("warehouse codes must be unique")
        self._by_code = {w.code: w for w in listed}
        self._ordered = sorted(listed, key=lambda w: (w.priority, w.code))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(w.code for w in self._ordered)

    def get(self, code: str) -> Warehouse:
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownWarehouse(f"no warehouse {code!r}", warehouse=code) from None

    def serving(self, address: Address) -> list[Warehouse]:
        """Warehouses that can ship to ``address``, most preferred first."""
        found = [w for w in self._ordered if w.serves(address)]
        if not found:
            raise NoWarehouseServes(
                f"no warehouse ships to {address.country}", country=address.country
            )
        return found
