"""A call admitted before a reset, a forced state or a transition does not re-trip.

Regression: auth errors and rate limits ignored the state that admitted the
call, while ordinary outcomes treated a mismatch as STALE, so a call admitted
before an operator's ``reset()`` could force the breaker open again after it.

The rule (documented in ``resurgo.breaker._breaker``): a rate limit counts only
for the episode that admitted it (a late one may merely lengthen an OPEN the
breaker entered on its own); an auth error is about the credential, so it still
forces the breaker open after an automatic transition -- but never after an
operator control or a recovery that closed the breaker.
"""

from __future__ import annotations

from resurgo.breaker import CircuitState, Outcome
from resurgo.clock import FakeClock

from ._helpers import AuthErr, NetErr, RateLimited

S = CircuitState


def _trip(b, n: int = 4) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        b.acquire().on_error(NetErr("x"))


def test_auth_error_admitted_before_an_operator_reset_is_stale(make) -> None:  # type: ignore[no-untyped-def]
    b = make()
    p = b.acquire()
    b.force_open()
    b.reset()
    assert p.on_error(AuthErr("expired key")) is Outcome.STALE
    assert b.state is S.CLOSED
    m = b.metrics()
    assert m.stale == 1 and m.failures == 0


def test_auth_error_admitted_before_reset_of_an_auth_trip_does_not_reforce(make) -> None:  # type: ignore[no-untyped-def]
    b = make()
    p1, p2 = b.acquire(), b.acquire()
    assert p1.on_error(AuthErr("bad")) is Outcome.FORCED_OPEN
    b.reset("credential rotated")
    assert p2.on_error(AuthErr("bad")) is Outcome.STALE
    assert b.state is S.CLOSED
    assert b.acquire().on_error(AuthErr("still bad")) is Outcome.FORCED_OPEN  # a fresh call still trips


def test_auth_error_after_an_automatic_transition_still_forces_open(make, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    b = make()
    p = b.acquire()
    _trip(b)
    assert b.state is S.OPEN
    assert p.on_error(AuthErr("bad")) is Outcome.FORCED_OPEN
    assert b.state is S.FORCED_OPEN


def test_auth_error_admitted_before_a_recovery_closed_the_breaker_is_stale(make) -> None:  # type: ignore[no-untyped-def]
    b = make()
    p = b.acquire()
    assert b.acquire().on_error(AuthErr("bad")) is Outcome.FORCED_OPEN
    b.add_health_probe(lambda: True)
    assert b.execute_recovery().closed
    assert p.on_error(AuthErr("bad")) is Outcome.STALE
    assert b.state is S.CLOSED


def test_rate_limit_admitted_before_a_reset_does_not_reopen(make) -> None:  # type: ignore[no-untyped-def]
    b = make()
    p = b.acquire()
    _trip(b)
    b.reset()
    assert p.on_error(RateLimited(60.0)) is Outcome.STALE
    assert b.state is S.CLOSED
    assert b.metrics().stale == 1


def test_rate_limit_admitted_before_force_open_and_reset_is_stale(make) -> None:  # type: ignore[no-untyped-def]
    b = make()
    p = b.acquire()
    b.force_open()
    assert p.on_error(RateLimited(60.0)) is Outcome.STALE
    assert b.state is S.FORCED_OPEN  # an operator's decision is not rewritten either


def test_rate_limit_from_a_closed_call_does_not_trip_the_half_open_probes(make, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    b = make()
    p = b.acquire()
    _trip(b)
    clock.advance(30.0)
    assert b.state is S.HALF_OPEN
    assert p.on_error(RateLimited(60.0)) is Outcome.STALE
    assert b.state is S.HALF_OPEN


def test_rate_limit_of_an_expired_probe_lease_is_stale(make, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    b = make(half_open_max_calls=2)
    _trip(b)
    clock.advance(30.0)
    probe = b.acquire()
    assert probe.state is S.HALF_OPEN
    clock.advance(10.0)  # the lease expires: counted as a slow failure, the breaker re-opens
    assert b.state is S.OPEN
    clock.advance(1000.0)
    assert b.state is S.HALF_OPEN  # a new episode
    assert probe.on_error(RateLimited(60.0)) is Outcome.STALE
    assert b.state is S.HALF_OPEN


def test_fresh_rate_limit_still_opens_and_a_late_one_may_lengthen_an_automatic_open(make, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    b = make()
    late = b.acquire()
    assert b.acquire().on_error(RateLimited(20.0)) is Outcome.RATE_LIMITED
    assert b.state is S.OPEN and b.retry_after == 20.0
    assert late.on_error(RateLimited(120.0)) is Outcome.RATE_LIMITED  # the server's reset is later
    assert b.retry_after == 120.0
    b.reset()
    q = b.acquire()
    b.open(wait=5.0)  # an operator's open: a call admitted before it cannot lengthen it
    assert q.on_error(RateLimited(120.0)) is Outcome.STALE
    assert b.retry_after == 5.0
