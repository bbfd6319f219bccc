"""A hypothesis state machine: the breaker against a small reference model.

The model is deliberately naive — a list of the last N outcomes, an epoch
counter, a dict of probe leases — so that it is obviously right; the breaker's
ring buffers, running totals, per-episode state objects and lazy ticks must
agree with it after every step, including permits held across transitions and
probe leases that expire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resurgo.breaker import CircuitBreaker, CircuitOpenError, CircuitState, Outcome, Permit
from resurgo.clock import FakeClock

from ._helpers import AuthErr, BadRequest, NetErr, RateLimited, classifier, count_thresholds

S = CircuitState
SIZE, MIN, FR, SR, HALF, LEASE, SLOW = 4, 3, 0.5, 0.75, 2, 10.0, 5.0
WAIT, MULT, MAXW = 10.0, 2.0, 40.0


@dataclass
class Model:
    now: float
    state: S = S.CLOSED
    window: list[int] = field(default_factory=list)
    attempt: int = 0
    deadline: float = 0.0
    epoch: int = 0
    op: int = 0  # operator interventions (reset): results of calls admitted before one are stale
    leases: dict[int, float] = field(default_factory=dict)
    issued: int = 0
    probes: list[int] = field(default_factory=list)
    seq: int = 0

    def goto(self, state: S, *, attempt: int = 0, wait: float = 0.0) -> None:
        self.state = state
        self.epoch += 1
        self.attempt = attempt
        self.window = []
        self.leases = {}
        self.issued = 0
        self.probes = []
        self.seq = 0
        self.deadline = self.now + wait

    def open(self, attempt: int, wait: float | None = None) -> None:
        if wait is None:
            wait = min(MAXW, WAIT * MULT ** (attempt - 1))
        self.goto(S.OPEN, attempt=attempt, wait=wait)

    def tick(self) -> None:
        changed = True
        while changed:
            changed = False
            if self.state is S.OPEN and self.now >= self.deadline:
                self.goto(S.HALF_OPEN, attempt=self.attempt)
                changed = True
            elif self.state is S.HALF_OPEN:
                expired = sorted(k for k, d in self.leases.items() if d <= self.now)
                for k in expired:
                    del self.leases[k]
                for _ in expired:
                    if self.state is not S.HALF_OPEN:
                        break
                    before = self.epoch
                    self.probe_result(3)
                    changed = changed or self.epoch != before

    def admit(self) -> int | None:
        """Lease id (0 = none needed) or None when rejected."""
        self.tick()
        if self.state is S.CLOSED:
            return 0
        if self.state is S.HALF_OPEN and self.issued < HALF:
            self.issued += 1
            self.seq += 1
            self.leases[self.seq] = self.now + LEASE
            return self.seq
        return None

    def probe_result(self, code: int) -> None:
        self.probes.append(code)
        fails = sum(c & 1 for c in self.probes)
        slows = sum(c >> 1 for c in self.probes)
        if fails / HALF >= FR or slows / HALF >= SR:
            self.open(self.attempt + 1)
        elif len(self.probes) >= HALF:
            self.goto(S.CLOSED)

    def record(self, epoch: int, lease: int, code: int) -> Outcome:
        if epoch != self.epoch:
            return Outcome.STALE
        if self.state is S.CLOSED:
            self.window = [*self.window, code][-SIZE:]
            n = len(self.window)
            fails = sum(c & 1 for c in self.window)
            slows = sum(c >> 1 for c in self.window)
            if n >= MIN and (fails / n >= FR or slows / n >= SR):
                self.open(1)
        else:  # HALF_OPEN
            if lease not in self.leases:
                return Outcome.STALE
            del self.leases[lease]
            self.probe_result(code)
        return Outcome.FAILURE if code & 1 else Outcome.SUCCESS

    def ignore(self, epoch: int, lease: int) -> Outcome:
        if epoch == self.epoch and lease in self.leases:
            del self.leases[lease]
            self.issued -= 1
        return Outcome.IGNORED

    def auth(self, op: int) -> Outcome:
        if op != self.op:  # the call began before an operator reset: it cannot undo it
            return Outcome.STALE
        if self.state in (S.CLOSED, S.OPEN, S.HALF_OPEN):
            self.goto(S.FORCED_OPEN)
        return Outcome.FORCED_OPEN

    def rate_limited(self, epoch: int, lease: int, op: int, wait: float) -> Outcome:
        s = self.state
        fresh = epoch == self.epoch and (s is S.CLOSED or lease in self.leases)
        # a late rate limit may only lengthen an automatic OPEN to the server's reset time
        if not fresh and not (s is S.OPEN and op == self.op and self.now + wait > self.deadline):
            return Outcome.STALE
        if s is S.CLOSED or s is S.HALF_OPEN or (s is S.OPEN and self.now + wait > self.deadline):
            attempt = self.attempt + 1 if s is S.HALF_OPEN else max(1, self.attempt)
            self.open(attempt, wait)
        return Outcome.RATE_LIMITED


KINDS = ("ok", "slow_ok", "fail", "slow_fail", "validation", "auth", "rate_limit")
# Weighted towards plain outcomes so runs reach OPEN, HALF_OPEN and back often;
# auth errors are absorbing until a reset, so they must stay rare.
CALL_KINDS = ("ok", "ok", "ok", "fail", "fail", "fail", "slow_ok", "slow_fail", "validation",
              "rate_limit", "auth")


@dataclass
class Held:
    permit: Permit
    epoch: int
    lease: int
    t0: float
    op: int


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.b = CircuitBreaker(
            "m",
            thresholds=count_thresholds(
                sliding_window=SIZE, min_calls=MIN, failure_rate=FR, slow_call_rate=SR,
                half_open_max_calls=HALF, half_open_lease=LEASE, slow_call_duration=SLOW,
                wait_in_open=WAIT, wait_multiplier=MULT, max_wait_in_open=MAXW,
            ),
            clock=self.clock,
            classifier=classifier,
        )
        self.m = Model(now=self.clock.monotonic())
        self.held: list[Held] = []

    def _sync(self) -> None:
        self.m.now = self.clock.monotonic()

    def _expected(self, kind: str, epoch: int, lease: int, t0: float, op: int) -> Outcome:
        slow = 2 if self.clock.monotonic() - t0 >= SLOW else 0
        if kind in ("ok", "slow_ok"):
            return self.m.record(epoch, lease, slow)
        if kind in ("fail", "slow_fail"):
            return self.m.record(epoch, lease, 1 | slow)
        if kind == "validation":
            return self.m.ignore(epoch, lease)
        if kind == "auth":
            return self.m.auth(op)
        return self.m.rate_limited(epoch, lease, op, 25.0)

    def _exc(self, kind: str) -> BaseException:
        return {
            "fail": NetErr("x"), "slow_fail": NetErr("x"), "validation": BadRequest("x"),
            "auth": AuthErr("x"), "rate_limit": RateLimited(25.0),
        }[kind]

    @rule(kind=st.sampled_from(CALL_KINDS))
    def call(self, kind: str) -> None:
        self._sync()
        lease = self.m.admit()
        epoch = self.m.epoch
        t0 = self.m.now
        ran: list[bool] = []

        def fn() -> str:
            ran.append(True)
            if kind.startswith("slow"):
                self.clock.advance(SLOW)
            if kind in ("ok", "slow_ok"):
                return "ok"
            raise self._exc(kind)

        if lease is None:
            with pytest.raises(CircuitOpenError):
                self.b.call(fn)
            assert ran == []
            return
        try:
            self.b.call(fn)
        except CircuitOpenError:  # pragma: no cover - a disagreement
            raise AssertionError(f"rejected, model admitted ({self.m.state})") from None
        except Exception:
            pass
        assert ran == [True]
        self._sync()
        self._expected(kind, epoch, lease, t0, self.m.op)

    @rule()
    def hold(self) -> None:
        self._sync()
        lease = self.m.admit()
        if lease is None:
            with pytest.raises(CircuitOpenError):
                self.b.acquire()
            return
        self.held.append(Held(self.b.acquire(), self.m.epoch, lease, self.m.now, self.m.op))

    @precondition(lambda self: self.m.state is S.HALF_OPEN)
    @rule()
    def hold_probe(self) -> None:
        """Probes held across time are what lease expiry is about: make them common."""
        self.hold()

    @precondition(lambda self: self.held)
    @rule(data=st.data(), kind=st.sampled_from(CALL_KINDS))
    def finish_held(self, data: st.DataObject, kind: str) -> None:
        h = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        self._sync()
        expected = self._expected(kind.removeprefix("slow_"), h.epoch, h.lease, h.t0, h.op)
        ok = kind in ("ok", "slow_ok")
        got = h.permit.on_success() if ok else h.permit.on_error(self._exc(kind))
        assert got is expected

    @rule(dt=st.sampled_from([0.5, 3.0, 5.0, 10.0, 10.0, 25.0, 41.0]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)
        self._sync()

    @precondition(lambda self: self.m.state is S.FORCED_OPEN or len(self.held) > 3)
    @rule()
    def reset(self) -> None:
        self.b.reset()
        self._sync()
        self.m.op += 1
        self.m.goto(S.CLOSED)

    @invariant()
    def agrees(self) -> None:
        self._sync()
        self.m.tick()
        assert self.b.state is self.m.state
        m = self.b.metrics()
        if self.m.state is S.CLOSED:
            assert m.window.calls == len(self.m.window)
            assert m.window.failures == sum(c & 1 for c in self.m.window)
            assert m.window.slow == sum(c >> 1 for c in self.m.window)
        if self.m.state is S.OPEN:
            assert m.retry_after == pytest.approx(self.m.deadline - self.m.now)
            assert m.attempt == self.m.attempt


BreakerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
TestBreakerMachine = BreakerMachine.TestCase
