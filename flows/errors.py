"""The failures an operator causes and can fix: their message is the whole story, printed as it is on one line."""

from __future__ import annotations


class OperatorError(Exception):
    """A wrong tenant file, a wave in the wrong state, a stage not ready, a missing secret: what to fix is in the
    message (the CLI prints it without the class name)."""
