"""The classification engine: one set of rules for Python exceptions and CLI observations.

Evidence is weighed in the spec's order (``Tier``): resurgo's own kill reason,
specific messages, the API status, structured CLI fields, the exception class
(through its MRO and cause chain), how the process ended, message patterns,
learned rules, and finally a low-confidence fallback.  Verdicts for exceptions
are cached by the chain's (class, message, status) shape, so a retry loop that
sees the same failure a million times pays for rule matching once; only the
time-dependent parts (``retry_after``, priority) are recomputed per call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from resurgo.classifier._describe import describe, describe_fallback, wait_text
from resurgo.classifier._facts import Node, exception_nodes, observation_facts
from resurgo.classifier._learn import FALLBACK_RULE, LearnedRule, OutcomeBook
from resurgo.classifier._patterns import HAVE_RE2, PatternSet
from resurgo.classifier._resets import ResetSpec, compute_retry_after, parse_message_reset
from resurgo.classifier._rules import (
    PACKS,
    TIER_CONFIDENCE,
    Rule,
    RuleError,
    Tier,
    check_unique,
    load_packs,
    load_rules,
)
from resurgo.classifier._semantic import match as semantic_match
from resurgo.classifier._signature import make_signature, redact
from resurgo.classifier._stats import ErrorStats, SpreadTracker, WindowedStats
from resurgo.classifier._types import (
    SEVERITY_PRIORITY,
    ErrorClass,
    ErrorType,
    Observation,
    Priority,
    Severity,
    Strategy,
)
from resurgo.clock import SYSTEM_CLOCK, Clock

#: Observations with more text than this are not cached (bounds the cache's memory).
_OBS_CACHE_TEXT = 4096
_PRIORITIES = (Priority.P0, Priority.P1, Priority.P2, Priority.P3)
_RULE_TIERS = (Tier.SPECIFIC, Tier.STATUS, Tier.CLI, Tier.EXCEPTION, Tier.PROCESS, Tier.MESSAGE, Tier.EXIT)

FALLBACK = ErrorClass(
    type=ErrorType.INTERNAL,
    severity=Severity.HIGH,
    category="unknown",
    description="no rule recognised this failure",
    retryable=False,
    strategy=Strategy.ABORT,
    priority=SEVERITY_PRIORITY[Severity.HIGH],
    rule=FALLBACK_RULE,
    confidence=TIER_CONFIDENCE[Tier.FALLBACK],
)
LEARNED = ErrorClass(
    type=ErrorType.INTERNAL,
    severity=Severity.MEDIUM,
    category="learned_transient",
    description="unrecognised failure that retries have repeatedly fixed",
    retryable=True,
    strategy=Strategy.RETRY,
    priority=SEVERITY_PRIORITY[Severity.MEDIUM],
    rule="learned",
    confidence=TIER_CONFIDENCE[Tier.LEARNED],
)
_KILLED = {
    "stall_watchdog": ErrorClass(
        type=ErrorType.TIMEOUT,
        severity=Severity.MEDIUM,
        category="stalled",
        description="resurgo's stall watchdog ended a process that stopped making progress",
        retryable=True,
        strategy=Strategy.RESUME_SESSION,
        priority=Priority.P2,
        rule="killed_by.stall_watchdog",
        confidence=1.0,
    ),
    "deadline": ErrorClass(
        type=ErrorType.TIMEOUT,
        severity=Severity.MEDIUM,
        category="deadline",
        description="resurgo ended a process that ran past its deadline",
        retryable=True,
        strategy=Strategy.RESUME_SESSION,
        priority=Priority.P2,
        rule="killed_by.deadline",
        confidence=1.0,
    ),
    "shutdown": ErrorClass.not_an_error(
        category="cancelled", description="resurgo shut the process down", rule="killed_by.shutdown"
    ),
    "user": ErrorClass.not_an_error(
        category="cancelled", description="a user cancelled the run", rule="killed_by.user"
    ),
}
_RESULT_OK = ErrorClass.not_an_error(
    category="ok", description="the run's result event has is_error false", rule="result.ok"
)
_EXIT_OK = ErrorClass.not_an_error(
    category="ok", description="the process exited 0 without an error event", rule="exit.ok"
)
_NO_EVIDENCE = ErrorClass.not_an_error(
    category="no_evidence",
    description="the observation carries no sign of a failure",
    rule="no_evidence",
    confidence=0.5,
)


@dataclass(frozen=True, slots=True)
class _TierIndex:
    """How a tier's candidate rules are found (idents index ``Classifier._rules``)."""

    by_name: dict[str, tuple[int, ...]]  # exception class name -> rules naming it
    msg: frozenset[int]  # message-only rules answered by the pattern set
    always: tuple[int, ...]  # rules tried on every node


