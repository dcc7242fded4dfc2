"""Carrier adapters: Kuaidi100 (快递100 subscription pushes) and ParcelHub (JSON webhooks),
and the carrier selection rules file. See docs/logistics.md."""

from __future__ import annotations

from ordertrail.adapters.carriers.kuaidi100 import Kuaidi100Gateway
from ordertrail.adapters.carriers.parcelhub import ParcelHubGateway
from ordertrail.adapters.carriers.rules import RulesFileError, default_rules, load_rules
from ordertrail.application.carriers import CarrierDirectory


def carrier_directory(*, kuaidi100_salt: str, parcelhub_secret: str) -> CarrierDirectory:
    """The two carriers of a default deployment, in sandbox mode."""
    return CarrierDirectory([Kuaidi100Gateway(kuaidi100_salt), ParcelHubGateway(parcelhub_secret)])


__all__ = [
    "Kuaidi100Gateway",
    "ParcelHubGateway",
    "RulesFileError",
    "carrier_directory",
    "default_rules",
    "load_rules",
]
