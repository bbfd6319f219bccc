"""Validated configuration of a :class:`~resurgo.supervise.Supervisor`.

One frozen value object, checked field by field on construction, so a bad
number in code or in a TOML table is rejected where it was written (with the
field's name in the message) instead of surfacing an hour later as a job that
never retries or a watchdog that never fires.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from resurgo._continuation import DEFAULT_CONTINUATION, ContinuationError, check_continuation
from resurgo.breaker._config import CircuitThresholds, ThresholdsError
from resurgo.retrier._budget import RetryBudget
from resurgo.store._sqlite import Store


class ConfigError(ValueError):
    """A supervisor setting is missing, of the wrong type or out of range; the message names it."""


def default_breaker_thresholds() -> CircuitThresholds:
    """Breaker thresholds suited to CLI runs rather than RPCs.

    Every API request is a call: through the relay (the default) each request
    and each of its retries is judged on the wire; without it, a CLI attempt is
    judged as soon as the API answers (the first real assistant message) or the
    attempt fails, and every further answered request is one more successful
    call, as every failed request is one failed call.  Either way the failure
    rate is a share of requests.  Slowness is meaningless here (a long answer
    is not a slow API): slow-call detection is pushed out of the way.  A short
    server reset (``retry-after`` the relay can wait out for that request) is a
    plain failure; only a longer one (a usage limit) opens the breaker until it.

    Two rules open it.  Half of the calls of the last 60 s failed (at least 10
    calls: with every answer a call there are many, and 4 let two scattered
    failures among the first calls after a closing reopen it): a sustained
    partial outage.  Or 8 calls failed in a row with no
    answer in between: an outage from its first seconds, which a rate over 60 s
    of requests would see only after the outage had outweighed the minute of
    answers before it (a 12 s 529 storm with 4 jobs never reached 50 %).  8 is
    above the jobs one cut of every connection fails at once in the chaos
    profile (6), and reached within about two seconds when every request fails.
    Through the relay a connection the network broke counts only when the
    relay gives its request up (retries get past a blip; see ``_relay``).
    In chaos runs a window of the last 10 calls instead opened 13 times in 176 s
    under scattered 20 % faults.

    Half-open lets ten probes through (resilience4j's default) and opens again
    once five of them failed (the failure rate of the probes reaching 50 %);
    it closes as soon as six have succeeded.  With a single probe, the API's
    background failures decided alone: under the chaos profile's 20 % of
    scattered faults, one probe in five failed with the API healthy, and two
    unlucky probes in a row after a 4 s storm held every job for 14 s
    (2 + 4 + 8).  Ten probes reopen a healthy API's breaker about one time in
    thirty (five of ten failing at 20 %), and a sustained outage fails them
    all.  Through the relay a probe is one request, and every job waiting on
    the breaker has one: with three probes, the other jobs' requests waited
    for the close (a probe's answer, 1.2 s in a chaos latency phase) and then
    for their own answer; with ten, up to ten jobs' requests are answered in
    the same round.

    The first open wait is short (1 s, growing 1.5x on every failed probe round
    up to 120 s): a half-open probe here is a real job's request (or its attempt,
    without the relay), not a request spent on checking, so probing early
    costs little, while every second of waiting costs every job of the
    endpoint.  After a 529 storm the chaos profile injects, the breaker opened
    within its last second every time, so all of its open wait past the storm
    was every job standing still: with 2 s, about 1.8 s x 6 jobs per storm.  A
    long outage still reaches long waits after a few failed probe rounds (1,
    1.5, 2.3, 3.4 ... 120 s, 13 rounds), at ten probes a round at most.  Doubling
    (1, 2, 4 ...) reached 120 s in 8 rounds, but the round that failed within
    a storm then held every job up to 2 s past its end (1.9 s on average in
    two seeds' storms); a breaker that is only ever half a wait behind the
    API's recovery costs the API at most ten requests per round.
    """
    return CircuitThresholds(
        failure_rate=0.5,
        min_calls=10,
        sliding_window=60.0,
        consecutive_failures=8,
        half_open_max_calls=10,
        half_open_lease=600.0,
        slow_call_duration=3600.0,
        wait_in_open=1.0,
        wait_multiplier=1.5,
        max_wait_in_open=120.0,
        max_retry_after=6 * 3600.0,
    )


def check_budget_value(name: str, arg: str, v: Any) -> float:
    """``v`` as ``RetryBudget(**{arg: v})`` accepts it, or ConfigError naming ``name``.

    Delegating to :class:`~resurgo.retrier.RetryBudget` keeps the allowed ranges
    in one place: the supervisor, the configuration schema and the library
    cannot disagree about them.
    """
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    try:
        RetryBudget(ratio=v) if arg == "ratio" else RetryBudget(min_retries_per_sec=v)
    except ValueError as e:
        raise ConfigError(f"{name}: {e}") from None
    return float(v)


def _pos(name: str, v: Any, *, allow_none: bool = False, allow_zero: bool = False) -> float | None:
    if v is None:
        if allow_none:
            return None
        raise ConfigError(f"{name} is required")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    f = float(v)
    if not math.isfinite(f) or f < 0 or (f == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {v!r}")
    return f


@dataclass(frozen=True, kw_only=True)
class SupervisorConfig:
    """Everything a supervisor needs to decide; defaults suit interactive use on a laptop.

    claude:
        Path of the CLI (default: ``$RESURGO_CLAUDE``, then ``PATH``).
    store:
        A :class:`~resurgo.store.Store`, a path, or None for
        :func:`resurgo.store.default_store_path`.
    concurrency:
        Jobs running at once in ``run_many`` (default 4), or ``"auto"``: an
        adaptive limit per API endpoint (:mod:`resurgo.limit`) finds how many
        CLI runs the API takes at once, from 429/529 answers (final results and
        the CLI's own ``api_retry`` events), ``rate_limit_event`` statuses and
        latency; a usage-limit reset pauses the whole endpoint until then.
    max_concurrency:
        With ``concurrency="auto"``: the most jobs running at once (default 32).
    concurrency_algorithm:
        With ``concurrency="auto"``: ``"aimd"`` (default: reacts to refusals,
        which is how the API says "too many") or ``"gradient"`` / ``"vegas"``
        (also read latency).
    start_concurrency:
        At most this many CLIs starting at once (from their spawn to their
        first event, at most 5 s each), or ``"auto"`` (default): the number of
        CPUs, at least 2.  Jobs beyond it wait for a slot.  A CLI's start is
        CPU-bound (~0.35 s): started all at once, as after a supervisor restart
        or at a batch's start, every one of them waits for all the others.
    standby / standby_window:
        Restarting a killed CLI is mostly its boot (~0.4 s); a standby is a CLI
        booted ahead for a running job, waiting for its prompt on stdin, and a
        resume of that job's session adopts it (its first event ~0.1 s after
        the prompt; see :meth:`ProcessManager.prepare_standby`).  Standbys are
        kept only while this supervisor has resumed a session within the last
        ``standby_window`` seconds (default 600), for at most ``standby`` jobs
        at once (default 8; 0: never).  Each costs an idle CLI (~150 MB
        resident) and its boot's CPU, started when no other CLI is starting.
    stall_timeout / deadline / result_exit_timeout / kill_grace:
        Liveness of one attempt (seconds; ``deadline`` None = no limit): no
        stream-json event for ``stall_timeout`` s ends the process group and
        the session is resumed.
    request_watch / request_timeout_factor / request_timeout_floor:
        Watch every API request of the CLI (default on; it runs with
        ``--include-partial-messages``, whose extra events resurgo drops again
        unless the job asked for them): a request not answered within
        ``request_timeout_factor`` (3) times the slowest first answer among the
        endpoint's last 200, and never less than ``request_timeout_floor`` (2 s),
        or an answer silent for as long relative to its longest gaps (never less
        than 5 s), is a hang:
        the attempt ends and the session is resumed at once, instead of after
        the CLI's ``API_TIMEOUT_MS`` or ``stall_timeout``.  Nothing is ended
        before 8 answers were seen (the times are stored: a restarted
        supervisor starts from the last one's); a job whose request was ended
        twice gets twice the limit for its next try.
    relay / relay_max_wait / relay_max_tries / relay_budget_min_per_sec:
        Run the CLI's API traffic through resurgo's loopback relay (default on;
        :mod:`resurgo.supervise._relay`): a request that fails with 429/529/5xx,
        a reset or cut connection, a cut stream or a hang (the request watch's
        limits, measured on the wire) is asked again -- through the endpoint's
        breaker and retry budget, after the server's ``retry-after`` -- before
        the CLI sees anything, so the CLI is not restarted for it.  Streamed
        answers are held until complete (a job that passes
        ``--include-partial-messages`` itself gets them as they come).  One
        request is tried at most ``relay_max_tries`` (10, the CLI's own
        default) times and held at
        most ``relay_max_wait`` (60 s; never past the CLI's own
        ``API_TIMEOUT_MS`` before the answer starts; the supervisor's stall
        watch knows the relay is waiting on purpose); then the CLI sees the failure and the supervisor
        recovers as without the relay.  Not used when an ``HTTPS_PROXY`` /
        ``HTTP_PROXY`` applies to the endpoint, or for a non-HTTP base URL.
        The relay's retries are RPC retries, so they have their own budget per
        endpoint, sized like an RPC client's (Finagle's defaults): at most
        ``retry_budget_ratio`` of the requests sent plus ``relay_budget_min_per_sec``
        (10) a second.  They do not draw on the recoveries' budget, whose 1/s
        floor is sized for CLI restarts: with it, one network blip cutting a
        dozen jobs' requests at once left the last of them waiting ~10 s for
        tokens (84 s of the 240 job-s down in a seed-1 chaos run).
    relay_hedge:
        A request with no answer when it is slower than the slowest of the
        endpoint's last 200 first answers (a third of its hang limit, at least
        1 s) gets a second copy, sent with a token
        of the relay's retry budget; the first answer of the two is forwarded
        and the other connection closed (default on).  A hung request or a
        black-holed connection then costs its job a third of the limit rather
        than all of it, and a slow answer is never thrown away.  The price is a
        duplicate request for the slowest requests; off, a request is only
        ever retried after the watch ended it.
    max_recoveries / recovery_period:
        Restart intensity per job (OTP): more than ``max_recoveries`` in
        ``recovery_period`` s and the job fails.  Waits imposed by the server
        do not count.
    backoff_base / backoff_cap:
        CrashLoop back-off between recoveries: ``min(cap, base * 2**(n-1))``,
        stretched while the endpoint keeps failing.
    breaker:
        Thresholds of the one breaker per endpoint (``ANTHROPIC_BASE_URL``).
    retry_budget_ratio / retry_budget_min_per_sec:
        The endpoint's shared retry budget: recoveries from the API's failures
        may be at most this fraction of the requests the API answered (a job's
        first request and every later answered turn; default 0.2) plus a floor per second
        (default 1.0).  Both are checked by :class:`~resurgo.retrier.RetryBudget`
        itself (ratio in [0, 1000], floor finite and >= 0), the one source of
        those limits.  The floor is lower than the library's default of 10/s
        on purpose: that one is sized for RPC clients making many calls a
        second, while a CLI attempt lasts seconds to minutes, so 10 retries a
        second (100 per 10 s window) would never limit recoveries at all;
        1/s still lets a handful of jobs recover at once.
    budget_wait_max:
        How long a recovery waits for retry-budget tokens before going ahead
        anyway (seconds, default 60).  A finite value trades the budget's
        invariant (retries <= ratio * calls + floor) for progress: under a
        sustained outage recoveries then exceed the budget, and each such bypass
        is recorded (a ``BudgetBypassed`` event, a ``budget_bypassed`` alert and
        the budget's ``bypassed`` count).  None waits as long as it takes: the
        invariant holds, and a job never fails for lack of budget, it waits.
    fallback_models / fallback_endpoints:
        Failover targets, tried in order when the API is overloaded or failing.
    continuation_prompt:
        Prompt of a resumed run: ``{reason}``, ``{description}``, ``{category}``
        and ``{type}`` are filled in, other braces are literal, an unknown
        ``{name}`` is an error here (see :mod:`resurgo._continuation`).
    classify_rules:
        A TOML file of extra classification rules (``[[rule]]`` tables), added
        to the supervisor's classifier; ``[classify] rules`` in the
        configuration.  None: the shipped packs and learned rules only.
    cli_max_retries:
        Sets ``CLAUDE_CODE_MAX_RETRIES`` for the child when not None.
    env:
        Extra environment for every job (secrets redacted whenever shown).
    alert_webhook / alert_min_interval:
        URL receiving a JSON POST for escalations, breaker openings and
        exhausted budgets; the same alert key is sent at most once per
        ``alert_min_interval`` s.
    health_interval / cleanup_interval:
        Period of the health checks and of the cleanup sweep (seconds).
    state_check_interval:
        How often running jobs are compared with the store (seconds, default
        1): a job cancelled from another process (``resurgo cancel``) has its
        attempt ended and stops waiting within about this time.
    claude_args:
        Arguments added to every job's command line (before the job's own).
    otel:
        Emit OpenTelemetry traces and metrics (needs ``pip install 'resurgo[otel]'``;
        ``[otel] enabled`` in the configuration).  See docs/otel.md.
    max_line_bytes:
        Longest CLI stdout line kept (bytes, default 64 MiB, at least 1024).  A longer
        one (a runaway tool result, a stream without newlines) is not buffered: it is
        recorded as an unparseable event with its first bytes and its size, plus a
        ``stdout_line_too_long`` supervisor event, and the run goes on.
    """

    claude: str | os.PathLike[str] | None = None
    store: Store | str | os.PathLike[str] | None = None
    concurrency: int | Literal["auto"] = 4
    max_concurrency: int = 32
    concurrency_algorithm: str = "aimd"
    start_concurrency: int | Literal["auto"] = "auto"
    standby: int = 8
    standby_window: float = 600.0
    stall_timeout: float | None = 120.0
    deadline: float | None = None
    result_exit_timeout: float | None = 10.0
    kill_grace: float = 3.0
    request_watch: bool = True
    request_timeout_factor: float = 3.0
    request_timeout_floor: float = 2.0
    relay: bool = True
    relay_max_wait: float = 60.0
    relay_max_tries: int = 10
    relay_budget_min_per_sec: float = 10.0
    relay_hedge: bool = True
    max_recoveries: int = 5
    recovery_period: float = 600.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    breaker: CircuitThresholds = field(default_factory=default_breaker_thresholds)
    retry_budget_ratio: float = 0.2
    retry_budget_min_per_sec: float = 1.0
    budget_wait_max: float | None = 60.0
    fallback_models: tuple[str, ...] = ()
    fallback_endpoints: tuple[str, ...] = ()
    continuation_prompt: str = DEFAULT_CONTINUATION
    cli_max_retries: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    alert_webhook: str | None = None
    alert_min_interval: float = 60.0
    health_interval: float = 5.0
    cleanup_interval: float = 60.0
    state_check_interval: float = 1.0
    claude_args: tuple[str, ...] = ()
    classify_rules: str | os.PathLike[str] | None = None
    otel: bool = False
    max_line_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.concurrency != "auto" and (
            isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1
        ):
            raise ConfigError(f"concurrency must be an integer >= 1 or \"auto\", got {self.concurrency!r}")
        if (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or not 1 <= self.max_concurrency <= 1024
        ):
            raise ConfigError(f"max_concurrency must be an integer in [1, 1024], got {self.max_concurrency!r}")
        sc = self.start_concurrency
        if sc != "auto" and (isinstance(sc, bool) or not isinstance(sc, int) or not 1 <= sc <= 1024):
            raise ConfigError(f"start_concurrency must be an integer in [1, 1024] or \"auto\", got {sc!r}")
        sb = self.standby
        if isinstance(sb, bool) or not isinstance(sb, int) or not 0 <= sb <= 1024:
            raise ConfigError(f"standby must be an integer in [0, 1024], got {sb!r}")
        set_(self, "standby_window", _pos("standby_window", self.standby_window, allow_none=False))
        if self.concurrency_algorithm not in ("aimd", "gradient", "vegas"):
            raise ConfigError(
                f"concurrency_algorithm must be one of aimd, gradient, vegas; got {self.concurrency_algorithm!r}"
            )
        mlb = self.max_line_bytes
        if isinstance(mlb, bool) or not isinstance(mlb, int) or mlb < 1024:
            raise ConfigError(f"max_line_bytes must be an integer >= 1024, got {self.max_line_bytes!r}")
        if isinstance(self.max_recoveries, bool) or not isinstance(self.max_recoveries, int) or self.max_recoveries < 0:
            raise ConfigError(f"max_recoveries must be an integer >= 0, got {self.max_recoveries!r}")
        for name in ("stall_timeout", "deadline", "result_exit_timeout"):
            set_(self, name, _pos(name, getattr(self, name), allow_none=True))
        if not isinstance(self.request_watch, bool):
            raise ConfigError(f"request_watch must be true or false, got {self.request_watch!r}")
        set_(self, "request_timeout_floor", _pos("request_timeout_floor", self.request_timeout_floor))
        for name in ("relay", "relay_hedge"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        set_(self, "relay_max_wait", _pos("relay_max_wait", self.relay_max_wait))
        rt = self.relay_max_tries
        if isinstance(rt, bool) or not isinstance(rt, int) or not 1 <= rt <= 100:
            raise ConfigError(f"relay_max_tries must be an integer in [1, 100], got {rt!r}")
        set_(self, "request_timeout_factor", _pos("request_timeout_factor", self.request_timeout_factor))
        if self.request_timeout_factor < 1.0:
            raise ConfigError(f"request_timeout_factor must be >= 1, got {self.request_timeout_factor!r}")
        for name in ("recovery_period", "health_interval", "cleanup_interval", "state_check_interval"):
            set_(self, name, _pos(name, getattr(self, name)))
        for name in ("kill_grace", "backoff_base", "backoff_cap", "alert_min_interval"):
            set_(self, name, _pos(name, getattr(self, name), allow_zero=True))
        set_(self, "budget_wait_max", _pos("budget_wait_max", self.budget_wait_max, allow_zero=True, allow_none=True))
        if self.backoff_cap < self.backoff_base:
            raise ConfigError(f"backoff_cap ({self.backoff_cap}) must be >= backoff_base ({self.backoff_base})")
        for name, arg in (("retry_budget_ratio", "ratio"), ("retry_budget_min_per_sec", "min_retries_per_sec"),
                          ("relay_budget_min_per_sec", "min_retries_per_sec")):
            set_(self, name, check_budget_value(name, arg, getattr(self, name)))
        if not isinstance(self.breaker, CircuitThresholds):
            raise ConfigError(f"breaker must be CircuitThresholds, got {type(self.breaker).__name__}")
        if self.cli_max_retries is not None and (
            isinstance(self.cli_max_retries, bool)
            or not isinstance(self.cli_max_retries, int)
            or self.cli_max_retries < 0
        ):
            raise ConfigError(f"cli_max_retries must be an integer >= 0 or None, got {self.cli_max_retries!r}")
        for name in ("fallback_models", "fallback_endpoints", "claude_args"):
            v = getattr(self, name)
            if isinstance(v, str) or not isinstance(v, Sequence) or not all(isinstance(x, str) and x for x in v):
                raise ConfigError(f"{name} must be a list of non-empty strings, got {v!r}")
            set_(self, name, tuple(v))
        for ep in self.fallback_endpoints:
            if not ep.startswith(("http://", "https://")):
                raise ConfigError(f"fallback_endpoints entries must be http(s) URLs, got {ep!r}")
        if not isinstance(self.env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise ConfigError("env must map strings to strings")
        set_(self, "env", dict(self.env))
        if not isinstance(self.continuation_prompt, str) or not self.continuation_prompt.strip():
            raise ConfigError("continuation_prompt must be a non-empty string")
        try:
            check_continuation(self.continuation_prompt)
        except ContinuationError as e:
            raise ConfigError(f"continuation_prompt: {e}") from None
        if self.classify_rules is not None and (
            not isinstance(self.classify_rules, str | os.PathLike) or not os.fspath(self.classify_rules).strip()
        ):
            raise ConfigError(f"classify_rules must be a file path or None, got {self.classify_rules!r}")
        if self.alert_webhook is not None and (
            not isinstance(self.alert_webhook, str) or not self.alert_webhook.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"alert_webhook must be an http(s) URL, got {self.alert_webhook!r}")
        if not isinstance(self.otel, bool):
            raise ConfigError(f"otel must be true or false, got {self.otel!r}")
        if self.store is not None and not isinstance(self.store, Store | str | os.PathLike):
            raise ConfigError(f"store must be a Store, a path or None, got {type(self.store).__name__}")

    @property
    def adaptive(self) -> bool:
        """True when the number of jobs at once is found per endpoint rather than fixed."""
        return self.concurrency == "auto"

    @property
    def max_jobs(self) -> int:
        """Jobs running at once at most: the fixed concurrency, or ``max_concurrency`` when adaptive."""
        return self.max_concurrency if self.concurrency == "auto" else int(self.concurrency)

    @property
    def start_slots(self) -> int:
        """``start_concurrency`` as a number (``"auto"``: the CPUs, at least 2)."""
        sc = self.start_concurrency
        return max(2, os.cpu_count() or 2) if sc == "auto" else int(sc)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SupervisorConfig:
        """Build from a mapping (a TOML table): unknown keys are errors, ``breaker`` may be a table."""
        if not isinstance(data, Mapping):
            raise ConfigError("supervisor configuration must be a table/mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown supervisor setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        kw = dict(data)
        b = kw.get("breaker")
        if isinstance(b, Mapping):
            try:
                kw["breaker"] = default_breaker_thresholds().replace(**dict(b))
            except (ThresholdsError, TypeError) as e:
                raise ConfigError(f"breaker: {e}") from e
        for name in ("fallback_models", "fallback_endpoints", "claude_args"):
            if isinstance(kw.get(name), list):
                kw[name] = tuple(kw[name])
        return cls(**kw)


__all__ = ["ConfigError", "SupervisorConfig", "check_budget_value", "default_breaker_thresholds"]