@dataclass(frozen=True, slots=True)
class _Decision:
    """A verdict before the time-dependent parts (retry_after, priority) are filled in."""

    verdict: ErrorClass
    signature: str
    tier: Tier
    reset: ResetSpec | None
    headers: Any


class Classifier:
    """Rules, learned rules and statistics; thread-safe.

    Keyword arguments (defaults in brackets): ``packs`` [all shipped packs] —
    which packs to load; ``store`` [None] — a :class:`resurgo.store.Store`
    that makes learned rules persistent; ``clock`` [system clock] — the time
    source for ``retry_after`` and statistics; ``use_re2`` [when installed];
    ``learn_min_successes`` [3] and ``learn_min_ratio`` [0.8] — when an
    unknown signature counts as transient; ``recent_window`` [300 s] and
    ``spread_thresholds`` [(3, 10)] — distinct jobs hit by one signature
    within the window that raise priority by one / two levels;
    ``stats_bucket`` [10 s] and ``stats_horizon`` [24 h] — statistics
    resolution and memory; ``cache_size`` [8192] verdicts cached per kind (exceptions
    by their chain's shape, observations by their facts; 0 disables caching).
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        packs: Sequence[str] = PACKS,
        store: Any = None,
        clock: Clock = SYSTEM_CLOCK,
        use_re2: bool | None = None,
        learn_min_successes: int = 3,
        learn_min_ratio: float = 0.8,
        recent_window: float = 300.0,
        spread_thresholds: tuple[int, int] = (3, 10),
        stats_bucket: float = 10.0,
        stats_horizon: float = 86_400.0,
        cache_size: int = 8192,
    ) -> None:
        self._clock = clock
        self._use_re2 = use_re2
        unknown = [n for n in packs if n not in PACKS]
        if unknown:
            raise RuleError(f"unknown rule pack {unknown[0]!r}; shipped packs: {', '.join(PACKS)}")
        self._packs = tuple(packs)
        # the packs are compiled on the first question, not here: a supervised run that
        # succeeds never classifies anything, and `resurgo run` should not pay for ~300 patterns
        self._pack_rules: list[Rule] = []
        self._loaded = False
        self._user_rules: list[Rule] = []
        self._book = OutcomeBook(store, min_successes=learn_min_successes, min_ratio=learn_min_ratio)
        self._stats = WindowedStats(bucket_seconds=stats_bucket, horizon=stats_horizon)
        self._spread = SpreadTracker()
        self.recent_window = float(recent_window)
        if not 0 < spread_thresholds[0] <= spread_thresholds[1]:
            raise ValueError("spread_thresholds must be (a, b) with 0 < a <= b")
        self.spread_thresholds = spread_thresholds
        self._cache: dict[Any, _Decision] = {}
        self._obs_cache: dict[Any, _Decision] = {}
        self._bumped: dict[tuple[int, Priority], tuple[ErrorClass, ErrorClass]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._pending_rules = list(rules)
        if self._pending_rules:  # user rules are checked at once (a bad rule file must fail at start-up)
            self._load()

    def _load(self) -> None:
        """Compile the packs and index every rule (once; on the first question)."""
        with self._lock:
            if self._loaded:
                return
            self._pack_rules = load_packs(self._packs, use_re2=self._use_re2) if self._packs else []
            pending, self._pending_rules = self._pending_rules, []
            check_unique([*self._user_rules, *pending, *self._pack_rules])
            self._user_rules.extend(pending)
            self._index()
            self._loaded = True

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> Classifier:
        """A classifier with the shipped packs plus the user rules in the TOML file ``path``."""
        return cls(load_rules(path, use_re2=kwargs.get("use_re2")), **kwargs)

    def add_rules(self, rules: Iterable[Rule]) -> None:
        """Add user rules; at equal tier and weight they win over the shipped packs."""
        new = list(rules)
        if not new:
            return
        self._load()
        check_unique([*self._user_rules, *new, *self._pack_rules])
        with self._lock:
            self._user_rules.extend(new)
            self._index()
            self._cache.clear()
            self._obs_cache.clear()

    def _index(self) -> None:
        """Precompute, per tier, which rules a node can possibly match.

        Every rule gets an ident (its position in precedence order).  Rules with an
        exception condition are reached through the node's class names, message-only
        rules through one :class:`PatternSet` scan of the node's text, and only the
        rest are tried on every node; candidates are then confirmed in precedence
        order, so the verdict is the one a rule-by-rule scan would give.
        """
        ordered = [*self._user_rules, *self._pack_rules]
        self._rules = tuple(ordered)
        pset = PatternSet() if HAVE_RE2 else None
        in_set = [False] * len(ordered)
        if pset is not None:
            for i, r in enumerate(ordered):
                if r.matcher is not None:
                    in_set[i] = pset.add(r.matcher, i)
            if not pset.compile():
                pset, in_set = None, [False] * len(ordered)
        self._pset = pset
        self._in_set = tuple(in_set)
        self._tiers: dict[Tier, _TierIndex] = {}
        for t in _RULE_TIERS:
            by_name: dict[str, list[int]] = {}
            msg: list[int] = []
            always: list[int] = []
            for i, r in enumerate(ordered):
                if r.tier is not t:
                    continue
                if r.exception:
                    for name in r.exception | r.exception_bare:
                        by_name.setdefault(name, []).append(i)
                elif in_set[i]:
                    msg.append(i)
                else:
                    always.append(i)
            self._tiers[t] = _TierIndex(
                by_name={k: tuple(v) for k, v in by_name.items()}, msg=frozenset(msg), always=tuple(always)
            )
        by_status: dict[int, list[int]] = {}
        generic_status: list[int] = []
        for i, r in enumerate(ordered):
            if r.tier is not Tier.STATUS:
                continue
            if r.http_status:
                for st in r.http_status:
                    by_status.setdefault(st, []).append(i)
            else:
                generic_status.append(i)
        self._by_status = {st: tuple(v) for st, v in by_status.items()}
        self._generic_status = tuple(generic_status)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """All rules in precedence order of equal-weight ties (user rules first)."""
        if not self._loaded:
            self._load()
        return self._rules

    # -- the public questions --------------------------------------------------------
    def classify(self, error: Any, *, job: str | None = None, record: bool = True) -> ErrorClass:
        """Classify an exception, an :class:`Observation`, its dict form, or a bare message.

        ``job`` identifies the job that hit the failure (priority rises when one
        signature hits many jobs); ``record=False`` leaves statistics untouched.
        Raises ``ObservationError`` for a dict with a malformed field and
        ``TypeError`` for other input types; never for odd exceptions.  An
        :class:`ErrorClass` is returned as it is, so a verdict can be passed on to
        ``is_retryable`` / ``priority`` / ``suggest_strategy`` without judging twice.
        """
        if isinstance(error, ErrorClass):
            return error
        decision = self._decide(error)
        return self._finish(decision, job=job, record=record)

    def is_retryable(self, error: Any) -> bool:
        return self.classify(error, record=False).retryable

    def priority(self, error: Any, *, job: str | None = None) -> Priority:
        return self.classify(error, job=job, record=False).priority

    def suggest_strategy(self, error: Any) -> Strategy:
        return self.classify(error, record=False).strategy

    def signature(self, error: Any) -> str:
        """The normalised signature the classifier files ``error`` under."""
        return self._decide(error).signature

    def explain(self, error: Any) -> list[str]:
        return list(self.classify(error, record=False).evidence)

    # -- learning --------------------------------------------------------------------
    def record_outcome(self, error_or_sig: Any, retry_succeeded: bool) -> LearnedRule:
        """Record whether retrying this failure (or this signature string) succeeded."""
        if isinstance(error_or_sig, str):
            sig, base, example = error_or_sig, None, ""
        else:
            d = self._decide(error_or_sig, learned=False)
            if d.verdict.type is None:
                raise ValueError("cannot record a retry outcome for something that is not an error")
            sig, base = d.signature, d.verdict.rule
            example = redact(sig)
        return self._book.record(sig, bool(retry_succeeded), now=self._clock.time(), base_rule=base, example=example)

    def merge_outcomes(
        self,
        signature: str,
        *,
        successes: int = 0,
        failures: int = 0,
        base_rule: str | None = None,
        example: str = "",
    ) -> LearnedRule:
        """Add retry outcomes of ``signature`` that were observed elsewhere (another process or host).

        For sharing what a fleet learned: the counts are added to this
        classifier's own (and written through to its store), timestamped with
        its clock, and the signature becomes learned when the totals cross the
        thresholds, exactly as if they had been recorded here.  ``base_rule``
        is the rule the failure matched before learning (kept for
        ``resurgo rules``); ``example`` is a redacted sample text.
        """
        if not isinstance(signature, str) or not signature:
            raise ValueError("merge_outcomes needs a non-empty signature")
        return self._book.add(
            signature,
            successes=int(successes),
            failures=int(failures),
            now=self._clock.time(),
            base_rule=base_rule,
            example=redact(example)[:300] if example else "",
        )

    def learned_rules(self) -> list[LearnedRule]:
        """Signatures currently learned as transient."""
        return self._book.learned()

    def outcomes(self) -> list[LearnedRule]:
        """Every signature with recorded outcomes, learned or not."""
        return self._book.outcomes()

    def forget(self, signature_or_all: str) -> int:
        """Forget a signature's outcomes (``"*"`` forgets all); returns how many were dropped."""
        return self._book.forget(signature_or_all)

    # -- statistics ------------------------------------------------------------------
    def stats(self, window: float = 300.0, *, top: int = 20) -> ErrorStats:
        """Errors by type, severity and signature in the last ``window`` seconds."""
        with self._lock:
            return self._stats.snapshot(self._clock.time(), window, top=top)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()
            self._spread = SpreadTracker()

    # -- engine ----------------------------------------------------------------------
    def _decide(self, error: Any, *, learned: bool = True) -> _Decision:
        if not self._loaded:
            self._load()
        if isinstance(error, BaseException):
            d = self._decide_exception(error)
        elif isinstance(error, Observation):
            d = self._decide_observation(error)
        elif isinstance(error, Mapping):
            d = self._decide_observation(Observation.from_dict(error))
        elif isinstance(error, str):
            d = self._decide_observation(Observation(message=error))
        else:
            raise TypeError(
                f"cannot classify {type(error).__name__}: pass an exception, an Observation, "
                "a dict in the observation JSON form, or a message string"
            )
        if learned and d.verdict.rule == FALLBACK_RULE and self._book.is_learned(d.signature):
            ev = (*d.verdict.evidence, f"learned: signature {d.signature!r} keeps succeeding on retry")
            d = replace(d, verdict=replace(LEARNED, evidence=ev), tier=Tier.LEARNED)
        return d

    def _decide_exception(self, exc: BaseException) -> _Decision:
        pairs = exception_nodes(exc)
        nodes = [n for _, n in pairs]
        key = tuple(
            (type(e), n.text, n.status, n.errno, n.exit_code, n.signal, n.subtype, n.terminal_reason, n.result_error)
            for e, n in pairs
        )
        headers = next((n.headers for n in nodes if n.headers is not None), None)
        cached = self._cache.get(key)
        if cached is not None:
            if headers is cached.headers:
                return cached
            return _Decision(cached.verdict, cached.signature, cached.tier, cached.reset, headers)
        d = self._evaluate(nodes, headers=headers)
        if self._cache_size > 0:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # crude but bounded; hot signatures re-enter at once
            self._cache[key] = d
        return d

    def _decide_observation(self, obs: Observation) -> _Decision:
        f = observation_facts(obs)
        node = f.node
        sig = make_signature(node.label or _obs_label(node), node.primary)
        if f.killed_by in _KILLED:
            v = _KILLED[f.killed_by]
            ev = (f"killed_by: resurgo ended the process ({f.killed_by})", f"signature {sig!r}")
            return _Decision(replace(v, evidence=ev), sig, Tier.KILLED_BY, None, None)
        if f.result_ok:
            return _Decision(
                replace(_RESULT_OK, evidence=("result event: is_error false",)), sig, Tier.KILLED_BY, None, None
            )
        if (
            node.exit_code == 0
            and not f.error_event
            and not obs.exception_type
            and (obs.http_status is None or obs.http_status < 400)
        ):
            return _Decision(
                replace(_EXIT_OK, evidence=("exit code 0 and no error event",)), sig, Tier.KILLED_BY, None, None
            )
        if not f.has_evidence:
            return _Decision(_NO_EVIDENCE, sig, Tier.FALLBACK, None, None)
        key = (
            obs.exception_type,
            node.text,
            node.primary,
            node.status,
            node.exit_code,
            node.signal,
            node.cli_errors,
            node.subtype,
            node.terminal_reason,
            node.result_error,
            node.stream_incomplete,
        )
        headers = obs.headers or None
        cached = self._obs_cache.get(key)
        if cached is None:
            d = self._evaluate([node], headers=headers, signature=sig, observed=True)
            if self._cache_size > 0 and len(node.text) <= _OBS_CACHE_TEXT:
                if len(self._obs_cache) >= self._cache_size:
                    self._obs_cache.clear()
                self._obs_cache[key] = d
        else:
            d = (
                cached
                if headers is cached.headers
                else _Decision(cached.verdict, cached.signature, cached.tier, cached.reset, headers)
            )
        if f.resets_at is not None and d.verdict.retryable:
            d = _with_resets(d, f.resets_at)
        return d

    def _evaluate(
        self, nodes: list[Node], *, headers: Any, signature: str | None = None, observed: bool = False
    ) -> _Decision:
        deferred: _Decision | None = None
        for tier in _RULE_TIERS:
            if tier is Tier.EXIT:
                # vocabulary families: after every explicit message rule, before "it exited non-zero";
                # the exit-wrapper family says no more than the exit tier's structured evidence, so it waits
                sem = _semantic_decision(nodes, headers=headers, signature=signature)
                if sem is not None and sem.verdict.category != "process_exit":
                    return sem
                deferred = sem
            best: tuple[Rule, Node, float] | None = None
            for node in nodes:
                hit = self._best_in_tier(tier, node)
                if hit is None:
                    continue
                rule, level = hit
                if best is None or (-rule.weight, node.depth) < (-best[0].weight, best[1].depth):
                    best = (rule, node, level)
            if best is not None:
                rule, node, level = best
                sig = signature or make_signature(node.label or _obs_label(node), node.primary)
                ev = [f"{tier.name.lower()}: rule {rule.id} ({rule.source or 'user'}), weight {rule.weight}"]
                ev.extend(_explain_match(rule, node, level))
                ev.append(f"signature {sig!r}")
                verdict = replace(rule.verdict, evidence=tuple(ev), description=_describe(rule, node, observed))
                reset = None
                if verdict.retryable and verdict.type is not None:
                    reset = parse_message_reset(node.text)
                    if reset is None and len(nodes) > 1:
                        reset = next((r for r in (parse_message_reset(n.text) for n in nodes) if r), None)
                return _Decision(verdict, sig, tier, reset, headers)
        if deferred is not None:
            return deferred
        top = nodes[0]
        sig = signature or make_signature(top.label or _obs_label(top), top.primary)
        fb_ev = ("fallback: no rule matched", f"signature {sig!r}")
        desc = describe_fallback(top, from_cli=observed)
        return _Decision(replace(FALLBACK, evidence=fb_ev, description=desc), sig, Tier.FALLBACK, None, headers)

    def _hits(self, node: Node) -> frozenset[int]:
        """Idents of set-indexed rules whose message pattern matches the node (one scan, memoised)."""
        hits = node.hits
        if hits is None:
            hits = self._pset.matching(node.text) if self._pset is not None and node.text else frozenset()
            node.hits = hits
        return hits

    def _best_in_tier(self, tier: Tier, node: Node) -> tuple[Rule, float] | None:
        if tier is Tier.STATUS:
            if node.status is None:
                return None
            cands: Iterable[int] = self._by_status.get(node.status, ()) + self._generic_status
        else:
            ti = self._tiers[tier]
            found = set(ti.always)
            if ti.by_name and node.names:
                get = ti.by_name.get
                for name in node.names:
                    ids = get(name)
                    if ids:
                        found.update(ids)
            if ti.msg and node.text:
                found.update(ti.msg & self._hits(node))
            if not found:
                return None
            cands = sorted(found)
        rules = self._rules
        in_set = self._in_set
        best: tuple[Rule, float] | None = None
        for i in cands:
            r = rules[i]
            level = _match(r, node, (i in self._hits(node)) if in_set[i] else None)
            if level is None:
                continue
            if best is None or (level, -r.weight) < (best[1], -best[0].weight):
                best = (r, level)
        return best

    def _finish(self, d: _Decision, *, job: str | None, record: bool) -> ErrorClass:
        v = d.verdict
        if v.type is None:
            return v
        now = self._clock.time()
        retry_after: float | None = None
        ra_source = ""
        if v.retryable and (d.reset is not None or d.headers):
            retry_after, ra_source = compute_retry_after(now=now, message_reset=d.reset, headers=d.headers)
        with self._lock:
            if record:
                self._stats.record(now, v.type.value, v.severity.value if v.severity else None, d.signature)
                jobs = self._spread.hit_and_count(d.signature, now, job, self.recent_window, self.spread_thresholds[1])
            else:
                jobs = self._spread.jobs(d.signature, now, self.recent_window, self.spread_thresholds[1])
        prio = v.priority
        bump = (jobs >= self.spread_thresholds[0]) + (jobs >= self.spread_thresholds[1])
        if bump:
            prio = _PRIORITIES[max(0, _PRIORITIES.index(prio) - bump)]
        if retry_after is None:
            if prio is v.priority:
                return v
            # a widespread signature: reuse the bumped verdict instead of rebuilding it per call
            memo = self._bumped.get((id(v), prio))
            if memo is not None and memo[0] is v:
                return memo[1]
        ev = v.evidence
        desc = v.description
        if retry_after is not None:
            ev = (*ev, f"retry_after {retry_after:.3f}s from {ra_source}")
            try:
                desc = f"{desc}; {wait_text(retry_after, ra_source, d.reset, now)}"
            except Exception:  # words are a courtesy; the verdict must still be returned
                desc = f"{desc}; retry in {retry_after:.0f}s"
        if prio is not v.priority:
            ev = (*ev, f"priority raised: signature hit {jobs}+ jobs in {self.recent_window:g}s")
        out = replace(v, retry_after=retry_after, priority=prio, evidence=ev, description=desc)
        if retry_after is None:
            if len(self._bumped) >= 4096:
                self._bumped.clear()
            self._bumped[(id(v), prio)] = (v, out)
        return out


