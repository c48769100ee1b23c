"""pytest plugin for mutation runs (`-p tests.mutation.isolation`, see [tool.mutmut]): every test starts with the
caches of core/ empty, so a mutant is judged by the tests that reach it, not by what an earlier test left cached
(core/recurrence.py memoises compiled rules and zones with functools.lru_cache)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _empty_core_caches() -> Iterator[None]:
    for name, module in list(sys.modules.items()):
        if name == "core" or name.startswith("core."):
            for value in list(vars(module).values()):
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()
    yield
