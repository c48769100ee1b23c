"""Deterministic, streaming generator of a synthetic ministry."""
