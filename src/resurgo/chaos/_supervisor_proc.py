"""The supervisor process of a chaos run: ``python -m resurgo.chaos._supervisor_proc SPEC.json``.

The chaos runner keeps the supervisor in a child process of its own, for two
reasons.  The run must be able to SIGKILL the supervisor and start a new one on
the same store (the restarted one has to resume what the dead one left), which
is only a real test if the supervisor is a separate process.  And the runner's
measurements (the stand-in, the fault proxy, the killer) must survive whatever
the chaos does to the supervisor.

The worker runs the batch with ``Supervisor.run_many`` and idempotency keys, so
a second worker on the same spec finishes the jobs the first left unfinished and
does not run finished ones again.  It appends the endpoint breakers' events
(threshold crossings, rejections, transitions) to a JSON-lines file, because
rejections are not stored anywhere else and the report needs them for the
breaker reaction time.  SIGTERM closes the supervisor cleanly (unfinished jobs
become ``interrupted``); SIGKILL is the chaos fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from resurgo.breaker import (
    CallRejected,
    CircuitBreaker,
    CircuitEvent,
    CircuitOpenError,
    StateTransition,
    ThresholdExceeded,
)


class BreakerLogWriter:
    """A breaker listener that appends one JSON line per event (flushed: the worker may be SIGKILLed).

    Breaker names get the worker's pid appended, because a restarted worker has
    fresh breakers: a crossing in the dead one must not be paired with a
    rejection in its successor.

    Reaction probe: when a breaker reports a threshold crossing (or opens),
    the writer immediately tries one call of its own (``acquire``; an admitted
    permit is released unused, so it counts for nothing).  The jobs' own next
    call comes only after their recovery backoff, so "crossing -> first job
    call rejected" measures the jobs' backoff as much as the breaker; the probe
    measures the breaker alone: how soon after the crossing it really rejects.
    Both are logged (``probe`` true/false) and reported separately.
    """

    def __init__(self, f: IO[str], *, probe_for: float = 5.0, probe_every: float = 0.05) -> None:
        self._f = f
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._probing = threading.local()
        self._probe_for = probe_for
        self._probe_every = probe_every
        self._tag = f"@{os.getpid()}"

    def watch(self, breaker: CircuitBreaker) -> None:
        self._breakers[breaker.name] = breaker
        breaker.add_listener(self)

    def _write(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, default=str)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()

    def __call__(self, ev: CircuitEvent) -> None:
        rec: dict[str, Any] = {"at": ev.at, "breaker": ev.breaker + self._tag}
        probe = False
        if isinstance(ev, ThresholdExceeded):
            rec.update(kind="threshold_crossed", metric=ev.metric, value=ev.value, threshold=ev.threshold)
            probe = True
        elif isinstance(ev, CallRejected):
            rec.update(kind="rejected", state=ev.state.value, probe=bool(getattr(self._probing, "on", False)))
        elif isinstance(ev, StateTransition):
            to = ev.to_state.value
            kind = {"open": "opened", "forced_open": "opened", "half_open": "half_open", "closed": "closed"}.get(to)
            if kind is None:
                return
            rec.update(kind=kind, from_state=ev.from_state.value, to_state=to, reason=ev.reason)
        else:
            return
        self._write(rec)
        if probe:
            self._probe(ev.breaker, time.monotonic() + self._probe_for)

    def _probe(self, name: str, until: float) -> None:
        br = self._breakers.get(name)
        if br is None:
            return
        self._probing.on = True
        try:
            permit = br.acquire()
        except CircuitOpenError:
            return  # rejected: the CallRejected event was logged with probe=true
        finally:
            self._probing.on = False
        permit.release()  # admitted: not open yet; give the slot back and look again shortly
        if time.monotonic() < until:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(self._probe_every, self._probe, name, until)


def _config(spec: Mapping[str, Any]) -> Any:
    from resurgo.supervise import SupervisorConfig

    cfg = dict(spec.get("config") or {})
    cfg["claude"] = spec["claude"]
    cfg["store"] = spec["store"]
    cfg["env"] = dict(spec["env"])
    if "claude_args" in cfg:
        cfg["claude_args"] = tuple(cfg["claude_args"])
    return SupervisorConfig.from_dict(cfg)


async def run(spec: Mapping[str, Any]) -> int:
    """Run (or finish) the batch of ``spec``; writes one JSON result per job to ``spec["results"]``."""
    from resurgo.supervise import JobSpec, Supervisor

    config = _config(spec)
    specs = [
        JobSpec(
            j["prompt"],
            cwd=j["cwd"],
            env=dict(j.get("env") or {}),
            name=j.get("name"),
            idem_key=j["idem_key"],
        )
        for j in spec["jobs"]
    ]
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    # SIGTERM from the runner (end of a drain that timed out): close cleanly, jobs stay resumable.
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    with open(spec["breaker_log"], "a", encoding="utf-8") as blog:
        writer = BreakerLogWriter(blog)
        sup = Supervisor(config)
        try:
            await sup.start()
            # The endpoint breakers are created on first use; create them now so the
            # listener sees the first crossing.
            urls = {sup.endpoint_url(s.env) for s in specs}
            for url in sorted(urls):
                writer.watch(sup.endpoint_breaker(url))
            results = await sup.run_many(specs, concurrency=int(spec.get("concurrency", config.max_jobs)))
        except asyncio.CancelledError:
            await sup.aclose()
            return 5
        finally:
            await sup.aclose()
    tmp = spec["results"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r.to_dict()) + "\n")
    os.replace(tmp, spec["results"])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m resurgo.chaos._supervisor_proc SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        spec = json.load(f)
    return asyncio.run(run(spec))


if __name__ == "__main__":
    sys.exit(main())
