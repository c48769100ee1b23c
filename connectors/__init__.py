"""Adapters to external systems: one module per system, typed records out."""
