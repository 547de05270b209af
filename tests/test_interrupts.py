"""interrupts.not_lost: a Ctrl-C that Python drops inside a finalizer still stops the block."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from pipeline.runners import interrupts


class _InterruptedWhileFinalized:
    """Receives SIGINT while its __del__ runs: Python drops the KeyboardInterrupt there."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between these bytecodes
            pass


def _work_for(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def _default_sigint():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_without_it_the_interrupt_is_lost() -> None:
    # The failure the module exists for, so that the next test can fail.
    try:
        obj = _InterruptedWhileFinalized()
        del obj
        _work_for(1.5)
    except KeyboardInterrupt:
        pytest.fail("Python raised the interrupt from __del__; the next test proves nothing")


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """What reaches `sys.unraisablehook` (Python's "Exception ignored" report)."""
    seen: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_value))
    return seen


def test_a_dropped_interrupt_is_raised_again_and_not_reported(
    reported: list[BaseException | None],
) -> None:
    started = time.monotonic()
    hook = sys.unraisablehook
    with pytest.raises(KeyboardInterrupt), interrupts.not_lost(every_s=0.2):
        obj = _InterruptedWhileFinalized()
        del obj
        _work_for(10)
    assert time.monotonic() - started < 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # The run reports the interrupt once, its own way; Python's "Exception
    # ignored" report of the dropped one is not printed.
    assert reported == []
    assert sys.unraisablehook is hook


def test_other_exceptions_a_finalizer_drops_are_still_reported(
    reported: list[BaseException | None],
) -> None:
    class Failing:
        def __del__(self) -> None:
            raise ValueError("finalizer failed")

    with interrupts.not_lost(every_s=0.05):
        obj = Failing()
        del obj
    assert [str(e) for e in reported] == ["finalizer failed"]


def test_an_ordinary_interrupt_is_raised_once_and_the_block_ends_quietly() -> None:
    with pytest.raises(KeyboardInterrupt), interrupts.not_lost(every_s=0.05):
        os.kill(os.getpid(), signal.SIGINT)
        _work_for(5)
    # No repeat after the block: the handler is back to Python's own.
    _work_for(0.3)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_without_interrupts_is_untouched() -> None:
    with interrupts.not_lost(every_s=0.05):
        _work_for(0.2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts.not_lost(every_s=0.05):
        os.kill(os.getpid(), signal.SIGINT)
        _work_for(0.3)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
