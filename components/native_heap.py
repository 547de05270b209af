"""Gives the free pages of glibc's malloc heaps back to the kernel.

glibc keeps the pages of freed blocks in its heaps for the process to reuse,
and each thread allocates from an arena of its own, up to eight per core. A
thread that starts after another has gone may take a different arena, and
then what the first one freed stays resident beside what the second one
allocates (docs/benchmarks.md, "Goal 2"). `malloc_trim` returns the free
pages of every arena at once, in milliseconds.
"""

from __future__ import annotations

import ctypes
from typing import Any


def _malloc_trim() -> Any:
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # not glibc (macOS, musl, Windows)
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_TRIM = _malloc_trim()
AVAILABLE = _TRIM is not None


def trim() -> None:
    """Returns the free pages of every glibc malloc arena to the kernel.

    Does nothing where the C library has no `malloc_trim`; where another
    allocator replaces malloc (`LD_PRELOAD` of jemalloc or tcmalloc), glibc's
    arenas are empty and so is what it returns.
    """
    if _TRIM is not None:
        _TRIM(0)
