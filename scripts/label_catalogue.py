#!/usr/bin/env python3
"""Label the mined vocabulary (tests/corpus/mined/*.jsonl) into tests/corpus/catalogue/catalogue.jsonl.

    python scripts/label_catalogue.py [--check]

Thousands of strings cannot be labelled one by one, so labels come from *families*: rules of
thumb written by reading the taxonomy (shared/spec/error-taxonomy.md and docs/taxonomy.md)
against the mined strings, each with a type, retryability and the reason, first match wins,
then spot-checked by reading random samples per family (``--sample FAMILY``) and corrected by
the explicit ``OVERRIDES`` at the bottom.  This labeller is deliberately *independent code*
from the classifier (resurgo's rule packs and semantic tier are never consulted), so the
catalogue measures the classifier instead of echoing it.

Only failures a run or an API/SDK call can end with are kept: a string that matches no
family, or matches ``NOT_A_RUN_FAILURE`` (prompt text for the model, UI hints, tool-level
errors the agent handles itself inside a successful run, library internals), is left out
and counted.  ``--check`` exits 1 when the committed catalogue differs from a fresh labelling.
"""

# ruff: noqa: E501  (the family table reads best one pattern per line)
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINED = ROOT / "tests" / "corpus" / "mined"
OUT = ROOT / "tests" / "corpus" / "catalogue" / "catalogue.jsonl"

IC = re.IGNORECASE

#: Not a failure that ends a run: prompt/instruction text, UI copy, tool-level errors the agent
#: sees and handles inside a run that goes on, parser/bundler/crypto internals of bundled libraries.
NOT_A_RUN_FAILURE = re.compile(
    r"^(?:when|use|if|you|do not|don't|never|always|note|tip|e\.g\.|only|check|make sure|"
    r"ask|to|for|try|see|run|set|this tool|the user|important|input to command|expected a non-empty)\b|"
    r"^(?:- |\* |#|\(default\)|[a-z] |[a-z]+\b[^.]{0,40}$)|\byou (?:should|must|can|may|will)\b|\bI (?:can|can't|have|will|couldn't)\b|"
    r"exit code 0 -|[`,]$|\bspend limits? (?:unavailable|\(|the)|press enter|\(see |"
    r"^[(@\[]|^--?\w[\w-]*\[|\bignored\b|\bdropped:|\breloading\b|\bwhether or not\b|\bis not shown\b|"
    r"^(?:is|was|are|were|has|had|character|when|true if|default)\b|\bis back\b|"
    r"\b(?:tool_use_error|notebook|pdf|image|screenshot|jupyter|cell|file has (?:not )?been|old_string|new_string|"
    r"line \d|column|syntaxkind|scopeset|block scope|bundl|sourcemap|regexp?|webpack|esbuild|tsx?\b|jsx|"
    r"unicode|codepoint|utf-?8|base64|asn\.?1|der |pem|x509|certificaterequest|cipher|decrypt|encrypt|hmac|"
    r"sqlite|mysql|postgres|redis|graphql|yaml|xml|toml|html|css|dom\b|react|hook form|zod|schema|"
    r"teammate|swarm|inbox|artifact|design|chrome|slack|teams|cowork|skill|plugin|marketplace|worktree|"
    r"keychain|clipboard|vim|terminal|tmux|ide\b|vscode|jetbrains|statusline|theme|voice|feedback|telemetry|"
    r"datadog|sentry|grpc|subchannel|protobuf|lockfile|yarn|pnpm|git\b|github|gitlab|commit|branch|"
    r"sandbox|seccomp|bwrap|wfp|powershell|windows|macos|wsl)\b",
    IC,
)

