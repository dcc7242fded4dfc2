"""Logistics commands: parcels, carrier notifications, cash on delivery."""

from __future__ import annotations

from ordertrail.application.base import OrdertrailApplication


class LogisticsApplication(OrdertrailApplication):
    name = "Logistics"
