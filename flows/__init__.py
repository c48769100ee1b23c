"""Prefect flows, settings and the CLI: the composition root."""
