"""Listeners see transitions in state-machine order, whichever thread made them.

Regression: ``_drain`` used to take the queued events under the lock and call
the listeners after releasing it, so thread A could take [CLOSED->OPEN] and
thread B deliver [OPEN->HALF_OPEN] first; the store's history, the Prometheus
gauge and the fleet's Redis publish then ended in the wrong state.
"""

from __future__ import annotations

import itertools
import threading
import time

from resurgo.breaker import CircuitBreaker, CircuitEvent, CircuitState, StateTransition
from resurgo.clock import FakeClock

from ._helpers import NetErr, classifier, count_thresholds

S = CircuitState
WAIT = 5.0  # real-time bound for thread hand-offs; never reached when correct


def _breaker(clock: FakeClock, **kw: object) -> CircuitBreaker:
    return CircuitBreaker(
        "order", thresholds=count_thresholds(min_calls=1, sliding_window=1), clock=clock,
        classifier=classifier, history_limit=100_000, **kw,  # type: ignore[arg-type]
    )


def _fail(b: CircuitBreaker) -> None:
    def boom() -> None:
        raise NetErr("down")

    try:
        b.call(boom)
    except NetErr:
        pass


def test_a_transition_made_while_another_thread_delivers_waits_its_turn(clock: FakeClock) -> None:
    """Thread A is inside a listener with CLOSED->OPEN when thread B makes OPEN->HALF_OPEN."""
    b = _breaker(clock)
    in_listener = threading.Event()
    release = threading.Event()
    seen: list[tuple[S, S]] = []

    def slow(ev: CircuitEvent) -> None:  # blocks on the first transition only
        if isinstance(ev, StateTransition) and ev.to_state is S.OPEN and not in_listener.is_set():
            in_listener.set()
            assert release.wait(WAIT)

    def record(ev: CircuitEvent) -> None:
        if isinstance(ev, StateTransition):
            seen.append((ev.from_state, ev.to_state))

    b.add_listener(slow)
    b.add_listener(record)
    a = threading.Thread(target=_fail, args=(b,))
    a.start()
    assert in_listener.wait(WAIT)
    clock.advance(30.0)  # the wait in open is over: the next reader half-opens it
    states: list[S] = []
    t_b = threading.Thread(target=lambda: states.append(b.state))
    t_b.start()
    deadline = time.monotonic() + WAIT
    while len(b.history) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert [t.to_state for t in b.history] == [S.OPEN, S.HALF_OPEN]  # B made its transition
    # Give B every chance to deliver out of turn (the old code did so at once).
    t_b.join(0.2)
    assert seen == []  # nothing overtook the event A is still delivering
    release.set()
    a.join(WAIT)
    t_b.join(WAIT)
    assert not a.is_alive() and not t_b.is_alive()
    assert seen == [(S.CLOSED, S.OPEN), (S.OPEN, S.HALF_OPEN)]
    assert states == [S.HALF_OPEN]


def test_threads_hammering_transitions_deliver_an_unbroken_chain(clock: FakeClock) -> None:
    """Every delivered transition starts where the previous one ended, and none is lost."""
    b = _breaker(clock)
    chain: list[tuple[S, S]] = []
    lock = threading.Lock()

    def record(ev: CircuitEvent) -> None:
        if isinstance(ev, StateTransition):
            with lock:
                chain.append((ev.from_state, ev.to_state))

    b.add_listener(record)
    start = threading.Barrier(4)

    def worker(i: int) -> None:
        start.wait()
        for n in range(400):
            step = (n + i) % 3
            if step == 0:
                b.open(wait=0)  # CLOSED/HALF_OPEN/OPEN -> OPEN
            elif step == 1:
                b.state  # noqa: B018 - reading it half-opens an elapsed OPEN
            else:
                b.reset()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    final = b.state  # reading it may half-open a last OPEN(wait=0): do it before comparing
    hist = [(t.from_state, t.to_state) for t in b.history]
    assert len(hist) > 1000
    assert chain == hist  # same events, same (state-machine) order
    assert chain[0][0] is S.CLOSED
    breaks = [(x, y) for x, y in itertools.pairwise(chain) if x[1] is not y[0]]
    assert breaks == []
    assert chain[-1][1] is final


def test_a_listener_calling_back_gets_its_events_after_the_one_in_hand(clock: FakeClock) -> None:
    """Re-entry on the delivering thread does not deliver the nested event first."""
    b = _breaker(clock)
    first: list[tuple[S, S]] = []
    second: list[tuple[S, S]] = []

    def resetter(ev: CircuitEvent) -> None:
        if isinstance(ev, StateTransition):
            first.append((ev.from_state, ev.to_state))
            if ev.to_state is S.OPEN:
                b.reset("listener reset")

    def record(ev: CircuitEvent) -> None:
        if isinstance(ev, StateTransition):
            second.append((ev.from_state, ev.to_state))

    b.add_listener(resetter)
    b.add_listener(record)
    _fail(b)
    assert b.state is S.CLOSED
    assert first == second == [(S.CLOSED, S.OPEN), (S.OPEN, S.CLOSED)]


def test_a_closed_success_queues_no_event(clock: FakeClock) -> None:
    """Delivery costs nothing on the hot path: successes in CLOSED never touch the queue."""
    got: list[CircuitEvent] = []
    b = _breaker(clock, listeners=[got.append])
    for _ in range(100):
        assert b.call(lambda: 1) == 1
    assert got == [] and b._pending == []
