"""Property-based, stateful specifications of the domain aggregates."""
