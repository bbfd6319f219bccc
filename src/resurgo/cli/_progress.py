"""Live progress of supervised runs on stderr: a status line on a terminal, lines otherwise.

Shared by ``run``/``batch`` on this machine (typed supervisor events) and
``batch --redis`` (fleet job states read from Redis).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from resurgo.cli._common import STATE_STYLE, clock_time, console, human_seconds

if TYPE_CHECKING:
    from resurgo.supervise._events import (
        AttemptStarted,
        BreakerStateChanged,
        CliEvent,
        FailureDetected,
        JobFinished,
        JobQueued,
        RecoveryPlanned,
        Restored,
        SupervisorEvent,
        ToolStarted,
        Waiting,
    )

# -- live progress -------------------------------------------------------------------------------


def esc(text: Any) -> str:
    from rich.markup import escape

    from resurgo.observe import redact

    return escape(redact(str(text)))


def one_line(text: Any, n: int = 100) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def styled(state: str) -> str:
    """A state in its colour (rich markup); an unknown state plain, never an empty ``[]`` tag."""
    style = STATE_STYLE.get(state)
    return f"[{style}]{esc(state)}[/]" if style else esc(state)


class Progress:
    """Turns the supervisor's typed events into a status line and a log of notable moments.

    Notable moments (failures, recoveries, waits, breaker changes, restorations,
    finished jobs) are printed as lines so they stay in the scroll-back and in
    logs; the current phase of each job (starting / working with the last tool /
    recovering / waiting until) is the live status line on a terminal, and a
    printed line otherwise.
    """

    def __init__(self, *, names: Mapping[str, str] | None = None, total: int = 1, quiet: bool = False) -> None:
        self.out = console(stderr=True)
        self.live_tty = self.out.is_terminal
        self.names = dict(names or {})
        self.total = total
        self.quiet = quiet
        self.phase: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.finished: dict[str, Any] = {}
        self._status: Any = None
        self._progress: Any = None
        self._task: Any = None
        self._handlers: dict[type, Callable[[Any], None]] | None = None

    # rich widgets ----------------------------------------------------------------------
    def __enter__(self) -> Progress:
        if self.quiet or not self.live_tty:
            return self
        if self.total > 1:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=self.out, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._counts(), total=self.total)
        else:
            self._status = self.out.status("starting…")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()
        if self._progress is not None:
            self._progress.stop()

    def _counts(self) -> str:
        counts: dict[str, int] = {}
        for s in self.states.values():
            counts[s] = counts.get(s, 0) + 1
        return "  ".join(f"[{STATE_STYLE.get(s, '')}]{s} {n}[/]" for s, n in sorted(counts.items()))

    def _name(self, job_id: str) -> str:
        n = self.names.get(job_id)
        return esc(n) if n else job_id[:8]

    def log(self, job_id: str, text: str) -> None:
        if self.quiet:
            return
        who = f"[dim]{clock_time(time.time())}[/] " + (f"[bold]{self._name(job_id)}[/] " if job_id else "")
        self.out.print(who + text, highlight=False)

    def alert(self, record: logging.LogRecord) -> None:
        """One concise line for an alert of the ``resurgo.alerts`` logger (nothing with ``-q``)."""
        a = getattr(record, "alert", None)
        if a is None:  # e.g. a webhook that failed: the logged text is already redacted
            self.log("", f"[red]alert[/]: {esc(one_line(record.getMessage(), 120))}")
            return
        d = a.to_dict()  # redacted
        jid = d["details"].get("job_id") if isinstance(d.get("details"), dict) else None
        if not isinstance(jid, str):
            jid = d["subject"][4:] if str(d["subject"]).startswith("job:") else ""
        more = f" (+{a.suppressed} similar)" if a.suppressed else ""
        self.log(jid, f"[red]alert[/] {esc(a.kind)}: {esc(one_line(d['message'], 100))}{more}")

    def _set_phase(self, job_id: str, text: str, state: str, *, print_line: bool) -> None:
        self.phase[job_id] = text
        self.states[job_id] = state
        if self._status is not None:
            self._status.update(text)
        elif self._progress is not None:
            self._progress.update(self._task, description=self._counts())
        if print_line and not self.live_tty:
            self.log(job_id, text)

    # events ----------------------------------------------------------------------------------
    def on_event(self, ev: SupervisorEvent) -> None:
        """Dispatch on the event's class (the supervisor's typed events; unknown kinds are ignored)."""
        if self._handlers is None:
            self._handlers = self._event_handlers()
        handler = self._handlers.get(type(ev))
        if handler is not None:
            handler(ev)

    def _event_handlers(self) -> dict[type, Callable[[Any], None]]:
        # imported on the first event: `resurgo run` loads this module before starting the CLI
        from resurgo.supervise import events as e

        return {
            e.JobQueued: self._queued,
            e.AttemptStarted: self._attempt_started,
            e.ToolStarted: self._tool_started,
            e.CliEvent: self._cli_event,
            e.FailureDetected: self._failure,
            e.RecoveryPlanned: self._recovery_planned,
            e.Waiting: self._waiting,
            e.BreakerStateChanged: self._breaker,
            e.Restored: self._restored,
            e.JobFinished: self._finished,
        }

    def _queued(self, ev: JobQueued) -> None:
        if ev.name:
            self.names.setdefault(ev.job_id, ev.name)
        self.states.setdefault(ev.job_id, "pending")

    def _attempt_started(self, ev: AttemptStarted) -> None:
        what = {"start": "starting", "resume": "resuming session", "fork": "forking session",
                "restart": "restarting"}.get(ev.kind, ev.kind)
        self._set_phase(ev.job_id, f"{what} (attempt {ev.n})", "running", print_line=True)

    def _tool_started(self, ev: ToolStarted) -> None:
        self._set_phase(ev.job_id, f"working: {esc(ev.name)} {esc(one_line(ev.summary, 60))}".rstrip(),
                        "running", print_line=True)

    def _cli_event(self, ev: CliEvent) -> None:
        if ev.event.get("type") == "system" and ev.event.get("subtype") == "init":
            self._set_phase(ev.job_id, "working", "running", print_line=False)

    def _failure(self, ev: FailureDetected) -> None:
        err = ev.error
        t = getattr(err.type, "value", err.type) or "error"
        self.log(ev.job_id, f"[red]attempt {ev.attempt} failed[/]: {esc(t)} — {esc(one_line(err.description, 90))}")

    def _recovery_planned(self, ev: RecoveryPlanned) -> None:
        wait = f", after {human_seconds(ev.wait_s)}" if ev.wait_s else ""
        server = " (the server asked)" if ev.server_wait else ""
        self.log(ev.job_id,
                 f"[yellow]recovering[/]: {esc(ev.action)} — {esc(one_line(ev.reason, 90))}{wait}{server}")
        self._set_phase(ev.job_id, f"recovering: {esc(one_line(ev.action, 60))}", "recovering", print_line=False)

    def _waiting(self, ev: Waiting) -> None:
        until = f"until {clock_time(ev.until_ts)}" if ev.until_ts else "until the endpoint recovers"
        text = f"waiting {until}: {esc(one_line(ev.reason, 80))}"
        self.log(ev.job_id, f"[magenta]{text}[/]")
        self._set_phase(ev.job_id, text, "waiting", print_line=False)

    def _breaker(self, ev: BreakerStateChanged) -> None:
        colour = {"open": "red", "half_open": "yellow", "closed": "green"}.get(str(ev.to_state), "")
        self.log("", f"breaker {esc(ev.breaker)}: {esc(ev.from_state)} → [{colour}]{esc(ev.to_state)}[/]"
                     f" ({esc(one_line(ev.reason, 80))})")

    def _restored(self, ev: Restored) -> None:
        self.log(ev.job_id, f"[green]restored[/] {human_seconds(ev.recovery_s)} after the failure")
        self._set_phase(ev.job_id, "working", "running", print_line=False)

    def _finished(self, ev: JobFinished) -> None:
        jid = ev.job_id
        res = ev.result
        self.finished[jid] = res
        st = res.state.value
        self.states[jid] = st
        why = f" — {esc(one_line(res.reason, 90))}" if res.reason and not res.ok else ""
        self.log(jid, f"[{STATE_STYLE.get(st, '')}]{st}[/] after {res.attempts} attempt(s), "
                      f"{res.recoveries} recovery(ies), {human_seconds(res.duration_s)}{why}")
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.finished), description=self._counts())

    def on_fleet(self, job_id: str, state: str, *, worker: str | None, claims: int, reason: str | None,
                 final: bool) -> None:
        """A fleet job's state read from its Redis hash (``batch --redis``: no supervisor events here).

        Called on every change only; a job claimed again (its worker died or
        stopped) says so, because that is the moment a fleet earns its keep.
        """
        prev = self.states.get(job_id)
        self.states[job_id] = state
        st = styled(state)
        if final:
            self.finished[job_id] = state
            why = f" — {esc(one_line(reason, 90))}" if reason and state != "succeeded" else ""
            by = f" by {esc(worker)}" if worker else ""
            self.log(job_id, f"{st}{by} (claimed {claims}x){why}")
        elif state == "running" and claims > 1:
            self.log(job_id, f"[yellow]claimed again[/] by {esc(worker or '?')} (claim {claims})"
                             + (f": {esc(one_line(reason, 80))}" if reason else ""))
        elif state == "queued" and prev == "running":
            self.log(job_id, "[yellow]back in the queue[/]" + (f": {esc(one_line(reason, 80))}" if reason else ""))
        elif not self.live_tty and state != prev:
            self.log(job_id, st + (f" on {esc(worker)}" if worker and state == "running" else ""))
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.finished), description=self._counts())
        elif self._status is not None:
            self._status.update(f"{state}" + (f" on {esc(worker)}" if worker and not final else ""))


class _AlertLines(logging.Handler):
    """Routes the ``resurgo.alerts`` logger into the live progress while a command runs.

    Without it Python's last-resort handler would print every alert's log
    record to stderr, ``-q`` or not; the alerts are in the store regardless.
    """

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.progress.alert(record)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def alerts_to(progress: Progress) -> Iterator[None]:
    logger = logging.getLogger("resurgo.alerts")
    handler = _AlertLines(progress)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


__all__ = ["Progress", "alerts_to", "esc", "one_line", "styled"]
