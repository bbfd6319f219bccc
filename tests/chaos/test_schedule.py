"""The scheduler: every injector ticked in order on each tick, all of them stopped whatever happens."""

from __future__ import annotations

import threading

import pytest

from resurgo.chaos._schedule import Scheduler


class _Inj:
    def __init__(self, name: str, log: list[str], *, fail_at: float | None = None, fail_stop: bool = False) -> None:
        self.name, self.log, self.fail_at, self.fail_stop = name, log, fail_at, fail_stop

    def tick(self, now: float) -> None:
        self.log.append(f"{self.name}@{now:g}")
        if self.fail_at is not None and now >= self.fail_at:
            raise RuntimeError("injector broke")

    def stop(self) -> None:
        self.log.append(f"{self.name} stop")
        if self.fail_stop:
            raise RuntimeError("stop broke")


def _clock(times: list[float]):  # type: ignore[no-untyped-def]
    it = iter(times)
    return lambda: next(it)


def test_ticks_every_injector_in_order_until_the_time_is_up() -> None:
    log: list[str] = []
    s = Scheduler([_Inj("a", log), _Inj("b", log)], duration=2.0, t0=0.0, done=lambda: False,
                  stop=threading.Event(), tick=0.0, clock=_clock([0.0, 1.0, 2.0]))
    s.run()
    assert log == ["a@0", "b@0", "a@1", "b@1", "a stop", "b stop"]


def test_ends_when_the_batch_is_done() -> None:
    log: list[str] = []
    done = iter([False, True])
    Scheduler([_Inj("a", log)], duration=99.0, t0=0.0, done=lambda: next(done), stop=threading.Event(), tick=0.0,
              clock=_clock([0.0, 1.0])).run()
    assert log == ["a@0", "a stop"]


def test_every_injector_is_stopped_when_one_fails_even_if_a_stop_fails_too() -> None:
    log: list[str] = []
    s = Scheduler([_Inj("a", log, fail_stop=True), _Inj("b", log, fail_at=1.0)], duration=9.0, t0=0.0,
                  done=lambda: False, stop=threading.Event(), tick=0.0, clock=_clock([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="injector broke"):
        s.run()
    assert log[-2:] == ["a stop", "b stop"]  # nothing stays armed