def _semantic_decision(nodes: list[Node], *, headers: Any, signature: str | None) -> _Decision | None:
    """The semantic tier's verdict for the first node whose text speaks a family's vocabulary."""
    for node in nodes:
        hit = semantic_match(node.text)
        if hit is None:
            continue
        fam, verdict, m = hit
        sig = signature or make_signature(node.label or _obs_label(node), node.primary)
        snippet = redact(node.text[max(0, m.start() - 20) : m.end() + 20]).replace("\n", " ")
        ev = (
            f"semantic: vocabulary family {fam.name!r} (no explicit rule matched; confidence {verdict.confidence:g})",
            f"words …{snippet}…",
            f"signature {sig!r}",
        )
        reset = parse_message_reset(node.text) if verdict.retryable else None
        return _Decision(replace(verdict, evidence=ev), sig, Tier.SEMANTIC, reset, headers)
    return None


def _describe(rule: Rule, node: Node, observed: bool) -> str:
    try:
        return describe(rule, node, from_cli=observed)
    except Exception:  # classification runs on the failure path: never fail for want of words
        return rule.verdict.description


def _with_resets(d: _Decision, resets_at: float) -> _Decision:
    reset = d.reset
    if reset is None:
        reset = ResetSpec(epoch=resets_at, source="rate_limit_event resetsAt")
    return replace(d, reset=reset)