# (family, pattern, type, retryable, reason) — first match wins; order encodes the taxonomy's
# "most specific evidence wins": money before limits before credentials before sizes before wires.
FAMILIES: list[tuple[str, str, str, bool, str]] = [
    ("billing", r"credit balance|\bcredits?\b.{0,40}(?:required|needed|low|exhausted|turned off|not available|run out|ran out)|"
     r"(?:requires?|needs?) (?:usage |extra |prepaid )?credits|paid plan|upgrade (?:your|to a) (?:plan|subscription)|"
     r"subscription (?:is )?required|spend(?:ing)? (?:limit|cap)|billing|payment|insufficient (?:funds|balance|credits)|"
     r"out of (?:extra usage|credits)|purchase (?:more )?credits",
     "resource", False, "money or plan: waiting does not change it; someone must pay or upgrade"),
    ("usage_limit", r"(?:usage|session|weekly|daily|5-hour|opus|sonnet) limit|hit your limit|limit (?:reached|exceeded)|"
     r"resets? (?:at )?\d|limits? will reset",
     "resource", True, "a subscription window is exhausted and resets at a known time"),
    ("throttled", r"rate.?limit|too many requests|temporarily limit|slow down|overloaded|over capacity|at capacity|"
     r"server is busy|try again (?:later|in a (?:few )?(?:moment|minute))",
     "resource", True, "throttling: the same request succeeds once the pressure is gone"),
    ("turn_budget", r"max(?:imum)?(?: number of)? turns|max.?budget|budget (?:reached|exceeded|exhausted)",
     "resource", False, "the run's own turn or cost budget: retrying hits the same budget"),
    ("org_disabled", r"organi[sz]ation (?:has been |is )?(?:disabled|suspended)|account (?:has been |is )?(?:disabled|suspended|banned)|"
     r"disabled by (?:your )?(?:organi[sz]ation|org admin|administrator)|(?:organi[sz]ation|org)(?:'s)? (?:policy|admin)",
     "auth", False, "the organisation or its policy forbids it: a human must change the policy or the account"),
    ("credentials", r"oauth|\btoken\b.{0,30}(?:expired|revoked|invalid|refresh|missing|scope)|(?:expired|revoked|invalid|missing) .{0,20}token|"
     r"refresh (?:failed|the|your|access)|re-?authenticat|not (?:logged|signed) in|log ?in (?:again|required|needed|expired)|"
     r"/login|sign in again|api ?key|apikeyhelper|credential|unauthori[sz]ed|\bforbidden\b|authenticat|"
     r"\bscopes?\b|claude\.ai (?:login|account|subscription|authentication)|permission_error|access denied",
     "auth", False, "credentials missing, invalid, expired or without permission: retrying with the same credential fails again"),
    ("too_large", r"too (?:large|long|big)|exceed(?:s|ed)? (?:the )?(?:maximum|max|limit|context|size|\d)|"
     r"context (?:window|limit|length)|prompt is too|maximum (?:size|length|context)|size limit|token maximum|"
     r"over (?:its|the) (?:size )?limit|compact(?:ion)? failed|autocompact",
     "validation", False, "the request or conversation does not fit: the same request is refused again"),
    ("policy_refusal", r"usage polic(?:y|ies)|acceptable use|content (?:filter|policy)|violat(?:e|es|ion) (?:our|the)",
     "validation", False, "refused under the usage policy: resending the same request is refused again"),
    ("binary_missing", r"(?:claude|cli|binary|executable|node|bun|ripgrep|command)\b.{0,30}(?:not found|not installed|no such file|enoent|not executable)|"
     r"not found.{0,30}(?:claude|binary|executable)|install (?:with|it)|exit(?:ed)? (?:with )?(?:code|status) 12[67]|command not found",
     "process", False, "the program is missing or not executable: restarting it fails the same way"),
    ("certificate", r"certificate|self.signed|tls pin|unable to verify",
     "validation", False, "a TLS trust problem is configuration, not a transient failure"),
    ("network", r"connect(?:ion|ed|ing)?\b.{0,40}(?:refused|reset|closed|lost|failed|error|dropped|aborted|terminated|timed out)|"
     r"(?:could ?n[o']t|unable to|failed to|cannot) (?:re)?connect|reconnect(?:ion)? failed|socket|econn\w+|enotfound|eai_again|"
     r"getaddrinfo|dns|network (?:error|issue|problem|unreachable)|fetch failed|disconnected|websocket.{0,30}closed|"
     r"stream closed|closed before|hang up|broken pipe|epipe|premature close|\bproxy\b.{0,30}(?:error|failed|refused)",
     "network", True, "the peer could not be reached or the connection broke: a new connection usually works"),
    ("timeout", r"timed? ?out|timeout|deadline exceeded|took too long|no response (?:from|within)",
     "timeout", True, "ran past a deadline: the next attempt usually finishes"),
    ("process_crash", r"(?:command|process|subprocess|cli|child) (?:failed|exited|crashed|died|terminated|was killed|killed)|"
     r"exit(?:ed)? (?:with )?(?:code|status)|fatal error in message reader|terminated (?:process|unexpectedly)|"
     r"crash|segmentation fault|panic|signal (?:sig)?\w+|not running|process .{0,20}not ready|cannot write to (?:terminated )?process",
     "process", True, "the process died after starting: restart it and resume the session"),
    ("remote_internal", r"internal server error|server error|unexpected error|something went wrong|api error: 5\d\d|"
     r"service (?:error|unavailable)|bad gateway",
     "internal", True, "the remote side failed on its own: retrying usually works"),
    ("not_found_or_unknown", r"(?:unknown|unsupported|invalid|unrecognized) (?:option|flag|argument|model|tool|command|value|"
     r"setting|settings|permission|mode|subtype|session|format|type)|(?:model|tool|session|server|conversation|agent)\b.{0,40}"
     r"(?:not found|does not exist|doesn't exist|not available|no access|not allowed)|no (?:such|conversation|mcp server|prompt|input)|"
     r"requires? (?:--|the --|a prompt|--verbose|--print|-p\b)|cannot be used (?:with|together)|must (?:be|have|not)|"
     r"is required|missing required|not supported|malformed|invalid",
     "validation", False, "the request or invocation is wrong: it fails again unchanged"),
]
_COMPILED = [(f, re.compile(p, IC), t, r, why) for f, p, t, r, why in FAMILIES]

