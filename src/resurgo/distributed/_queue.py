"""The fleet's job queue: Redis Streams with a consumer group, and a hash per job.

Why it is built this way:

* **A stream entry is a delivery, the job hash is the truth.**  Workers read
  entries with ``XREADGROUP``; an entry stays pending (owned by its consumer)
  until the job reaches a final state.  A worker that dies stops refreshing
  its pending entries, so after ``lease`` seconds of idleness the others take
  them over with ``XAUTOCLAIM`` and continue the job.
* **A lease token per claim.**  Every claim bumps the job's ``token``; the
  owner's heartbeat, transcript uploads and its final write are compare-and-set
  scripts on that token.  A worker that was merely slow (a long GC, a network
  partition) and lost its lease cannot complete the job a second time, nor
  overwrite the new owner's transcript: exactly-once completion.
* **The session travels with the job.**  The owner uploads the CLI's session
  transcript (``<config>/projects/<cwd>/<session>.jsonl``) under
  ``<prefix>:job:<id>:transcript`` as it grows; whoever reclaims the job writes
  it into its own config dir and resumes the same conversation, on another
  host with another ``$HOME``.
* **A job that keeps killing its workers is not passed around forever:** after
  ``max_claims`` claims it is failed with a reason.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["FleetJob", "FleetQueue", "FleetResult", "run_batch_via_redis"]

GROUP = "workers"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

# Every key a script touches is passed in KEYS (Redis Cluster routes on them; with a prefix holding a
# hash tag, e.g. "{resurgo}", all of a fleet's keys share one slot), never built inside the script.

# KEYS: job, stream, owners, transcript ; ARGV: worker, now, entry_id, max_claims, group
CLAIM = r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-3, '', 0} end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return {-1, '', 0} end
local claims = tonumber(redis.call('HGET', KEYS[1], 'claims') or '0')
if claims >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', ARGV[2],
             'reason', 'claimed ' .. claims .. ' times without finishing (workers died running it)')
  redis.call('HINCRBY', KEYS[1], 'completions', 1)
  redis.call('XACK', KEYS[2], ARGV[5], ARGV[3])
  return {-2, '', 0}
end
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HINCRBY', KEYS[1], 'claims', 1)
local prev = redis.call('HGET', KEYS[1], 'owner') or ''
redis.call('HSET', KEYS[1], 'state', 'running', 'owner', ARGV[1], 'entry', ARGV[3], 'claimed_at', ARGV[2])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[2])
if prev ~= '' and prev ~= ARGV[1] then redis.call('RPUSH', KEYS[3], prev) end
local sid = redis.call('HGET', KEYS[1], 'session_id') or ''
return {token, sid, redis.call('EXISTS', KEYS[4])}
"""

# KEYS: job, stream ; ARGV: group, worker, token, entry_id
HEARTBEAT = r"""
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[3] then return 0 end
local p = redis.call('XPENDING', KEYS[2], ARGV[1], ARGV[4], ARGV[4], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[2], 0, ARGV[4], 'JUSTID')
return 1
"""

# KEYS: job, transcript ; ARGV: token, session_id, content, cwd, now
TRANSCRIPT = r"""
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'session_id', ARGV[2], 'transcript_cwd', ARGV[4], 'transcript_bytes', #ARGV[3],
           'transcript_at', ARGV[5])
return 1
"""

# KEYS: job, stream, done channel ; ARGV: group, token, entry_id, state, result_json, now, worker, reason
FINISH = r"""
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'result', ARGV[5], 'finished_at', ARGV[6], 'finished_by', ARGV[7],
           'reason', ARGV[8])
redis.call('HINCRBY', KEYS[1], 'completions', 1)
redis.call('XACK', KEYS[2], ARGV[1], ARGV[3])
local id = string.match(KEYS[1], '([^:]+)$')
redis.call('PUBLISH', KEYS[3], cjson.encode({job = id, state = ARGV[4]}))
return 1
"""

# KEYS: job, stream, owners ; ARGV: group, token, entry_id, reason
RELEASE = r"""
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
redis.call('HINCRBY', KEYS[1], 'token', 1)
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if owner ~= '' then redis.call('RPUSH', KEYS[3], owner) end
local id = string.match(KEYS[1], '([^:]+)$')
local entry = redis.call('XADD', KEYS[2], '*', 'job', id)
redis.call('XACK', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'queued', 'owner', '', 'entry', entry, 'reason', ARGV[4])
return 1
"""