def _obs_label(node: Node) -> str:
    if node.status is not None:
        return f"http{node.status}"
    if node.cli_errors:
        return sorted(node.cli_errors)[0]
    if node.subtype and node.result_error:
        return node.subtype
    if node.signal is not None:
        return f"signal{node.signal}"
    if node.exit_code is not None:
        return f"exit{node.exit_code}"
    return "obs"


def _match(r: Rule, n: Node, set_hit: bool | None = None) -> float | None:
    """MRO distance of the match (0 when the rule has no class condition), or None.

    ``set_hit`` is the pattern set's answer for the rule's message condition
    (``None``: the rule is not in the set, so its own pattern is searched).
    """
    level = 0.0
    if r.exception:
        names = n.names
        if not names:
            return None
        best: float | None = None
        for name in r.exception:
            lv = names.get(name)
            if lv is not None and (best is None or lv < best):
                best = lv
        if best is None:
            for name in r.exception_bare:
                lv = names.get(name)
                if lv is not None and (best is None or lv + 0.5 < best):
                    best = lv + 0.5
        if best is None:
            return None
        level = best
    if r.http_status and n.status not in r.http_status:
        return None
    if r.errno and n.errno not in r.errno:
        return None
    if r.cli_error and not (r.cli_error & n.cli_errors):
        return None
    if r.subtype and n.subtype not in r.subtype:
        return None
    if r.terminal_reason and n.terminal_reason not in r.terminal_reason:
        return None
    if r.signal and n.signal not in r.signal:
        return None
    if r.exit_code or r.exit_nonzero:
        ec = n.exit_code
        if ec is None or not (ec in r.exit_code or (r.exit_nonzero and ec != 0)):
            return None
    if r.result_error is not None and n.result_error is not r.result_error:
        return None
    if r.stream_incomplete is not None and n.stream_incomplete is not r.stream_incomplete:
        return None
    if r.matcher is not None:
        text = n.text
        if not text:
            return None
        if set_hit is None:
            if r.matcher.search(text) is None:
                return None
        elif not set_hit:
            return None
    return level


