"""Prefect global concurrency limits share a source account between workers; a missing limit is an error."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from flows.budget import ensure_limits, slot, within_slots


def test_a_held_slot_makes_the_next_page_fetch_wait() -> None:
    name = f"bascule-test-{uuid.uuid4().hex[:8]}"
    ensure_limits([name], slots=1)
    held, done = threading.Event(), threading.Event()

    def other_worker() -> None:
        with slot(name):
            held.set()
            time.sleep(1.5)
        done.set()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert held.wait(30)
    started = time.monotonic()
    pages = within_slots(iter(["page 1", "page 2"]), name)
    assert next(pages) == "page 1"
    assert time.monotonic() - started >= 1.0  # it waited for the other worker's slot
    assert done.is_set()
    assert list(pages) == ["page 2"]
    thread.join()


def test_two_slots_let_two_workers_fetch_together() -> None:
    name = f"bascule-test-{uuid.uuid4().hex[:8]}"
    ensure_limits([name], slots=2)
    held = threading.Event()

    def other_worker() -> None:
        with slot(name):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert held.wait(30)
    started = time.monotonic()
    assert next(within_slots(iter(["page"]), name)) == "page"
    assert time.monotonic() - started < 1.0
    thread.join()


def test_a_limit_that_does_not_exist_is_refused_rather_than_ignored() -> None:
    name = f"bascule-never-created-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Exception, match="must be created before acquiring slots"), slot(name, timeout_seconds=5):
        pass
