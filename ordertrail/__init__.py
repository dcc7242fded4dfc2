"""ordertrail: event-sourced order management for e-commerce.

Layers, inner to outer: ``ordertrail.domain`` (aggregates, events, value objects, errors),
``ordertrail.application`` and ``ordertrail.projections``, ``ordertrail.adapters``.
"""

__version__ = "0.1.0"