# KEYS: job, stream[, idem] ; ARGV: id, spec_json, now, batch
SUBMIT = r"""
if #KEYS >= 3 then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {existing, 0} end
  redis.call('SET', KEYS[3], ARGV[1])
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'spec', ARGV[2], 'state', 'queued', 'submitted_at', ARGV[3],
           'batch', ARGV[4], 'token', 0, 'claims', 0, 'completions', 0)
local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[1], 'entry', entry)
return {ARGV[1], 1}
"""


@dataclass(frozen=True, slots=True)
class FleetJob:
    """A job as the fleet sees it: what to run (the supervisor's JobSpec fields) and who ran it."""

    prompt: str
    cwd: str = "."
    model: str | None = None
    claude_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    idem_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("a fleet job needs a non-empty prompt")
        if isinstance(self.claude_args, str):
            raise TypeError("claude_args must be a list of arguments, not one string")
        for k, v in dict(self.env).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"environment override {k!r} must map a string to a string")

    @classmethod
    def of(cls, spec: Any) -> FleetJob:
        """From a FleetJob, a supervisor ``JobSpec`` (same fields), a mapping or a prompt string."""
        if isinstance(spec, FleetJob):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Mapping):
            known = {"prompt", "cwd", "model", "claude_args", "env", "name", "idem_key"}
            unknown = sorted(set(spec) - known)
            if unknown:
                raise ValueError(f"unknown job field(s): {', '.join(unknown)}")
            d = dict(spec)
        else:
            d = {k: getattr(spec, k) for k in ("prompt", "cwd", "model", "claude_args", "env", "name", "idem_key")}
        d["cwd"] = os.path.abspath(os.fspath(d.get("cwd") or "."))
        d["claude_args"] = tuple(d.get("claude_args") or ())
        d["env"] = dict(d.get("env") or {})
        return cls(**d)

    def to_json(self) -> str:
        """The spec as stored in Redis: secret-named env values are replaced by ``<redacted>``
        (each worker fills them from its own environment), so credentials never sit in Redis."""
        from resurgo._redact import REDACTED, is_secret_name

        env = {k: (REDACTED if is_secret_name(k) and v else v) for k, v in self.env.items()}
        return json.dumps({
            "prompt": self.prompt, "cwd": self.cwd, "model": self.model, "claude_args": list(self.claude_args),
            "env": env, "name": self.name, "idem_key": self.idem_key,
        })

    @classmethod
    def from_json(cls, text: str) -> FleetJob:
        return cls.of(json.loads(text))


@dataclass(frozen=True, slots=True)
class FleetResult:
    """How a fleet job ended: the supervisor's result (``result``, its ``to_dict()``) plus fleet facts.

    ``claims`` counts how many times a worker took the job (more than one: it
    was reclaimed from a dead worker or released at shutdown); ``owners`` are
    the workers that held it before the one that finished it.
    """

    job_id: str
    state: str
    name: str | None
    idem_key: str | None
    worker: str | None
    claims: int
    completions: int
    owners: tuple[str, ...]
    session_id: str | None
    reason: str | None
    result: Mapping[str, Any] | None
    submitted_at: float | None
    finished_at: float | None

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "state": self.state, "ok": self.ok, "name": self.name, "idem_key": self.idem_key,
            "worker": self.worker, "claims": self.claims, "completions": self.completions,
            "owners": list(self.owners), "session_id": self.session_id, "reason": self.reason,
            "result": dict(self.result) if self.result is not None else None,
            "submitted_at": self.submitted_at, "finished_at": self.finished_at,
        }


def _f(v: Any) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


