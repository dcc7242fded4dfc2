"""After-sales commands: cases for returns, exchanges and refunds."""

from __future__ import annotations

from ordertrail.application.base import OrdertrailApplication


class AfterSalesApplication(OrdertrailApplication):
    name = "AfterSales"
