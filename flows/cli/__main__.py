"""`python -m flows.cli` (how a command re-runs itself in its own process group, see flows.jobs)."""

from flows.cli import main

main()
