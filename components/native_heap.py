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
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (macOS, musl): nothing to trim
        return None


_TRIM = _malloc_trim()
AVAILABLE = _TRIM is not None


def trim() -> None:
    """Returns the free pages of every malloc arena to the kernel (nothing without glibc)."""
    if _TRIM is not None:
        _TRIM(0)
