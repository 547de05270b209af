"""The local runner's memory hand-back between components, on this process's real allocator."""

from __future__ import annotations

import ctypes
import gc
import weakref

import pytest

from components import native_heap
from pipeline.runners import memory

MIB = 1 << 20


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / MIB


class _Node:
    """A cyclic structure, as TensorFlow's graphs and Keras' models are."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.skipif(not native_heap.AVAILABLE, reason="malloc_trim is glibc's")
def test_give_back_returns_freed_heap_pages_to_the_kernel() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # Blocks under malloc's mmap threshold come from its heap; the last one,
    # kept, pins the heap's top, so free() alone cannot shrink it.
    size, count = 64 * 1024, 4096  # 256 MiB
    blocks = [libc.malloc(size) for _ in range(count)]
    assert all(blocks)
    for block in blocks:
        ctypes.memset(block, 1, size)
    held = _rss_mib()
    for block in blocks[:-1]:
        libc.free(block)
    after_free = _rss_mib()
    with memory.given_back_between_components() as give_back:
        give_back()
    after_give_back = _rss_mib()
    libc.free(blocks[-1])
    assert held - after_free < 64, "free() alone returned the pages: the test shows nothing"
    assert after_free - after_give_back > 200


def test_give_back_frees_cycles_and_the_block_leaves_the_collector_as_it_was() -> None:
    before = _Node()
    assert gc.get_freeze_count() == 0
    with memory.given_back_between_components() as give_back:
        assert gc.get_freeze_count() > 0  # the process's objects, left out of each walk
        made = _Node()
        made_ref, before_ref = weakref.ref(made), weakref.ref(before)
        del made, before
        gc.disable()  # only give_back may collect
        try:
            assert made_ref() is not None
            give_back()
            assert made_ref() is None
            # Frozen when the block started: freed once the run is over.
            assert before_ref() is not None
        finally:
            gc.enable()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert before_ref() is None


def test_the_block_unfreezes_when_its_body_fails() -> None:
    with (
        pytest.raises(RuntimeError, match="a component failed"),
        memory.given_back_between_components() as give_back,
    ):
        give_back()
        raise RuntimeError("a component failed")
    assert gc.get_freeze_count() == 0