class FleetQueue:
    """Submit jobs to the fleet and read their records (synchronous; the worker has its async twin).

    ``prefix`` must match the workers' ``--prefix``.
    """

    def __init__(self, url: str, *, prefix: str = "resurgo", socket_timeout: float = 5.0) -> None:
        self.url = url
        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self.stream = f"{prefix}:jobs"
        self._submit = self.client.register_script(SUBMIT)
        ensure_group(self.client, self.stream)

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def submit(self, spec: Any, *, batch: str = "") -> str:
        """Queue one job; with an ``idem_key`` already submitted, return that job's id instead."""
        job = FleetJob.of(spec)
        jid = uuid.uuid4().hex
        keys = [self.job_key(jid), self.stream]
        if job.idem_key:
            keys.append(f"{self.prefix}:idem:{job.idem_key}")
        r = self._submit(keys=keys, args=[jid, job.to_json(), time.time(), batch])
        return str(r[0])

    def submit_many(self, specs: Iterable[Any], *, batch: str = "") -> list[str]:
        jobs = [FleetJob.of(s) for s in specs]  # validate everything before queueing anything
        return [self.submit(j, batch=batch) for j in jobs]

    def get(self, job_id: str) -> FleetResult | None:
        h = self.client.hgetall(self.job_key(job_id))
        if not h:
            return None
        owners = tuple(self.client.lrange(self.job_key(job_id) + ":owners", 0, -1))
        return _result(job_id, h, owners)

    def states(self, job_ids: Sequence[str]) -> list[str | None]:
        p = self.client.pipeline(transaction=False)
        for j in job_ids:
            p.hget(self.job_key(j), "state")
        return list(p.execute())

    def wait(self, job_ids: Sequence[str], *, timeout: float | None = None, poll: float = 0.25) -> list[FleetResult]:
        """Block until every job is final (or ``timeout`` seconds pass: TimeoutError); results in order."""
        if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        ps = self.client.pubsub(ignore_subscribe_messages=True)
        ps.subscribe(f"{self.prefix}:done")
        try:
            while True:
                st = self.states(job_ids)
                missing = [j for j, s in zip(job_ids, st, strict=True) if s is None]
                if missing:
                    raise KeyError(f"no such fleet job(s): {', '.join(missing[:5])}")
                if all(s in TERMINAL for s in st):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    left = sum(s not in TERMINAL for s in st)
                    raise TimeoutError(f"{left} of {len(job_ids)} fleet job(s) still unfinished")
                ps.get_message(timeout=poll)  # a finish notice wakes us early; else poll
        finally:
            ps.close()
        out = []
        for j in job_ids:
            r = self.get(j)
            assert r is not None
            out.append(r)
        return out

    def close(self) -> None:
        self.client.close()


def ensure_group(client: Any, stream: str) -> None:
    """Create the consumer group (and the stream) unless it exists."""
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def _result(job_id: str, h: Mapping[str, str], owners: tuple[str, ...]) -> FleetResult:
    spec = json.loads(h.get("spec") or "{}")
    try:
        res = json.loads(h["result"]) if h.get("result") else None
    except ValueError:
        res = None
    return FleetResult(
        job_id=job_id,
        state=h.get("state", "queued"),
        name=spec.get("name"),
        idem_key=spec.get("idem_key"),
        worker=h.get("finished_by") or h.get("owner") or None,
        claims=int(h.get("claims") or 0),
        completions=int(h.get("completions") or 0),
        owners=owners,
        session_id=h.get("session_id") or None,
        reason=h.get("reason") or None,
        result=res,
        submitted_at=_f(h.get("submitted_at")),
        finished_at=_f(h.get("finished_at")),
    )


def run_batch_via_redis(
    url: str,
    specs: Iterable[Any],
    *,
    prefix: str = "resurgo",
    timeout: float | None = None,
    batch: str | None = None,
) -> list[FleetResult]:
    """Submit ``specs`` to the fleet at ``url``, wait until every job is final, return results in input order.

    ``specs`` are supervisor ``JobSpec``s, :class:`FleetJob`s, mappings with
    the same fields, or prompt strings; all are validated before any is
    queued.  Jobs with an ``idem_key`` that was submitted before are not
    queued again (their existing record is waited for), so re-running a batch
    after a crash does not run finished jobs twice.  ``timeout`` [None: wait
    forever] raises ``TimeoutError`` (the jobs keep running in the fleet).
    Someone must run ``resurgo worker --redis URL`` for anything to happen.
    """
    q = FleetQueue(url, prefix=prefix)
    try:
        ids = q.submit_many(specs, batch=batch or uuid.uuid4().hex)
        return q.wait(ids, timeout=timeout)
    finally:
        q.close()
