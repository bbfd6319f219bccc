"""``resurgo batch --redis URL``: submit a batch file to the fleet and follow it to the end.

The file is read, checked and keyed exactly as for a local batch
(:func:`resurgo.cli._batch.load_batch`), so the same entry has the same
idempotency key on both paths and submitting the file again queues nothing new
(:meth:`FleetQueue.submit` dedups on the key).  ``resurgo worker`` processes do
the running; this command only polls the job hashes (the truth, see
:mod:`resurgo.distributed._queue`) for the progress display and prints the same
summary and exit status as a local batch.

Why the waiting is forgiving: the jobs live in Redis, not in this process.
Ctrl-C, ``--timeout`` or Redis going away while we wait lose nothing — the
fleet keeps running the jobs and running the same batch again picks them up —
so those cases end with the "interrupted / resumable" status (5) instead of an
error.  Only a Redis that cannot be reached *before* anything is submitted is a
usage error (2).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from resurgo.cli._batch import BatchFile, SummaryRow, load_batch, print_batch_summary
from resurgo.cli._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CliError, console
from resurgo.cli._progress import Progress

if TYPE_CHECKING:
    from resurgo.distributed._queue import FleetQueue, FleetResult

#: How often the job hashes are read while waiting (only the unfinished ones).
POLL_S = 0.25

_FINAL = frozenset({"succeeded", "failed", "cancelled"})
#: A job whose hash vanished (Redis restarted without persistence): submitting the file again re-queues it.
LOST = "lost"


def _show(url: str) -> str:
    """The URL without its password; a database number (``/0``) is kept, it says which fleet."""
    from urllib.parse import urlsplit

    from resurgo.config import redact_url

    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return shown
    if shown.endswith("/<redacted>") and parts.path.strip("/").isdigit() and not parts.query:
        shown = shown[: -len("<redacted>")] + parts.path.strip("/")
    return shown


def connect(url: str, *, prefix: str, source: str = "--redis") -> FleetQueue:
    """A queue client on ``url``, or a clear usage error (nothing has been submitted yet)."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise click.BadParameter(f"must start with redis://, rediss:// or unix://, got {_show(url)!r}",
                                 param_hint="--redis")
    try:
        from redis.exceptions import RedisError

        from resurgo.distributed._queue import FleetQueue
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "redis":
            raise
        raise CliError("--redis needs the redis package: pip install 'resurgo[redis]' "
                       "(or run the batch here without --redis)") from None
    try:
        return FleetQueue(url, prefix=prefix)  # creates the consumer group: a round trip
    except RedisError as e:
        raise CliError(f"cannot reach Redis at {_show(url)} (from {source}): {_one(e)}; "
                       "nothing was submitted") from None
    except ValueError as e:  # a URL redis-py cannot parse
        raise CliError(f"invalid Redis URL {_show(url)}: {e}") from None


def _exit_status(r: FleetResult) -> int:
    """The supervisor's status for the job when a worker finished it, else from the fleet state."""
    st = (r.result or {}).get("exit_status")
    if isinstance(st, int) and not isinstance(st, bool):
        return st
    if r.state == "succeeded":
        return EXIT_OK
    if r.state == "failed":  # e.g. failed by the fleet after too many claims: a retryable failure given up on
        return EXIT_FAILED
    return EXIT_INTERRUPTED  # cancelled, still queued/running, or lost: submitting again continues it


def _row(r: FleetResult, where: str) -> SummaryRow:
    res: Mapping[str, Any] = r.result or {}

    def num(k: str) -> Any:
        v = res.get(k)
        return v if isinstance(v, int | float) and not isinstance(v, bool) else None

    text = res.get("result_text") if r.ok else (r.reason or res.get("reason"))
    dur = num("duration_s")
    return SummaryRow(job_id=r.job_id, name=r.name or where, state=r.state, attempts=num("attempts"),
                      recoveries=num("recoveries"), duration_s=float(dur) if dur is not None else None,
                      text=str(text or ""), exit_status=_exit_status(r), worker=r.worker, claims=r.claims)


def _placeholder(job_id: str, spec: Mapping[str, Any], *, state: str = LOST, reason: str | None = None) -> FleetResult:
    """A row for a job whose record cannot be read: vanished (``lost``) or Redis down (``unknown``)."""
    from resurgo.distributed._queue import FleetResult

    return FleetResult(job_id=job_id, state=state, name=spec.get("name"), idem_key=spec.get("idem_key"),
                       worker=None, claims=0, completions=0, owners=(), session_id=None,
                       reason=reason or ("its record vanished from Redis (restarted without persistence?); "
                                         "submit the batch again to queue it anew"),
                       result=None, submitted_at=None, finished_at=None)


def _already(q: FleetQueue, keys: Sequence[str]) -> tuple[int, int]:
    """How many entries the fleet already has (finished, unfinished), for the "nothing new" line."""
    p = q.client.pipeline(transaction=False)
    for k in keys:
        p.get(f"{q.prefix}:idem:{k}")
    ids = [i for i in p.execute() if i]
    if not ids:
        return 0, 0
    states = q.states(ids)
    done = sum(s in _FINAL for s in states)
    return done, len(ids) - done


