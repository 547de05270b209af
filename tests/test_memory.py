"""The local runner's memory hand-back between components, on this process's real allocator."""

from __future__ import annotations

import ctypes
import gc
import os
import weakref
from collections.abc import Iterator

import pytest

from components import native_heap
from pipeline.runners import memory

MIB = 1 << 20


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _glibc_malloc_is_the_allocator() -> bool:
    if not native_heap.AVAILABLE or os.environ.get("LD_PRELOAD"):
        return False
    if any(name.startswith("MALLOC_") or name == "GLIBC_TUNABLES" for name in os.environ):
        return False  # thresholds set otherwise than glibc's defaults

    def address(library: ctypes.CDLL) -> int | None:
        return ctypes.cast(library.malloc, ctypes.c_void_p).value

    return address(ctypes.CDLL(None)) == address(ctypes.CDLL("libc.so.6"))


@pytest.fixture
def collector_off() -> Iterator[None]:
    """Only the code under test collects; the collector's state is restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Node:
    """A cyclic structure, as TensorFlow's graphs and Keras' models are."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.skipif(not _glibc_malloc_is_the_allocator(), reason="glibc's malloc with defaults")
def test_give_back_returns_freed_heap_pages_to_the_kernel() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # Blocks under malloc's mmap threshold come from its heap; the last one,
    # kept, pins the heap's top, so free() alone cannot shrink it.
    size, count = 64 * 1024, 4096  # 256 MiB, of which 255 are freed
    blocks = [libc.malloc(size) for _ in range(count)]
    assert all(blocks)
    for block in blocks:
        ctypes.memset(block, 1, size)
    held = _rss_mib()
    for block in blocks[:-1]:
        libc.free(block)
    after_free = _rss_mib()
    try:
        if held - after_free >= 64:
            pytest.skip("free() alone returned the pages here: nothing to show")
        with memory.given_back_between_components() as give_back:
            give_back()
        assert after_free - _rss_mib() > 200
    finally:
        libc.free(blocks[-1])


def test_give_back_frees_cycles_and_the_block_leaves_the_collector_as_it_was(
    collector_off: None,
) -> None:
    before = _Node()
    assert gc.get_freeze_count() == 0
    with memory.given_back_between_components() as give_back:
        assert gc.get_freeze_count() > 0  # the process's objects, left out of each walk
        made = _Node()
        made_ref, before_ref = weakref.ref(made), weakref.ref(before)
        del made, before
        assert made_ref() is not None
        give_back()
        assert made_ref() is None
        # Frozen when the block started: freed once the run is over.
        assert before_ref() is not None
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert before_ref() is None


def test_objects_frozen_before_the_block_stay_frozen(collector_off: None) -> None:
    gc.freeze()  # as an application that froze its own objects
    try:
        frozen = gc.get_freeze_count()
        with memory.given_back_between_components() as give_back:
            made_ref = weakref.ref(_Node())
            give_back()
            assert made_ref() is None
            assert gc.get_freeze_count() == frozen  # nothing more frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_the_block_unfreezes_when_its_body_fails() -> None:
    with (
        pytest.raises(RuntimeError, match="a component failed"),
        memory.given_back_between_components() as give_back,
    ):
        give_back()
        raise RuntimeError("a component failed")
    assert gc.get_freeze_count() == 0
