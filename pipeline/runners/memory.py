"""Gives a finished component's memory back before the next one starts.

The local runner runs every component in one process, so each one starts on
what the ones before it left, and the run's peak is the highest of those
starting points plus a component's own rise. Two things kept the memory a
component had freed (measured in docs/benchmarks.md, "Goal 2"):

- TensorFlow's graphs, Keras' models and Beam's pipelines sit in reference
  cycles, which only the garbage collector's oldest generation frees, and it
  runs rarely in a process with TensorFlow's millions of long-lived objects;
- glibc's malloc keeps the pages of freed blocks in its heaps and arenas for
  the process to reuse, and gives them back to the kernel only when asked
  (`components.native_heap`).

With both done after each component, the 1.5M-row run's peak fell by about
300 MiB. A full collection walks every object the process holds (0.35 s here,
after TensorFlow's imports), so the objects that survive one are frozen
(`gc.freeze`): the next walks only what the component after it made. Frozen
objects are still freed by reference counting; a cycle among them waits until
the run has ended and the collector runs in full again.

On Kubeflow each component is a process of its own, so this is the local
runner's concern alone.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from components import native_heap


def give_back(freeze: bool = True) -> None:
    """Frees cyclic garbage and returns free heap pages to the kernel.

    Args:
        freeze: Freeze what survives the collection, so that the next one
            walks only what is made after it.
    """
    gc.collect()
    if freeze:
        gc.freeze()
    native_heap.trim()


@contextmanager
def given_back_between_components() -> Iterator[Callable[[], None]]:
    """A block in which the yielded `give_back` is cheap.

    Objects alive when the block starts are frozen at once, so that the first
    `give_back` does not walk TensorFlow's and TFX's modules, and all are
    unfrozen when it ends (they are collectable again, at the collector's
    next full run). Where objects are frozen already (an application that
    froze its own), unfreezing would thaw those too: then nothing is frozen
    and each `give_back` walks the whole heap.

    Yields:
        `give_back`, to call after each component.
    """
    if gc.get_freeze_count():
        yield functools.partial(give_back, freeze=False)
        return
    try:
        gc.freeze()
        yield give_back
    finally:
        gc.unfreeze()