def _wait(q: FleetQueue, ids: Sequence[str], specs: Sequence[Mapping[str, Any]], progress: Progress,
          *, timeout: float | None) -> tuple[dict[str, FleetResult], str | None]:
    """Follow the jobs until all are final; returns the latest record of each and why we stopped early."""
    from redis.exceptions import RedisError

    latest: dict[str, FleetResult] = {}
    seen: dict[str, str] = {}
    spec_of = dict(zip(ids, specs, strict=True))
    pending = list(dict.fromkeys(ids))  # the same job twice in one file is impossible, but be safe
    deadline = None if timeout is None else time.monotonic() + timeout
    down: str | None = None
    try:
        while pending:
            try:
                states = q.states(pending)
                for jid, st in zip(pending, states, strict=True):
                    if st is None:
                        latest[jid] = _placeholder(jid, spec_of[jid])
                        progress.on_fleet(jid, LOST, worker=None, claims=0, reason=latest[jid].reason, final=True)
                    elif st != seen.get(jid):
                        r = q.get(jid)
                        if r is None:
                            continue  # vanished between the two reads: the next round reports it
                        latest[jid] = r
                        progress.on_fleet(jid, r.state, worker=r.worker, claims=r.claims, reason=r.reason,
                                          final=r.state in _FINAL)
                        seen[jid] = r.state
                if down is not None:
                    progress.log("", "[green]Redis is reachable again[/]")
                    down = None
                pending = [j for j in pending if latest.get(j) is None or latest[j].state not in (*_FINAL, LOST)]
            except RedisError as e:
                if down is None:
                    progress.log("", f"[red]Redis unreachable[/] ({_one(e)}); still waiting — the jobs are kept in "
                                     "Redis and the workers carry on (Ctrl-C stops waiting)")
                down = str(e)
            if not pending:
                break
            if deadline is not None and time.monotonic() >= deadline:
                return latest, "timeout"
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return latest, "interrupted"
    return latest, None


def _one(e: BaseException) -> str:
    from resurgo.observe import redact

    return redact(" ".join(str(e).split())).rstrip(".")[:160]


def batch_via_redis(url: str, file: Path, *, prefix: str, timeout: float | None, quiet: bool, as_json: bool,
                    source: str = "--redis") -> int:
    """Submit FILE's jobs to the fleet at ``url``, show their progress, print the summary; the exit status."""
    bf, kws = load_batch(file)
    q = connect(url, prefix=prefix, source=source)
    try:
        return _run(q, url, bf, kws, timeout=timeout, quiet=quiet, as_json=as_json, source=source)
    finally:
        q.close()


def _run(q: FleetQueue, url: str, bf: BatchFile, kws: list[dict[str, Any]], *, timeout: float | None,
         quiet: bool, as_json: bool, source: str) -> int:
    from redis.exceptions import RedisError

    from resurgo.distributed._queue import FleetJob

    err = console(stderr=True)
    try:
        jobs = [FleetJob.of(kw) for kw in kws]  # checked by parse_batch already; this cannot disagree
    except (TypeError, ValueError) as e:
        raise CliError(f"{bf.path}: {e}") from None
    batch_id = "file:" + hashlib.sha256(str(bf.path).encode()).hexdigest()[:16]
    try:
        done, unfinished = _already(q, [kw["idem_key"] for kw in kws])
    except RedisError as e:
        raise CliError(f"cannot reach Redis at {_show(url)}: {_one(e)}; nothing was submitted") from None
    if not quiet:
        new = len(jobs) - done - unfinished
        err.print(f"submitting {len(jobs)} job(s) to the fleet at {_show(url)} (prefix {q.prefix}, from {source})"
                  + (f": {done} already finished, {unfinished} already queued or running, {new} new"
                     if done or unfinished else ""))
    ids: list[str] = []
    try:
        for j in jobs:
            ids.append(q.submit(j, batch=batch_id))
    except RedisError as e:
        raise CliError(f"lost Redis at {_show(url)} after submitting {len(ids)} of {len(jobs)} job(s): {_one(e)}; "
                       "submitting the same file again queues only the missing ones") from None
    except KeyboardInterrupt:
        raise CliError(f"interrupted after submitting {len(ids)} of {len(jobs)} job(s); submitting the same file "
                       "again queues only the missing ones", EXIT_INTERRUPTED) from None
    progress = Progress(names={i: str(kw["name"]) for i, kw in zip(ids, kws, strict=True)}, total=len(ids),
                        quiet=quiet)
    with progress:
        latest, stopped = _wait(q, ids, kws, progress, timeout=timeout)
    # one last read of what is still open, so the table shows where each job stands
    for jid in ids:
        if jid not in latest or latest[jid].state not in (*_FINAL, LOST):
            spec = kws[ids.index(jid)]
            try:
                r = q.get(jid) or _placeholder(jid, spec)
            except RedisError as e:
                r = latest.get(jid) or _placeholder(jid, spec, state="unknown",
                                                    reason=f"Redis unreachable, state unknown: {_one(e)}")
            latest[jid] = r
    results = [latest[j] for j in ids]
    open_ = sum(r.state not in (*_FINAL, LOST) for r in results)
    lost = sum(r.state == LOST for r in results)
    notes = []
    if open_:
        why = {"timeout": f" after {timeout or 0:g}s", "interrupted": " (Ctrl-C)"}.get(stopped or "", "")
        notes.append(f"stopped waiting{why}: {open_} job(s) unfinished; the fleet keeps running them — "
                     "submit the same batch again to wait for them")
    if lost:
        notes.append(f"{lost} job(s) vanished from Redis; submit the same batch again to queue them anew")
    note = "\n".join(notes) or None
    if note and as_json:  # stdout holds the JSON document alone
        err.print(note)
    rows = [_row(r, job.where) for job, r in zip(bf.jobs, results, strict=True)]
    return print_batch_summary(rows, [r.to_dict() for r in results], bf, as_json=as_json, fleet=True,
                               note=None if as_json else note)


__all__ = ["batch_via_redis", "connect"]
