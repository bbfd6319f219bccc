"""A fleet worker: takes jobs from the Redis stream and runs them with a local Supervisor.

Why it is built this way:

* **The Supervisor does the running.**  Everything a single host does —
  watchdogs, recovery, resume, breakers, budgets — applies unchanged; the
  worker only adds the fleet around it: claiming, heartbeats, transcript
  hand-over, exactly-once completion (see ``_queue``).
* **Fleet-shared state by default.**  The worker's endpoint breakers are
  attached to a :class:`RedisBreakerSync`, their retry budgets replaced by a
  :class:`RedisRetryBudget`, and its classifier's learned rules kept in step
  with :class:`RedisLearning`, so a rate limit one worker hits pauses the fleet
  and the fleet's retries stay inside one budget.
* **A reclaimed job resumes its session.**  The transcript the previous owner
  uploaded is written into *this* host's config dir at the path the CLI will
  look for, the job is entered into the local store as interrupted with that
  session, and ``Supervisor.resume`` continues the conversation.
* **A job spec is a request, not an order.**  Whoever can write to Redis can
  queue jobs, so the worker checks each one against its own
  :class:`~resurgo.distributed._policy.WorkerPolicy` (environment, ``cwd``,
  ``claude_args``, session ids) and fails a job it refuses, with the reasons.
  Transcripts are redacted (or encrypted) before they go to Redis
  (:mod:`resurgo.distributed._transcripts`).
* **Graceful stop releases, never abandons.**  On SIGTERM the worker takes no
  new jobs, lets running ones finish for ``grace`` seconds, then interrupts
  them, uploads their transcripts and puts them back in the stream so another
  worker resumes them at once (no lease to wait out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from resurgo._endpoints import endpoint_name
from resurgo.distributed._link import RedisLink, default_worker_name
from resurgo.distributed._policy import WorkerPolicy, is_session_id
from resurgo.distributed._queue import CLAIM, FINISH, GROUP, HEARTBEAT, RELEASE, TRANSCRIPT, FleetJob
from resurgo.distributed._transcripts import TranscriptCodec, TranscriptError

log = logging.getLogger("resurgo.distributed")

__all__ = ["FleetWorker"]


@dataclass
class _Running:
    job_id: str
    entry: str
    token: int
    spec: FleetJob
    env: dict[str, str]
    local_id: str | None = None
    session_id: str | None = None
    uploaded: tuple[str, int] | None = None  # (session, size) last uploaded
    lost: bool = False
    task: asyncio.Task[None] | None = None
    extra: list[asyncio.Task[None]] = field(default_factory=list)


class FleetWorker:
    """Runs fleet jobs from ``url`` until :meth:`stop` (SIGTERM / Ctrl-C in ``resurgo worker``).

    ``config`` is the local :class:`~resurgo.supervise.SupervisorConfig`
    (its ``concurrency`` is the number of jobs run at once unless
    ``concurrency`` is given); ``name`` [host:pid] is the consumer name;
    ``lease`` [30 s] is how long a silent worker keeps its jobs before others
    reclaim them (heartbeats every third of it); ``transcript_interval`` [2 s]
    how often a growing transcript is uploaded; ``max_claims`` [5] after how
    many claims a job is failed instead of passed on; ``grace`` [10 s] how long
    :meth:`stop` lets running jobs finish before releasing them;
    ``share_state`` [True] shares breakers, budgets and learned rules.
    ``policy`` [:class:`WorkerPolicy` defaults: jobs under the current folder,
    no dangerous variables or flags] decides which jobs from Redis it runs;
    ``transcripts`` [redacting] how session transcripts are stored in Redis.
    """

    def __init__(
        self,
        url: str,
        *,
        config: Any = None,
        prefix: str = "resurgo",
        name: str | None = None,
        concurrency: int | None = None,
        lease: float = 30.0,
        transcript_interval: float = 2.0,
        max_claims: int = 5,
        grace: float = 10.0,
        share_state: bool = True,
        environ: dict[str, str] | None = None,
        policy: WorkerPolicy | None = None,
        transcripts: TranscriptCodec | None = None,
    ) -> None:
        from resurgo.supervise import SupervisorConfig

        self.config = config if config is not None else SupervisorConfig()
        if not isinstance(self.config, SupervisorConfig):
            raise TypeError("config must be a SupervisorConfig")
        self.concurrency = concurrency or self.config.max_jobs
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if not lease > 0.3:
            raise ValueError(f"lease must be more than 0.3 s, got {lease!r}")
        if max_claims < 1:
            raise ValueError(f"max_claims must be >= 1, got {max_claims}")
        self.url = url
        self.prefix = prefix
        self.name = name or default_worker_name()
        self.lease = float(lease)
        self.transcript_interval = float(transcript_interval)
        self.max_claims = int(max_claims)
        self.grace = float(grace)
        self.share_state = share_state
        self.environ = dict(os.environ if environ is None else environ)
        self.policy = policy if policy is not None else WorkerPolicy.create()
        self.transcripts = transcripts if transcripts is not None else TranscriptCodec()
        self.stream = f"{prefix}:jobs"
        self.r: Any = aredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=max(5.0, self.lease), socket_connect_timeout=2.0,
            retry=Retry(NoBackoff(), 0),
        )
        self._claim = self.r.register_script(CLAIM)
        self._heartbeat = self.r.register_script(HEARTBEAT)
        self._transcript = self.r.register_script(TRANSCRIPT)
        self._finish = self.r.register_script(FINISH)
        self._release = self.r.register_script(RELEASE)
        self._running: dict[str, _Running] = {}
        self._by_local: dict[str, _Running] = {}
        self._stopping: asyncio.Event | None = None
        self._slot_freed: asyncio.Event | None = None
        self.sup: Any = None
        self.link: RedisLink | None = None
        self._shared_endpoints: set[str] = set()
        self.finished = 0
        self.released = 0
        self._hurry = False

    # ------------------------------------------------------------------ control
    def stop(self, *, now: bool = False) -> None:
        """Take no new jobs; running ones get ``grace`` seconds (none with ``now``), then are released.

        Call from the worker's event loop (a signal handler installed with
        ``loop.add_signal_handler`` is fine).
        """
        if now:
            self._hurry = True
        if self._stopping is not None:
            self._stopping.set()

    async def run(self) -> None:
        """Serve until :meth:`stop`; returns once every running job finished or was released."""
        from resurgo.classifier import Classifier
        from resurgo.supervise import Supervisor

        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        await self._ensure_group()
        classifier = Classifier()
        self.sup = Supervisor(config=self.config, classifier=classifier, environ=self.environ,
                              budget_factory=self._fleet_budget if self.share_state else None,
                              limiter_factory=self._fleet_limiter if self.share_state else None)
        await self.sup.start()
        if self.share_state:
            from resurgo.distributed._shared_breaker import RedisBreakerSync
            from resurgo.distributed._shared_learning import RedisLearning

            self.link = RedisLink(self.url, prefix=self.prefix, name=self.name)
            self._breakers = RedisBreakerSync(self.link)
            self._learning = RedisLearning(self.link, classifier)
            self._share_endpoint({})
        events = asyncio.create_task(self._watch_events(), name="resurgo-worker-events")
        log.info("worker %s serving %s (concurrency %d, lease %.1fs; jobs may run under %s; transcripts %s)",
                 self.name, self.stream, self.concurrency, self.lease, ", ".join(self.policy.cwd_roots) or "nothing",
                 self.transcripts.mode)
        try:
            await self._serve()
        finally:
            await self._drain()
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events
            await self.sup.aclose()
            if self.link is not None:
                self.link.close()
            await self.r.aclose()
            log.info("worker %s stopped (%d finished, %d released)", self.name, self.finished, self.released)

    # ------------------------------------------------------------------ the loop
    async def _ensure_group(self) -> None:
        while True:
            try:
                await self.r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
                return
            except aredis.ResponseError as e:
                if "BUSYGROUP" in str(e):
                    return
                raise
            except (RedisError, OSError) as e:
                assert self._stopping is not None
                log.warning("worker %s: redis unreachable (%s); retrying", self.name, e)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
                if self._stopping.is_set():
                    raise

    async def _serve(self) -> None:
        assert self._stopping is not None and self._slot_freed is not None
        next_reclaim = 0.0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), 0.5)
                continue
            try:
                entries: list[tuple[str, dict[str, str]]] = []
                now = time.monotonic()
                if now >= next_reclaim:
                    next_reclaim = now + max(0.2, self.lease / 4)
                    res = await self.r.xautoclaim(self.stream, GROUP, self.name, int(self.lease * 1000),
                                                  start_id="0-0", count=free)
                    entries = [(eid, f) for eid, f in res[1] if f]
                    for eid in res[2] if len(res) > 2 else ():  # entries deleted from the stream
                        await self.r.xack(self.stream, GROUP, eid)
                    if entries:
                        log.info("worker %s reclaimed %d job(s) from a silent worker", self.name, len(entries))
                if not entries:
                    got = await self.r.xreadgroup(GROUP, self.name, {self.stream: ">"}, count=free, block=500)
                    for _stream, items in got or ():
                        entries += [(eid, f) for eid, f in items if f]
                for eid, fields in entries:
                    jid = fields.get("job")
                    if not jid:
                        await self.r.xack(self.stream, GROUP, eid)
                        continue
                    if jid in self._running:
                        continue  # our own entry (a heartbeat raced the reclaim); already running
                    await self._start(eid, jid)
            except (RedisError, OSError) as e:
                log.warning("worker %s: redis unreachable (%s); retrying", self.name, e)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
                continue

    async def _start(self, entry: str, job_id: str) -> None:
        key = f"{self.prefix}:job:{job_id}"
        r = await self._claim(keys=[key, self.stream, f"{key}:owners", f"{key}:transcript"],
                              args=[self.name, time.time(), entry, self.max_claims, GROUP])
        token = int(r[0])
        if token < 0:
            if token in (-1, -3):  # already final (a stale delivery) or unknown: nothing to run
                await self.r.xack(self.stream, GROUP, entry)
            return
        try:
            spec = FleetJob.from_json(await self.r.hget(key, "spec"))
        except (TypeError, ValueError) as e:
            await self._refuse(_Running(job_id, entry, token, FleetJob("-"), {}), key,
                               [f"malformed job spec: {str(e)[:200]}"])
            return
        env, problems = self.policy.check(spec)
        sid = str(r[1]) or None
        if sid is not None and not is_session_id(sid):
            problems.append("the session id in Redis is not a UUID")
        run = _Running(job_id, entry, token, spec, env, session_id=sid)
        if problems:
            await self._refuse(run, key, problems)
            return
        self._running[job_id] = run
        run.task = asyncio.create_task(self._job(run, resume=bool(int(r[2])) and bool(r[1])),
                                       name=f"resurgo-fleet-{job_id}")

    async def _refuse(self, run: _Running, key: str, problems: list[str]) -> None:
        """Fail a job this worker's policy does not allow (passing it on would only repeat the refusal)."""
        reason = "refused by worker " + self.name + ": " + "; ".join(problems)
        log.warning("job %s %s", run.job_id, reason)
        payload = json.dumps({"state": "failed", "reason": reason, "worker": self.name})
        await self._complete(run, key, "failed", payload, reason)

    # ------------------------------------------------------------------ one job
    async def _job(self, run: _Running, *, resume: bool) -> None:
        from resurgo.supervise import JobSpec, JobState

        key = f"{self.prefix}:job:{run.job_id}"
        try:
            spec = run.spec
            self._share_endpoint(run.env)
            run.extra.append(asyncio.create_task(self._beat(run)))
            if resume and run.session_id:
                h = await self._adopt(run, key)
                run.local_id = h.job_id
                self._by_local[run.local_id] = run
                run.extra.append(asyncio.create_task(self._uploads(run)))
                res = await h.result()
            else:
                h = self.sup.submit(JobSpec(spec.prompt, cwd=spec.cwd, model=spec.model,
                                            claude_args=tuple(spec.claude_args), env=run.env, name=spec.name))
                run.local_id = h.job_id
                self._by_local[h.job_id] = run
                run.extra.append(asyncio.create_task(self._uploads(run)))
                res = await h.result()
            if res.session_id:
                run.session_id = res.session_id
            await self._upload(run)
            if run.lost:
                log.warning("job %s: lost its lease while running; another worker owns it now", run.job_id)
                return
            if res.state in (JobState.INTERRUPTED, JobState.CANCELLED) and self._stopping_set():
                await self._give_back(run, key, "released by a stopping worker")
            elif res.state is JobState.INTERRUPTED:
                await self._give_back(run, key, res.reason or "interrupted")
            else:
                payload = json.dumps({**res.to_dict(), "local_job_id": run.local_id, "worker": self.name})
                await self._complete(run, key, res.state.value, payload, res.reason or "")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never lose a job to a bug of ours: give it back
            log.exception("job %s: internal error in the fleet worker", run.job_id)
            with contextlib.suppress(Exception):
                await self._give_back(run, key, f"fleet worker error: {e!r}")
        finally:
            for t in run.extra:
                t.cancel()
            self._running.pop(run.job_id, None)
            if run.local_id:
                self._by_local.pop(run.local_id, None)
            assert self._slot_freed is not None
            self._slot_freed.set()

    def _stopping_set(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def _retrying(self, what: str, fn: Any) -> Any:
        """Run a Redis call until it succeeds: a final state must not be dropped because Redis blinked."""
        delay = 0.2
        while True:
            try:
                return await fn()
            except (RedisError, OSError) as e:
                log.warning("%s: redis unreachable (%s); retrying in %.1fs", what, e, delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _complete(self, run: _Running, key: str, state: str, payload: str, reason: str) -> None:
        ok = await self._retrying(f"job {run.job_id}", lambda: self._finish(
            keys=[key, self.stream, f"{self.prefix}:done"],
            args=[GROUP, run.token, run.entry, state, payload, time.time(), self.name, reason],
        ))
        if int(ok) == 1:
            self.finished += 1
            log.info("job %s %s (worker %s)", run.job_id, state, self.name)
        else:
            log.warning("job %s: not completed by %s: its lease moved on (someone else finishes it)",
                        run.job_id, self.name)

    async def _give_back(self, run: _Running, key: str, reason: str) -> None:
        ok = await self._retrying(f"job {run.job_id}", lambda: self._release(
            keys=[key, self.stream, f"{key}:owners"], args=[GROUP, run.token, run.entry, reason]))
        if int(ok) == 1:
            self.released += 1
            log.info("job %s released for another worker (%s)", run.job_id, reason)

    async def _adopt(self, run: _Running, key: str) -> Any:
        """Continue a reclaimed job here: its uploaded transcript and session, through ``Supervisor.adopt_job``."""
        from resurgo.supervise import JobSpec

        assert run.session_id is not None
        stored = await self.r.get(f"{key}:transcript")
        try:
            content = self.transcripts.decode(stored or "")
        except TranscriptError as e:
            log.warning("job %s: cannot use the stored transcript (%s); starting the session afresh", run.job_id, e)
            content = ""
        spec = run.spec
        Path(spec.cwd).mkdir(parents=True, exist_ok=True)
        run.uploaded = (run.session_id, -1)  # what we wrote is the decoded text; the next upload re-encodes
        h = self.sup.adopt_job(
            JobSpec(spec.prompt, cwd=spec.cwd, model=spec.model, claude_args=tuple(spec.claude_args), env=run.env,
                    name=spec.name),
            run.session_id,
            transcript=content or "",
            reason=f"its fleet worker stopped; reclaimed by {self.name}",
        )
        log.info("job %s: resuming session %s (%d bytes of transcript) on %s", run.job_id, run.session_id,
                 run.uploaded[1], self.name)
        return h

    async def _beat(self, run: _Running) -> None:
        """Keep our pending entry fresh; if the lease moved on, stop running the job here."""
        key = f"{self.prefix}:job:{run.job_id}"
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                ok = await self._heartbeat(keys=[key, self.stream], args=[GROUP, self.name, run.token, run.entry])
            except (RedisError, OSError) as e:
                log.warning("job %s: heartbeat failed (%s)", run.job_id, e)
                continue
            if int(ok) != 1:
                run.lost = True
                if run.local_id:
                    with contextlib.suppress(Exception):
                        await self.sup.cancel(run.local_id, resumable=True, reason="lease lost to another worker")
                return

    async def _uploads(self, run: _Running) -> None:
        while True:
            await asyncio.sleep(self.transcript_interval)
            with contextlib.suppress(RedisError, OSError):
                await self._upload(run)

    async def _upload(self, run: _Running) -> None:
        """Upload the transcript if it grew since the last upload (compare-and-set on our token)."""
        from resurgo.supervise._session import SessionManager

        sid = run.session_id
        if not sid or run.lost:
            return
        full_env = {**self.environ, **self.config.env, **run.env}
        path = SessionManager().find_transcript(sid, run.spec.cwd, env=full_env)
        if path is None:
            return
        try:
            data = path.read_bytes()
        except OSError:
            return
        if run.uploaded == (sid, len(data)):
            return
        key = f"{self.prefix}:job:{run.job_id}"
        stored = await asyncio.to_thread(self.transcripts.encode, data.decode("utf-8", "replace"))
        ok = await self._transcript(keys=[key, f"{key}:transcript"],
                                    args=[run.token, sid, stored, run.spec.cwd, time.time()])
        if int(ok) == 1:
            run.uploaded = (sid, len(data))
        else:
            run.lost = True

    async def _watch_events(self) -> None:
        """Learn each local job's session id as soon as an attempt starts (transcripts are named after it)."""
        from resurgo.supervise import AttemptStarted

        async for ev in self.sup.events():
            if isinstance(ev, AttemptStarted) and ev.session_id:
                run = self._by_local.get(ev.job_id)
                if run is not None:
                    run.session_id = ev.session_id

    async def _drain(self) -> None:
        """Stopping: let running jobs finish for ``grace`` seconds, then interrupt and release them."""
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if not tasks:
            return
        log.info("worker %s stopping: %d running job(s) get %.0fs to finish", self.name, len(tasks), self.grace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        pending = set(tasks)
        while pending and not self._hurry and loop.time() < deadline:
            _done, pending = await asyncio.wait(pending, timeout=min(0.2, max(0.0, deadline - loop.time())))
        if pending:
            for run in list(self._running.values()):
                if run.local_id:
                    with contextlib.suppress(Exception):
                        await self.sup.cancel(run.local_id, resumable=True, reason="the fleet worker is stopping")
            await asyncio.wait(pending, timeout=self.grace + 10)

    def _fleet_budget(self, url: str) -> Any:
        """The fleet's retry budget of ``url`` (the supervisor asks when the endpoint is first used)."""
        if self.link is None:
            return None  # not connected yet: a local budget
        from resurgo.distributed._budget import RedisRetryBudget

        return RedisRetryBudget(
            self.link, f"endpoint:{endpoint_name(url)}", ratio=self.config.retry_budget_ratio,
            min_retries_per_sec=self.config.retry_budget_min_per_sec, ttl=10.0,
        )

    def _fleet_limiter(self, url: str) -> Any:
        """With ``concurrency="auto"``: the fleet's one adaptive limit of ``url``, kept in Redis."""
        if self.link is None:
            return None  # not connected yet: a local limit
        from resurgo.distributed._limit import RedisLimiter
        from resurgo.limit import AIMDOptions
        from resurgo.supervise._adaptive import endpoint_limit_options

        if self.config.concurrency_algorithm != "aimd":
            log.warning("the fleet-wide limit in Redis is AIMD; concurrency_algorithm=%s applies to local limits only",
                        self.config.concurrency_algorithm)
        opts = AIMDOptions(**endpoint_limit_options("aimd", max_limit=self.config.max_concurrency))
        return RedisLimiter(self.link, f"endpoint:{url}", options=opts, lease_ttl=max(10.0, 3 * self.lease))

    def _share_endpoint(self, env: Mapping[str, str]) -> None:
        """Attach the breaker of the endpoint a job with overrides ``env`` uses to the fleet's breaker sync."""
        if self.link is None:
            return
        url = self.sup.endpoint_url(env)
        if url in self._shared_endpoints:
            return
        self._shared_endpoints.add(url)
        self._breakers.attach(self.sup.endpoint_breaker(url))
