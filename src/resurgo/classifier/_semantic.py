"""The semantic tier: vocabulary families that judge a failure no explicit rule knows.

Explicit rules match *wordings* ("OAuth token has expired"); the CLI rewords its
messages almost weekly, and a wording nobody wrote a rule for used to fall to
the fallback (``internal``, not retryable) — which turns a transient failure
into a fatal one.  This tier instead recognises the *vocabulary* a kind of
failure is written in (credentials words, size words, connection words, exit
wrappers, quota words), so an unseen wording of a known kind still lands in the
right type.  It runs after every explicit tier that reads messages and before
the generic "the process exited non-zero and nothing said why" evidence
(see docs/taxonomy.md, "The semantic tier"), with a lower confidence than any
explicit rule.

Families are tried in order and the first whose vocabulary appears wins; the
order encodes which reading is safer when a text mixes vocabularies: money and
policy before credentials, credentials before sizes, a cause before the
wrapper that reports it ("Command failed with exit code 1 … Invalid API key"
is about the key, not the exit).  Each family is one bounded, linear pattern
(RE2 when installed; otherwise Python ``re`` after the backtracking check), and
the patterns are compiled on first use, so building a classifier costs nothing
here and classifying a known failure never reaches this tier.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from resurgo.classifier._patterns import HAVE_RE2, Pattern, PatternSet, combine_patterns, compile_pattern
from resurgo.classifier._types import SEVERITY_PRIORITY, ErrorClass, ErrorType, Severity, Strategy

#: Confidence of a semantic verdict: below every explicit tier (message patterns are 0.7).
SEMANTIC_CONFIDENCE = 0.5

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"


@dataclass(frozen=True, slots=True)
class Family:
    """One vocabulary family: the words, and the verdict they stand for."""

    name: str
    type: ErrorType
    retryable: bool
    strategy: Strategy
    severity: Severity
    description: str
    patterns: tuple[str, ...]

    def verdict(self) -> ErrorClass:
        return ErrorClass(
            type=self.type,
            severity=self.severity,
            category=self.name,
            description=self.description,
            retryable=self.retryable,
            strategy=self.strategy,
            priority=SEVERITY_PRIORITY[self.severity],
            rule=f"semantic.{self.name}",
            confidence=SEMANTIC_CONFIDENCE,
        )


_R, _NET, _TO, _AUTH, _VAL, _PROC, _INT = (
    ErrorType.RESOURCE,
    ErrorType.NETWORK,
    ErrorType.TIMEOUT,
    ErrorType.AUTH,
    ErrorType.VALIDATION,
    ErrorType.PROCESS,
    ErrorType.INTERNAL,
)
_M, _H, _C = Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL

#: The families, most specific reading first.  Keep every repeat bounded.
FAMILIES: tuple[Family, ...] = (
    Family(
        "billing", _R, False, Strategy.ESCALATE, _C,
        "a paid plan, credits or billing are needed: waiting will not change that",
        (
            r"\b(?:usage |extra |prepaid |api )?credits? (?:are |is )?(?:required|needed|not available|turned off|"
            r"exhausted|balance|run out|ran out|depleted|disabled)",
            r"\b(?:requires?|needs?) (?:usage |extra |prepaid |more |api )?credits\b",
            r"\b(?:buy|purchase|add) (?:more )?(?:usage )?credits\b",
            r"\bpaid (?:plan|subscription|tier)\b",
            r"\b(?:requires?|needs?|available (?:only )?(?:on|with)) (?:a |an )?(?:pro|max|team|enterprise|paid|higher)"
            r" (?:plan|subscription|tier)\b",
            r"\bupgrade (?:your |to a )?(?:plan|subscription|account)\b",
            r"\bsubscription (?:is )?(?:required|needed|expired|inactive|cancel+ed)\b",
            r"\b(?:billing|payment|invoice)\b",
        ),
    ),
    Family(
        "quota_reset", _R, True, Strategy.WAIT_UNTIL, _H,
        "a usage window is exhausted; it resets at the time given",
        (
            rf"\bresets?\s{1,4}(?:on\s{1,4}|at\s{1,4})?(?:(?:{_MONTHS})[a-z]{0,12}\.?\s{1,4}\d|\d{{1,2}}(?::\d\d)?\s{0,4}[ap]\.?m|\d{{1,2}}:\d\d|"
            r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]{0,12}\b|tomorrow|in \d)",
            r"\b(?:usage|session|weekly|daily|hourly|monthly|5-hour|opus|sonnet|message) (?:limit|quota|cap)\b",
        ),
    ),
    Family(
        "throttled", _R, True, Strategy.RETRY, _H,
        "the service is limiting requests for now; back off and retry",
        (
            r"\btemporarily (?:limit|restrict|throttl|block)\w{0,16}",
            r"\b(?:throttl\w{0,16}|rate[- ]?limit\w{0,16}|slow down|too many (?:concurrent )?(?:requests|"
            r"connections|calls))\b",
            r"\b(?:request|concurrency) limit\b",
            r"\b(?:overloaded|over capacity|at capacity|high demand|server is busy|servers are busy)\b",
            r"\btry again (?:later|shortly|soon|in a (?:few |little )?(?:moments?|minutes?|seconds?|while))\b",
        ),
    ),
    Family(
        "turn_budget", _R, False, Strategy.ABORT, _H,
        "the run used up its own turn or cost budget; a retry would hit the same budget",
        (
            r"\b(?:max(?:imum)?(?: number of)?|turn) ?(?:turns?|limit) (?:reached|exceeded|hit)\b",
            r"\breached (?:the )?max(?:imum)?(?: number of)? turns\b",
            r"\bmax[-_ ]?turns\b",
            r"\b(?:max(?:imum)?[-_ ]budget|budget (?:reached|exceeded|exhausted))\b",
        ),
    ),
    Family(
        "org_policy", _AUTH, False, Strategy.ESCALATE, _C,
        "the organisation or account is disabled, or its policy forbids this",
        (
            r"\b(?:organi[sz]ation|org|account|workspace)\b.{0,40}\b(?:disabled|suspended|deactivated|banned|"
            r"blocked|on hold|not (?:allowed|permitted|enabled))\b",
            r"\b(?:disabled|blocked|not (?:allowed|permitted)|turned off|restricted) (?:by|under|for) (?:your |the )?"
            r"(?:organi[sz]ation|org|admin|administrator|workspace|enterprise)",
            r"\b(?:organi[sz]ation|org|enterprise)'?s? (?:policy|policies|admin|administrator)\b",
        ),
    ),
    Family(
        "model_access", _VAL, False, Strategy.ABORT, _M,
        "the model is unknown, retired or not available to this key: pick another model",
        (
            r"\bmodel\b.{0,60}\b(?:unknown|not found|does(?:n't| not) exist|no access|not available|not supported|"
            r"not allowed|not enabled|invalid|deprecated|retired|unavailable)\b",
            r"\b(?:unknown|invalid|unsupported|unrecognized|retired|deprecated) model\b",
            r"\bno access to (?:the |this )?model\b",
        ),
    ),
    Family(
        "credentials", _AUTH, False, Strategy.ESCALATE, _C,
        "credentials missing, expired, revoked or without the needed scope; a human must sign in again",
        (
            r"\boauth\b",
            r"\b(?:re-?authenticat\w{0,16}|re-?auth\b|re-?log ?in|log ?in again|sign ?in again|run /login|/login\b)",
            r"\b(?:not|isn't|no longer) (?:logged|signed) ?in\b",
            r"\b(?:login|sign-?in|session|credentials?|token|access|auth\w{0,16}) (?:has |have |is |are )?"
            r"(?:expired|revoked|"
            r"invalid|rejected|refused|missing|required|needed|failed|unavailable|not found)\b",
            r"\b(?:expired|revoked|invalid|rejected|missing|bad) (?:\w{1,16} ){0,2}(?:token|credentials?|login|"
            r"session)\b",
            r"\b(?:token|credentials?)\b.{0,30}\b(?:refresh|renew)\w{0,16} (?:failed|error)",
            r"\b(?:could ?n[o']t|unable to|failed to|cannot|can't) (?:refresh|renew|load|resolve|find|get|retrieve|"
            r"read|obtain|fetch) (?:\w{1,16} ){0,3}(?:credentials?|tokens?|api key|auth\w{0,16})\b",
            r"\bapi[-_ ]?key|apikeyhelper|credential[-_ ]?helper|auth(?:entication)? (?:method|source|helper)\b",
            r"\bno (?:\w{1,16} )?(?:auth\w{0,16}|credentials?|login)\b",
            r"\b(?:missing|lacks?|without|insufficient|required) (?:the )?(?:required )?(?:\w{1,16} )?"
            r"(?:scopes?|permissions?)\b",
            r"\bscopes?\b.{0,30}\b(?:missing|required|insufficient|not granted)\b",
            r"\b(?:unauthenticated|unauthori[sz]ed|not authori[sz]ed|access denied|permission denied for (?:this )?"
            r"(?:api|model|organi[sz]ation|key))\b",
            r"\bclaude\.ai (?:login|sign-?in|account|subscription|authentication)\b",
            r"\bauthenticat\w{0,16} (?:failed|failure|error|required|needed)\b",
            r"\b(?:credentials?|authenticat\w{1,16}|unauthenticated|revoked|sign-?in|log-?in)\b",
        ),
    ),
    Family(
        "context_size", _VAL, False, Strategy.FORK_SESSION, _M,
        "the conversation or request no longer fits; continue in a fresh or forked session",
        (
            r"\b(?:conversation|context|prompt|request|input|messages?|transcript|history)\b.{0,40}"
            r"\b(?:too (?:large|long|big)|exceed\w{0,16}|over (?:the |its )?(?:\w{1,16} )?limit)",
            r"\bcontext (?:window|length|limit)\b",
            r"\b(?:compact\w{0,16}|summari[sz]\w{0,16})\b.{0,40}"
            r"\b(?:failed|error|too (?:large|long)|could ?n[o']t|unable|thrash\w{0,16})",
            r"\b(?:failed|unable) to (?:auto)?compact\b",
        ),
    ),
    Family(
        "too_large", _VAL, False, Strategy.ABORT, _M,
        "something is over its size limit; the same input is refused again",
        (
            r"\btoo (?:large|long|big)\b",
            r"\bexceed\w{0,16} (?:the |its |their |a )?(?:\w{1,16} )?(?:maximum|max|size|length|limit|\d)",
            r"\b(?:size|length|byte|token) limit\b",
            r"\bover (?:the |its )?(?:\w{1,16} )?limit\b",
        ),
    ),
    Family(
        "policy_refusal", _VAL, False, Strategy.ABORT, _M,
        "refused under the usage policy; the same request is refused again",
        (
            r"\busage polic(?:y|ies)\b",
            r"\b(?:acceptable use|content (?:policy|filter)|safety (?:policy|filter|system))\b",
            r"\bviolat\w{0,16} (?:our|the|anthropic'?s?) (?:\w{1,16} )?(?:policy|policies|terms)\b",
        ),
    ),
    Family(
        "binary_missing", _PROC, False, Strategy.ABORT, _H,
        "the program is missing or not executable; restarting it fails the same way",
        (
            r"\b(?:claude(?: code)?|cli|binary|executable|program|node|bun|npx?|ripgrep|rg)\b.{0,40}\b(?:not found|"
            r"not installed|isn't installed|no such file|not executable|could not be found|missing)\b",
            r"\bnot (?:installed|found) (?:on|in) (?:your |the )?path\b",
            r"\bcommand not found\b",
            r"\bexit(?:ed)?(?: with)?(?: code| status)?[: =(]+12[67]\b",
            r"\b(?:spawn|exec)\w{0,16}\b.{0,40}\benoent\b",
            r"\bnpm (?:install|i) (?:-g )?@anthropic-ai/claude-code\b",
        ),
    ),
    Family(
        "certificate", _VAL, False, Strategy.ABORT, _M,
        "a TLS certificate is not trusted: configuration, not a transient failure",
        (r"\bcertificates?\b", r"\bself[- ]signed\b", r"\bunable to verify\b", r"\bx509\b", r"\btls pin\b"),
    ),
    Family(
        "network", _NET, True, Strategy.RETRY, _M,
        "the connection could not be made or broke; a new connection usually works",
        (
            r"\b(?:connection|connections|socket|stream|websocket|tunnel|channel|pipe|transport|link)\b.{0,40}"
            r"\b(?:closed|reset|refused|lost|dropped|broken|aborted|terminated|interrupted|not open|failed|"
            r"severed|hung up)\b",
            r"\b(?:closed|reset|dropped|aborted) (?:the |by (?:the )?)?"
            r"(?:connection|socket|peer|remote|server|upstream)\b",
            r"\b(?:could ?n[o']t|unable to|failed to|cannot|can't|did not) (?:re)?(?:connect|reach|dial)\b",
            r"\breconnect\w{0,16}\b.{0,30}\b(?:failed|gave up|exhausted|unsuccessful|error)",
            r"\b(?:disconnected|network (?:error|issue|problem|failure|is unreachable)|unreachable|dns|"
            r"econn\w{1,16}|epipe|"
            r"enetdown|ehostdown|closed before|hang ?up|peer|upstream (?:connect|error|reset))\b",
        ),
    ),
    Family(
        "timeout", _TO, True, Strategy.RETRY, _M,
        "something ran past a deadline; the next attempt usually finishes",
        (
            r"\btimed?[- ]?out\b|\btimeout\b|\bdeadline\b",
            r"\btook too long\b|\bno (?:response|reply|answer) (?:from|within|after|in)\b",
            r"\bdid not (?:respond|answer|finish|complete) (?:in time|within)\b",
        ),
    ),
    Family(
        "process_exit", _PROC, True, Strategy.RESUME_SESSION, _H,
        "the process died after it had started; restart it and resume the session",
        (
            r"\bcommand failed with exit code\b",
            r"\b(?:process|subprocess|cli|child|claude(?: code)?|worker|runtime)\b.{0,30}\b(?:exited|terminated|died|"
            r"crashed|quit|ended|stopped|killed|exit(?:ed)? with)\b",
            r"\bexit(?:ed)? (?:with )?(?:code|status)\b|\bexit (?:code|status)[: =]",
            r"\bfatal error in (?:the )?message reader\b",
            r"\b(?:crash\w{0,16}|segfault|core dumped|abort(?:ed)? \(core|killed by signal|received signal|"
            r"sig(?:kill|segv|"
            r"abrt|bus|term|trap))\b",
            r"\b(?:not running|is not ready|terminated unexpectedly|stopped unexpectedly|died unexpectedly)\b",
            r"\b(?:cannot|can't|could not) write to (?:the )?(?:terminated )?process\b",
            r"\bunexpected end of (?:stream|output|json|input)\b",
        ),
    ),
    Family(
        "remote_internal", _INT, True, Strategy.RETRY, _H,
        "the remote side failed on its own; retrying usually works",
        (
            r"\binternal (?:server )?error\b|\bserver error\b|\bserver (?:failed|crashed)\b",
            r"\bsomething went wrong\b|\bunexpected (?:server |api |internal )?error\b",
            r"\bservice (?:error|unavailable|temporarily)\b|\bbad gateway\b|\bupstream error\b",
        ),
    ),
    Family(
        "invalid_request", _VAL, False, Strategy.ABORT, _M,
        "the request, invocation or configuration is wrong; it fails again unchanged",
        (
            r"\b(?:invalid|malformed|unsupported|unrecognized|unrecognised|illegal)\b|\bbad \w{1,16}",
            r"\bunknown (?:option|flag|argument|model|tool|command|subcommand|value|setting|field|key|parameter|type|"
            r"server|permission|mode|session|agent|hook|format|provider|beta|region)\b",
            r"\b(?:not supported|not allowed|not permitted|not available|no such|does(?:n't| not) exist|not found|"
            r"mutually exclusive|cannot be (?:used|combined|set)|can't be (?:used|combined))\b",
            r"\b(?:is|are) (?:a |an )?(?:required|invalid|missing)\b",
            r"\bno (?:\w{1,16} ){0,2}(?:configured|specified|provided|given)\b",
            r"\bmust (?:be|have|not|all|contain|include|provide|specify|start|end|match)\b",
            r"\brequires? (?:--|-[a-z]\b|the --|a |an |either |one of|at least)",
            r"\bmissing (?:\w{1,16} )?(?:fields?|arguments?|parameters?|options?|values?|prompt|input|keys?|"
            r"propert(?:y|ies)|"
            r"elements?)\b",
            r"\bno (?:prompt|input|model|tool|session|conversation|such)\b",
            r"\b(?:could ?n[o']t|unable to|failed to|cannot) (?:parse|validate|decode)\b",
            r"\bparse error\b|\berror parsing\b",
            r"\bexpected (?:a|an|one|at least|\w{1,16} (?:to be|but))\b",
            r"\bno (?:\w{1,16} )?(?:matching|named|called)\b",
        ),
    ),
)

_lock = threading.Lock()
_compiled: tuple[tuple[Pattern, Family, ErrorClass], ...] | None = None
_set: PatternSet | None = None  # all families in one RE2 scan: which of them appear at all


def _compile() -> tuple[tuple[Pattern, Family, ErrorClass], ...]:
    """One alternation per family, compiled on first use (RE2 when installed)."""
    global _compiled
    with _lock:
        if _compiled is None:
            out = []
            for f in FAMILIES:
                rid = f"semantic.{f.name}"
                for p in f.patterns:  # each part is checked (RE2, or the backtracking check without it)
                    compile_pattern(p, rule_id=rid)
                out.append((combine_patterns(list(f.patterns), rule_id=rid), f, f.verdict()))
            if HAVE_RE2:
                pset = PatternSet()
                ok = all(pset.add(pat, i) for i, (pat, _f, _v) in enumerate(out))
                global _set
                _set = pset if ok and pset.compile() else None
            _compiled = tuple(out)
    return _compiled


#: Characters of a text the semantic tier reads: the head (where the CLI puts the message) and the tail.
SEMANTIC_TEXT = 8192


def match(text: str) -> tuple[Family, ErrorClass, Any] | None:
    """The first family whose vocabulary appears in ``text`` (bounded), with its verdict and the match."""
    if not text:
        return None
    if len(text) > SEMANTIC_TEXT:
        text = text[: SEMANTIC_TEXT // 2] + "\n" + text[-SEMANTIC_TEXT // 2 :]
    compiled = _compiled or _compile()
    if _set is not None:
        found = _set.matching(text)  # one linear scan for all families, then the winner's own search
        if not found:
            return None
        pat, fam, verdict = compiled[min(found)]
        m = pat.search(text)
        return (fam, verdict, m) if m is not None else None
    for pat, fam, verdict in compiled:
        m = pat.search(text)
        if m is not None:
            return fam, verdict, m
    return None


def families() -> tuple[Family, ...]:
    return FAMILIES


__all__ = ["FAMILIES", "SEMANTIC_CONFIDENCE", "Family", "families", "match"]