#: Spot-check corrections (text -> (family, type, retryable, reason)), or None to drop a string.
OVERRIDES: dict[str, tuple[str, str, bool, str] | None] = {
    # from a random 40-string spot check (seed 13), not from classifier disagreements
    "Cannot change .mcp.json here: this folder is in a connector-downloads folder, where Claude Code saves files "
    "from claude.ai connectors, and Claude Code doesn't read .mcp.json there. Move or rename the folder named "
    "connector-downloads, or use --scope local or user.": None,
    "Fast mode disabled · usage credit limit reached": (
        "billing", "resource", False, "usage credits are exhausted: someone must add credits"),
}

_FILL = re.compile(r"<x>")


def fill(text: str) -> str:
    """Placeholders become plausible values, so the observation reads like the real message."""
    out: list[str] = []
    pos = 0
    for m in _FILL.finditer(text):
        before = text[max(0, m.start() - 24) : m.start()].lower()
        if re.search(r"(?:code|status|exit|after|of|than|in|limit|maximum|turns|size|attempts?)[:( ]*$", before):
            val = "1" if re.search(r"(?:code|status)[:( ]*$", before) else "30"
        elif re.search(r"(?:model)[:( ]*$", before):
            val = "claude-opus-9"
        elif re.search(r"(?:session|id)[:( ]*$", before):
            val = "7f1c2a4e-0b7d-4c55-9f3e-2d1a6b8c9e01"
        else:
            val = "example"
        out.append(text[pos : m.start()] + val)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def label(text: str) -> tuple[str, str, bool, str] | None:
    if text in OVERRIDES:
        return OVERRIDES[text]
    if NOT_A_RUN_FAILURE.search(text):
        return None
    for fam, rx, typ, retry, why in _COMPILED:
        if rx.search(text):
            return fam, typ, retry, why
    return None


def split_of(text: str) -> str:
    """Deterministic development/held-out split by a hash of the text (half each)."""
    return "dev" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "heldout"


def build() -> tuple[list[dict[str, object]], Counter[str]]:
    rows: dict[str, dict[str, object]] = {}
    dropped: Counter[str] = Counter()
    for path in sorted(MINED.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            text = item["text"]
            msg = fill(text)
            if msg in rows:
                continue
            lab = label(text)
            if lab is None:
                dropped[path.stem] += 1
                continue
            fam, typ, retry, why = lab
            rid = "cat-" + hashlib.sha256(msg.encode()).hexdigest()[:12]
            rows[msg] = {
                "id": rid,
                "source": item["source"],
                "family": fam,
                "reason": why,
                "observation": {"message": msg},
                "expect": {"error": True, "type": typ, "retryable": retry},
            }
    return sorted(rows.values(), key=lambda r: str(r["id"])), dropped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed catalogue is stale")
    ap.add_argument("--sample", metavar="FAMILY", help="print 30 random labelled strings of FAMILY and exit")
    args = ap.parse_args()
    rows, dropped = build()
    if args.sample:
        fam = [r for r in rows if r["family"] == args.sample]
        for r in random.Random(7).sample(fam, min(30, len(fam))):
            print(r["observation"]["message"][:160])  # type: ignore[index]
        return 0
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    by_fam = Counter(str(r["family"]) for r in rows)
    print(f"{len(rows)} labelled; left out (no family / not a run failure): {dict(dropped)}")
    print("by family: " + ", ".join(f"{k} {v}" for k, v in by_fam.most_common()))
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run scripts/label_catalogue.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