def _explain_match(r: Rule, n: Node, level: float) -> list[str]:
    out: list[str] = []
    if r.exception:
        hit = min(
            (name for name in (*r.exception, *r.exception_bare) if name in n.names),
            key=lambda name: (n.names[name], name),  # deterministic on ties
            default="?",
        )
        out.append(f"exception {n.label or '?'} matched {hit!r} at MRO distance {level:g}")
    if r.http_status:
        out.append(f"http status {n.status}")
    if r.errno:
        out.append(f"errno {n.errno}")
    if r.cli_error:
        out.append(f"assistant error {sorted(r.cli_error & n.cli_errors)}")
    if r.subtype:
        out.append(f"result subtype {n.subtype}")
    if r.terminal_reason:
        out.append(f"terminal_reason {n.terminal_reason}")
    if r.signal:
        out.append(f"signal {n.signal}")
    if r.exit_code or r.exit_nonzero:
        out.append(f"exit code {n.exit_code}")
    if r.result_error is not None:
        out.append(f"result is_error {n.result_error}")
    if r.stream_incomplete is not None:
        out.append("stream ended without a result event")
    for p in r.patterns:
        m = p.search(n.text)
        if m:
            snippet = redact(n.text[max(0, m.start() - 20) : m.end() + 20]).replace("\n", " ")
            out.append(f"message /{p.pattern}/ matched …{snippet}…")
            break
    if n.depth:
        out.append(f"found at depth {n.depth} of the exception chain")
    return out


# -- module-level API over a default classifier ------------------------------------

_default: Classifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> Classifier:
    """The process-wide classifier the module-level functions use (created on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Classifier()
    return _default


def set_default_classifier(classifier: Classifier | None) -> None:
    """Replace the default classifier (``None`` recreates it on next use)."""
    global _default
    _default = classifier


def classify(error: Any, *, job: str | None = None) -> ErrorClass:
    """Classify with the default classifier (see :meth:`Classifier.classify`)."""
    return default_classifier().classify(error, job=job)


def is_retryable(error: Any) -> bool:
    return default_classifier().is_retryable(error)


def priority(error: Any, *, job: str | None = None) -> Priority:
    return default_classifier().priority(error, job=job)


def suggest_strategy(error: Any) -> Strategy:
    return default_classifier().suggest_strategy(error)


__all__ = [
    "Classifier",
    "classify",
    "default_classifier",
    "is_retryable",
    "priority",
    "set_default_classifier",
    "suggest_strategy",
]
