#!/usr/bin/env python3
"""Regenerate tests/corpus/cli_runs.jsonl from real Claude Code CLI runs.

Every line is an observation of a real ``claude -p`` process (or of starting
one) against resurgo's Messages API stand-in with a fault, plus the label the
error taxonomy (shared/spec/error-taxonomy.md) assigns to that situation.
The labels are written here by hand from the spec's table, per scenario, and
never computed by the classifier: the corpus exists to test the classifier.

    python scripts/gen_cli_corpus.py [--out tests/corpus/cli_runs.jsonl] [--only REGEX] [--jobs 4]

Needs the real CLI ($RESURGO_CLAUDE, or the repo's .tools/npm install, or PATH).
Runs take ~1-3 s each (CLAUDE_CODE_MAX_RETRIES=0 except where retries are the point).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resurgo._procs import session as spawn
from resurgo.mockapi import Faults, MockServer

REPO = Path(__file__).resolve().parents[1]
STDERR_TAIL = 2000

# --------------------------------------------------------------------------- labels (from the spec)

NOT_ERROR = {"error": False, "type": None, "retryable": None}


def err(kind: str, retryable: bool) -> dict[str, Any]:
    return {"error": True, "type": kind, "retryable": retryable}


# status -> label, straight from the taxonomy's "API status" rule (step 3) and its table
STATUS_LABEL: dict[int, dict[str, Any]] = {
    400: err("validation", False),
    401: err("auth", False),
    402: err("resource", False),  # billing: credits exhausted, not retryable
    403: err("auth", False),
    404: err("validation", False),
    413: err("validation", False),
    429: err("resource", True),
    500: err("internal", True),
    502: err("network", True),
    503: err("resource", True),
    504: err("timeout", True),
    529: err("resource", True),
}

# A realistic alternative message per status (what users report), for variety.
STATUS_MESSAGE: dict[int, str] = {
    400: "prompt is too long: 215312 tokens > 200000 maximum",
    401: "OAuth token has expired. Please obtain a new token or refresh your existing token.",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "This organization has been disabled.",
    404: "model: claude-nonexistent-1",
    413: "Request exceeds the maximum allowed number of bytes. The maximum request size is 32 MB.",
    429: "Claude AI usage limit reached|{reset}",
    500: "An unexpected error occurred",
    502: "upstream connect error or disconnect/reset before headers",
    503: "The service is temporarily unavailable",
    504: "Request timed out waiting for the model",
    529: "Overloaded",
}


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """One way of running the CLI; ``how`` picks the runner."""

    slug: str
    desc: str
    expect: dict[str, Any]
    prompt: str = "hi"
    args: list[str] = field(default_factory=list)
    faults: Faults | None = None
    env: dict[str, str] = field(default_factory=dict)
    how: str = "run"  # run | signal | watchdog | cancel | refused | missing | env127 | env126 | in_use
    sig: int | None = None
    base_url: str | None = None


def scenarios() -> list[Scenario]:
    out: list[Scenario] = []
    tool_then = "[[bash: echo step one]] [[text: finished]]"
    for status, label in STATUS_LABEL.items():
        out.append(
            Scenario(f"status-{status}", f"HTTP {status} on the first request", label, faults=Faults(status=status))
        )
        out.append(
            Scenario(
                f"status-{status}-after-tool",
                f"HTTP {status} after a successful Bash turn",
                label,
                prompt=tool_then,
                faults=Faults(status=status, skip=1),
            )
        )
        msg = STATUS_MESSAGE[status].format(reset=int(time.time()) + 3600)
        if label["retryable"]:
            out.append(
                Scenario(
                    f"status-{status}-retried",
                    f"HTTP {status} on every request, CLI retries once",
                    label,
                    faults=Faults(status=status, retry_after=1 if status == 429 else None, message=msg),
                    env={"CLAUDE_CODE_MAX_RETRIES": "1"},
                )
            )
        else:
            out.append(
                Scenario(
                    f"status-{status}-message",
                    f"HTTP {status}: {msg[:50]}",
                    label,
                    faults=Faults(status=status, message=msg),
                )
            )
    out.append(
        Scenario(
            "status-429-reset-header",
            "HTTP 429 with retry-after 120 and reset headers",
            STATUS_LABEL[429],
            faults=Faults(status=429, retry_after=120),
        )
    )
    # the CLI retries itself and then succeeds: not an error
    for status in (529, 500, 429):
        out.append(
            Scenario(
                f"recovered-{status}",
                f"one HTTP {status}, CLI retry succeeds",
                NOT_ERROR,
                faults=Faults(status=status, count=1, retry_after=1 if status == 429 else None),
                env={"CLAUDE_CODE_MAX_RETRIES": "2"},
            )
        )
    # transport faults
    net, tmo = err("network", True), err("timeout", True)
    out += [
        Scenario("reset", "connection reset (RST) instead of an answer", net, faults=Faults(reset=True)),
        Scenario(
            "reset-after-tool",
            "connection reset after a Bash turn",
            net,
            prompt=tool_then,
            faults=Faults(reset=True, skip=1),
        ),
        Scenario(
            "reset-retried",
            "connection reset on every request, CLI retries once",
            net,
            faults=Faults(reset=True),
            env={"CLAUDE_CODE_MAX_RETRIES": "1"},
        ),
        Scenario("cut-0", "stream cut after the headers", net, faults=Faults(cut_after=0)),
        Scenario("cut-2", "stream cut after 2 SSE events", net, faults=Faults(cut_after=2)),
        Scenario("cut-5", "stream cut inside the content block", net, faults=Faults(cut_after=5)),
        Scenario(
            "cut-after-tool",
            "stream cut on the turn after a Bash turn",
            net,
            prompt=tool_then,
            faults=Faults(cut_after=3, skip=1),
        ),
        Scenario(
            "hang-timeout",
            "server accepts and never answers, API_TIMEOUT_MS=1000",
            tmo,
            faults=Faults(hang=True),
            env={"API_TIMEOUT_MS": "1000"},
        ),
        Scenario(
            "hang-timeout-after-tool",
            "hang after a Bash turn, API_TIMEOUT_MS=1500",
            tmo,
            prompt=tool_then,
            faults=Faults(hang=True, skip=1),
            env={"API_TIMEOUT_MS": "1500"},
        ),
        Scenario(
            "hang-watchdog",
            "hang with the default timeout; the stall watchdog ends the group",
            tmo,
            faults=Faults(hang=True),
            how="watchdog",
        ),
        Scenario(
            "hang-watchdog-after-tool",
            "hang after a Bash turn; the stall watchdog ends it",
            tmo,
            prompt=tool_then,
            faults=Faults(hang=True, skip=1),
            how="watchdog",
        ),
        Scenario("refused", "connection refused (closed port)", net, how="refused"),
        Scenario("refused-after-prompt", "connection refused, Bash prompt", net, prompt=tool_then, how="refused"),
        Scenario("unknown-host", "unresolvable API host", net, base_url="http://api.resurgo-test.invalid"),
    ]
    # successes, some noisy
    out += [
        Scenario("ok-plain", "plain successful run", NOT_ERROR, prompt="hello [[text: hello there]]"),
        Scenario("ok-plain-2", "plain successful run, default text", NOT_ERROR, prompt="what is 2+2?"),
        Scenario("ok-bash", "successful run with a Bash tool turn", NOT_ERROR, prompt=tool_then),
        Scenario(
            "ok-bash-3",
            "successful run with three Bash turns",
            NOT_ERROR,
            prompt="[[bash: echo a]] [[bash: ls -la]] [[bash: sleep 0.2; echo c]] [[text: all three]]",
        ),
        Scenario(
            "ok-bash-failing-command",
            "run succeeds although its Bash command exits 3",
            NOT_ERROR,
            prompt="[[bash: echo 'Error: connection refused' >&2; exit 3]] [[text: handled it]]",
        ),
        Scenario(
            "ok-error-words-in-text",
            "successful run whose answer mentions errors",
            NOT_ERROR,
            prompt="[[text: The API Error: 529 Overloaded was handled; Request timed out earlier.]]",
        ),
        Scenario(
            "ok-stderr-debug",
            "successful run with debug noise and an rg error on stderr",
            NOT_ERROR,
            args=["--debug-to-stderr"],
        ),
        Scenario(
            "ok-stderr-debug-bash",
            "successful Bash run with debug noise on stderr",
            NOT_ERROR,
            prompt=tool_then,
            args=["--debug-to-stderr"],
        ),
        Scenario(
            "ok-slow", "slow stream (30 ms per event)", NOT_ERROR, prompt=tool_then, faults=Faults(event_delay=0.03)
        ),
        Scenario(
            "ok-count-tokens-fault",
            "faults only on count_tokens, run succeeds",
            NOT_ERROR,
            faults=Faults(status=500, paths=("/v1/messages/count_tokens",)),
        ),
        Scenario(
            "cancel-user",
            "the user cancels mid-tool (resurgo sends SIGTERM)",
            NOT_ERROR,
            prompt="[[bash: sleep 20]]",
            how="cancel",
        ),
    ]
    proc = err("process", True)
    sleepy = "[[bash: touch started; sleep 20]]"
    out += [
        Scenario(
            "sigkill-mid-tool",
            "CLI SIGKILLed while a Bash tool runs",
            proc,
            prompt=sleepy,
            how="signal",
            sig=signal.SIGKILL,
        ),
        Scenario(
            "sigkill-mid-request",
            "CLI SIGKILLed while waiting for the API",
            proc,
            faults=Faults(hang=True),
            how="signal",
            sig=signal.SIGKILL,
        ),
        Scenario(
            "sigsegv-mid-tool",
            "CLI gets SIGSEGV while a Bash tool runs",
            proc,
            prompt=sleepy,
            how="signal",
            sig=signal.SIGSEGV,
        ),
        Scenario(
            "sigsegv-mid-request",
            "CLI gets SIGSEGV while waiting for the API",
            proc,
            faults=Faults(hang=True),
            how="signal",
            sig=signal.SIGSEGV,
        ),
        Scenario(
            "sigterm-mid-tool",
            "CLI gets SIGTERM from elsewhere while a Bash tool runs",
            proc,
            prompt=sleepy,
            how="signal",
            sig=signal.SIGTERM,
        ),
        Scenario(
            "sigterm-mid-request",
            "CLI gets SIGTERM from elsewhere while waiting for the API",
            proc,
            faults=Faults(hang=True),
            how="signal",
            sig=signal.SIGTERM,
        ),
        Scenario(
            "sigabrt-mid-tool",
            "CLI gets SIGABRT while a Bash tool runs",
            proc,
            prompt=sleepy,
            how="signal",
            sig=signal.SIGABRT,
        ),
        Scenario(
            "sigbus-mid-tool",
            "CLI gets SIGBUS while a Bash tool runs",
            proc,
            prompt=sleepy,
            how="signal",
            sig=signal.SIGBUS,
        ),
    ]
    val = err("validation", False)
    res_no = err("resource", False)
    missing = err("process", False)
    out += [
        Scenario("unknown-option", "unknown option --frobnicate", val, args=["--frobnicate"]),
        Scenario("unknown-option-2", "unknown option -Z", val, args=["-Z"]),
        Scenario("bad-session-id", "--session-id not-a-uuid", val, args=["--session-id", "not-a-uuid"]),
        Scenario("bad-session-id-2", "--session-id 12345", val, args=["--session-id", "12345"]),
        Scenario("resume-missing", "--resume of a session that does not exist", val, args=["--resume", "{uuid}"]),
        Scenario(
            "resume-missing-2",
            "--resume= of a session that does not exist, Bash prompt",
            val,
            prompt=tool_then,
            args=["--resume={uuid}"],
        ),
        Scenario("session-in-use", "--session-id of a transcript that already exists", val, how="in_use"),
        Scenario("missing-binary", "spawning a binary that does not exist (FileNotFoundError)", missing, how="missing"),
        Scenario("missing-binary-env", "binary missing behind env(1): exit 127", missing, how="env127"),
        Scenario("not-executable", "binary not executable behind env(1): exit 126", missing, how="env126"),
        Scenario(
            "max-turns-1",
            "--max-turns 1 with two Bash steps",
            res_no,
            prompt="[[bash: echo a]] [[bash: echo b]]",
            args=["--max-turns", "1"],
        ),
        Scenario(
            "max-turns-2",
            "--max-turns 2 with three Bash steps",
            res_no,
            prompt="[[bash: echo a]] [[bash: echo b]] [[bash: echo c]]",
            args=["--max-turns", "2"],
        ),
        Scenario(
            "max-budget",
            "--max-budget-usd 0.0001 exceeded",
            res_no,
            prompt="[[bash: echo a]] [[bash: echo b]]",
            args=["--max-budget-usd", "0.0001"],
        ),
    ]
    return out


# --------------------------------------------------------------------------- running


def find_claude() -> str:
    env = os.environ.get("RESURGO_CLAUDE")
    local = REPO / ".tools/npm/node_modules/.bin/claude"
    path = env or (str(local) if local.exists() else shutil.which("claude"))
    if not path:
        sys.exit("real Claude Code CLI not found: set RESURGO_CLAUDE")
    return path


def base_env(home: Path, url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "test",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError("scenario precondition not reached")


def observation(rc: int | None, stdout: str, stderr: str) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        with contextlib.suppress(ValueError):
            ev = json.loads(line)
            if isinstance(ev, dict) and not (ev.get("type") == "system" and ev.get("subtype") == "init"):
                events.append(ev)
    obs: dict[str, Any] = {
        "exit_code": rc if rc is not None and rc >= 0 else None,
        "signal": -rc if rc is not None and rc < 0 else None,
        "stderr": stderr[-STDERR_TAIL:],
        "events": events,
    }
    return obs


def run_scenario(sc: Scenario, claude: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="resurgo-corpus-") as tmp, MockServer(faults=sc.faults) as srv:
        home, cwd = Path(tmp) / "home", Path(tmp) / "work"
        home.mkdir()
        cwd.mkdir()
        url = sc.base_url or srv.url
        if sc.how == "refused":
            url = f"http://127.0.0.1:{closed_port()}"
        env = {**base_env(home, url), **sc.env}
        args = [a.replace("{uuid}", str(uuid.uuid4())) for a in sc.args]
        cmd = [claude, "-p", sc.prompt, "--output-format", "stream-json", "--verbose", "--allowedTools", "Bash", *args]
        obs: dict[str, Any]
        if sc.how == "missing":
            bogus = str(Path(tmp) / "no-such-dir" / "claude")
            try:
                subprocess.Popen([bogus, *cmd[1:]], env=env, cwd=cwd)  # noqa: S603 - must fail
            except FileNotFoundError as e:
                return {"exception_type": "FileNotFoundError", "message": str(e)}
            raise RuntimeError("a nonexistent binary started")
        if sc.how in ("env127", "env126"):
            target = Path(tmp) / "claude"
            if sc.how == "env126":
                target.write_text("#!/bin/sh\necho never\n")
                target.chmod(0o644)
            cmd = ["/usr/bin/env", str(target), *cmd[1:]]
        if sc.how == "in_use":
            sid = str(uuid.uuid4())
            with spawn([*cmd, "--session-id", sid], env, cwd) as first:
                first.communicate(timeout=60)
            cmd = [*cmd, "--session-id", sid]
        with spawn(cmd, env, cwd) as proc:
            if sc.how == "signal":
                assert sc.sig is not None
                if sc.faults and sc.faults.hang:
                    wait_for(lambda: any(r.fault == "hang" for r in srv.requests))
                    time.sleep(0.3)
                else:
                    wait_for(lambda: (cwd / "started").exists())
                os.kill(proc.pid, sc.sig)  # only the CLI, as an outside killer would
            elif sc.how in ("watchdog", "cancel"):
                if sc.how == "watchdog":
                    wait_for(lambda: any(r.fault == "hang" for r in srv.requests))
                    time.sleep(1.5)  # the "stall" the watchdog measured
                else:
                    wait_for(lambda: any(r.status == 200 for r in srv.requests if r.path == "/v1/messages"))
                    time.sleep(0.5)
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            out, errtext = proc.communicate(timeout=90)
            obs = observation(proc.returncode, out, errtext)
            if sc.how == "watchdog":
                obs["killed_by"] = "stall_watchdog"
            elif sc.how == "cancel":
                obs["killed_by"] = "user"
        return obs


def sanity(sc: Scenario, obs: dict[str, Any]) -> str | None:
    """Guard the hand-written label: the run must have gone the way the scenario intends.

    This checks the scenario, not the classifier: a label saying "error" on a
    run that in fact succeeded (or the reverse) would poison the corpus, e.g.
    when a new CLI version starts retrying a fault by itself.
    """
    results = [e for e in obs.get("events", []) if e.get("type") == "result"]
    ok_result = bool(results) and results[-1].get("is_error") is False
    clean_exit = obs.get("exit_code") == 0
    if sc.expect["error"]:
        if ok_result or clean_exit:
            return "expected a failure but the run succeeded"
    elif "killed_by" not in obs and not (ok_result and clean_exit):
        return "expected a success but the run failed"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests/corpus/cli_runs.jsonl")
    ap.add_argument("--only", default=None, help="regex on scenario slugs")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="runs per scenario (ids get -rN)")
    ns = ap.parse_args()

    claude = find_claude()
    version = subprocess.run(  # noqa: S603 - argv list, no shell
        [claude, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()[0]
    todo = [s for s in scenarios() if ns.only is None or re.search(ns.only, s.slug)]
    jobs = [(s, r) for s in todo for r in range(ns.repeat)]

    def one(job: tuple[Scenario, int]) -> dict[str, Any] | None:
        sc, rep = job
        t = time.monotonic()
        obs = run_scenario(sc, claude)
        problem = sanity(sc, obs)
        print(f"{sc.slug:32} {time.monotonic() - t:5.1f}s {problem or ''}", file=sys.stderr)
        if problem:
            bad.append(f"{sc.slug}: {problem}")
            return None
        return {
            "id": f"cli-{sc.slug}" + (f"-r{rep + 1}" if ns.repeat > 1 else ""),
            "source": f"real-cli {version}: {sc.desc}",
            "observation": obs,
            "expect": sc.expect,
        }

    bad: list[str] = []
    with ThreadPoolExecutor(max_workers=ns.jobs) as pool:
        lines = [line for line in pool.map(one, jobs) if line is not None]
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = ns.out.with_suffix(".tmp")
    with tmp.open("w") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    tmp.replace(ns.out)
    print(f"wrote {len(lines)} lines to {ns.out}", file=sys.stderr)
    if bad:
        print(
            "scenarios left out because the run did not do what the label assumes "
            "(the CLI changed?):\n  " + "\n  ".join(bad),
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
