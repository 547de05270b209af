"""Ctrl-C that stops a run even when it lands in a weakref callback or a finalizer.

Python runs a signal's handler in the main thread between two bytecodes. When
those bytecodes belong to a weakref callback or a `__del__` (Beam, TensorFlow
and TFMA create many, and the garbage collector runs them at any point), the
KeyboardInterrupt the handler raises is printed as "Exception ignored in ..."
and dropped, and the run carries on to the end. Seen in CI: a Ctrl-C during
Transform ended in a finished run with exit status 0.

`not_lost` installs a handler that remembers the interrupt and raises it, and
a watcher thread that raises it again every `every_s` seconds until it leaves
the block: a dropped interrupt is delayed, not lost. Python's "Exception
ignored" report of the dropped one is left out (the run ends with its own
one line); any other exception a finalizer drops is reported as before.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def not_lost(every_s: float = 0.5) -> Iterator[None]:
    """Within the block, a SIGINT raises KeyboardInterrupt until the block is left.

    Does nothing outside the main thread, or where SIGINT has a handler other
    than Python's default (a caller that handles it, or a shell that ignores
    it for a background job).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pending = threading.Event()
    leaving = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if leaving.is_set():
            return
        pending.set()
        raise KeyboardInterrupt

    def repeat() -> None:
        while not leaving.wait(every_s):
            if pending.is_set():
                _thread.interrupt_main(signal.SIGINT)

    report = sys.unraisablehook

    def unraisable(info: sys.UnraisableHookArgs) -> None:
        # Our KeyboardInterrupt, dropped by a finalizer: raised again below.
        if pending.is_set() and isinstance(info.exc_value, KeyboardInterrupt):
            return
        report(info)

    sys.unraisablehook = unraisable
    signal.signal(signal.SIGINT, handler)
    watcher = threading.Thread(target=repeat, name="sigint-repeat", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        # First, so that a repeat arriving now is ignored, not raised again
        # while the first KeyboardInterrupt is being handled.
        leaving.set()
        watcher.join()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if sys.unraisablehook is unraisable:
            sys.unraisablehook = report
