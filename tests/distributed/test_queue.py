"""The queue's compare-and-set scripts: exactly-once completion, release, poison jobs, idempotent submit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from resurgo.distributed import FleetJob, FleetQueue
from resurgo.distributed._queue import CLAIM, FINISH, GROUP, HEARTBEAT, RELEASE, TRANSCRIPT

pytestmark = pytest.mark.redis


@pytest.fixture
def q(redis_url: str) -> Iterator[FleetQueue]:
    fq = FleetQueue(redis_url, prefix="t")
    yield fq
    fq.close()


class Owner:
    """The worker's side of the protocol, driven step by step."""

    def __init__(self, q: FleetQueue, name: str) -> None:
        self.q, self.name = q, name
        c = q.client
        self.claim_s, self.beat_s = c.register_script(CLAIM), c.register_script(HEARTBEAT)
        self.finish_s, self.release_s = c.register_script(FINISH), c.register_script(RELEASE)
        self.tr_s = c.register_script(TRANSCRIPT)

    def read(self, *, reclaim: bool = False) -> str:
        if reclaim:
            _, items, *_ = self.q.client.xautoclaim(self.q.stream, GROUP, self.name, 0, count=1)
        else:
            got = self.q.client.xreadgroup(GROUP, self.name, {self.q.stream: ">"}, count=1)
            items = got[0][1] if got else []
        assert items, "nothing to read"
        return str(items[0][0])

    def claim(self, jid: str, entry: str, max_claims: int = 5) -> int:
        k = self.q.job_key(jid)
        r = self.claim_s(keys=[k, self.q.stream, k + ":owners", k + ":transcript"],
                         args=[self.name, time.time(), entry, max_claims, GROUP])
        return int(r[0])

    def beat(self, jid: str, token: int, entry: str) -> int:
        return int(self.beat_s(keys=[self.q.job_key(jid), self.q.stream], args=[GROUP, self.name, token, entry]))

    def finish(self, jid: str, token: int, entry: str, state: str = "succeeded") -> int:
        return int(self.finish_s(keys=[self.q.job_key(jid), self.q.stream, "t:done"],
                                 args=[GROUP, token, entry, state, '{"ok": true}', time.time(), self.name, ""]))

    def transcript(self, jid: str, token: int, text: str) -> int:
        k = self.q.job_key(jid)
        return int(self.tr_s(keys=[k, k + ":transcript"], args=[token, "sid", text, "/w", time.time()]))

    def release(self, jid: str, token: int, entry: str) -> int:
        k = self.q.job_key(jid)
        return int(self.release_s(keys=[k, self.q.stream, k + ":owners"], args=[GROUP, token, entry, "bye"]))


def test_a_reclaimed_jobs_slow_old_owner_cannot_complete_it(q: FleetQueue) -> None:
    jid = q.submit("do it")
    a, b = Owner(q, "a"), Owner(q, "b")
    ea = a.read()
    ta = a.claim(jid, ea)
    assert a.beat(jid, ta, ea) == 1
    assert a.transcript(jid, ta, "line 1\n") == 1
    eb = b.read(reclaim=True)  # a went silent; b takes the entry over
    assert eb == ea
    tb = b.claim(jid, eb)
    assert tb == ta + 1
    assert a.beat(jid, ta, ea) == 0  # a learns it lost the lease
    assert a.transcript(jid, ta, "stale\n") == 0  # and cannot overwrite b's session
    assert q.client.get(q.job_key(jid) + ":transcript") == "line 1\n"
    assert a.finish(jid, ta, ea) == 0  # nor complete the job
    assert b.finish(jid, tb, eb) == 1
    assert b.finish(jid, tb, eb) == 0  # a second completion by anyone is refused
    r = q.get(jid)
    assert r is not None and r.state == "succeeded" and r.completions == 1 and r.worker == "b" and r.owners == ("a",)
    assert q.client.xpending(q.stream, GROUP)["pending"] == 0
    # a stale redelivery of a finished job is acknowledged without running it
    assert a.claim(jid, ea) == -1


def test_release_requeues_at_once_and_a_poison_job_fails_after_max_claims(q: FleetQueue) -> None:
    jid = q.submit("do it")
    a, b = Owner(q, "a"), Owner(q, "b")
    e1 = a.read()
    t1 = a.claim(jid, e1, max_claims=2)
    assert a.release(jid, t1, e1) == 1
    assert q.get(jid).state == "queued"  # type: ignore[union-attr]
    e2 = b.read()  # a fresh entry, readable now (no lease to wait out)
    assert e2 != e1
    t2 = b.claim(jid, e2, max_claims=2)
    assert t2 > t1
    assert a.finish(jid, t1, e1) == 0
    e3 = a.read(reclaim=True)
    assert a.claim(jid, e3, max_claims=2) == -2  # claimed twice already: failed, not passed on again
    r = q.get(jid)
    assert r is not None and r.state == "failed" and "claimed 2 times" in (r.reason or "") and r.completions == 1
    assert b.finish(jid, t2, e2) == 0


def test_submit_is_idempotent_validates_first_and_keeps_secrets_out(q: FleetQueue) -> None:
    a = q.submit({"prompt": "p", "idem_key": "k1", "env": {"ANTHROPIC_API_KEY": "sk-ant-secret", "X": "1"}})
    assert q.submit({"prompt": "other", "idem_key": "k1"}) == a
    assert "sk-ant-secret" not in q.client.hget(q.job_key(a), "spec")
    n = q.client.xlen(q.stream)
    with pytest.raises(ValueError):
        q.submit_many(["fine", {"prompt": "  "}])
    with pytest.raises(ValueError, match="unknown job field"):
        q.submit({"prompt": "p", "promt": "typo"})
    assert q.client.xlen(q.stream) == n  # nothing of the bad batch was queued
    with pytest.raises(KeyError):
        q.wait(["nope"], timeout=1)
    with pytest.raises(TimeoutError):
        q.wait([a], timeout=0.3)
    spec: Any = FleetJob.of({"prompt": "p", "cwd": "rel"})
    assert spec.cwd.startswith("/")
