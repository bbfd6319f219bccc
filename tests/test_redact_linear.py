"""Redaction on hostile text: the right output, in time linear in the text (issue 15, item 1).

Redaction runs on every line a CLI prints and again whenever the dashboard shows one, so one
adversarial tool result (a ``cat`` of a crafted file) must neither stall it nor slip a secret
through.  Each shape below is checked three ways: the exact output at a size that the old
``re`` rules took seconds or minutes on; the same output from the old rules at a small size
(so the new rules redact what the old ones did); and the scaling of the work from n to 8n.
The scaling check compares CPU time of the same function on two sizes in the same process (a
ratio with a wide margin: 8x input may take up to 24x the time; linear is ~8x, quadratic 64x);
no test asserts an absolute duration.  ``test_the_linearity_gate_fails_on_the_old_rules``
shows the same check failing on the old implementation.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resurgo._redact import redact_json_line, redact_obj, redact_text
from resurgo.supervise import _jobstore

ROOT = Path(__file__).resolve().parents[1]


def _before() -> ModuleType:
    """The pre-issue-15 rules, kept verbatim as the benchmark's anchor."""
    spec = importlib.util.spec_from_file_location("_redact_before", ROOT / "bench" / "_redact_before.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_redact_before", mod)
    spec.loader.exec_module(mod)
    return mod


OLD = _before()
B64 = base64.b64encode(random.Random(5).randbytes(96 << 10)).decode()  # 128 KiB of base64

#: name -> (text of size ~n, its redaction)
SHAPES: dict[str, tuple[Callable[[int], str], Callable[[int], str]]] = {
    # the reported one: a colon pair, then a long a-a-a (old rules: 16 KB 10 s, 32 KB 38 s)
    "token: x a-a-a": (lambda n: "token: x " + "a-" * n, lambda n: "token: <redacted> " + "a-" * n),
    "a-a-a then a secret": (lambda n: "a-" * n + "token: s3cr3t", lambda n: "a-" * n + "token: <redacted>"),
    "repeated KEY=": (lambda n: "X_TOKEN=" * n, lambda n: "X_TOKEN=<redacted>"),
    'repeated KEY="': (lambda n: 'X_TOKEN="' * (2 * n), lambda n: 'X_TOKEN="<redacted>"' * n),
    "repeated KEY=<redacted>": (lambda n: "X_TOKEN=<redacted>" * n, lambda n: "X_TOKEN=<redacted>" * n),
    "repeated token:<redacted>": (lambda n: "token:<redacted>" * n, lambda n: "token:<redacted>" * n),
    "repeated api_key=": (lambda n: "api_key=" * n + "v", lambda n: "api_key=<redacted>"),
    "nested escaped quotes": (
        lambda n: '"token": "' + '\\"' * n + '"',
        lambda n: '"token": "<redacted>"' + '\\"' * (n - 1) + '"',
    ),
    'repeated "token": "': (lambda n: '"token": "' * n, lambda n: '"token": "' * n),
    "repeated token:1-": (lambda n: "token:1-" * n, lambda n: "token:1-" * n),
    "repeated Bearer": (lambda n: "Bearer " * n, lambda n: "Bearer " * n),
    "repeated scheme then a password": (
        lambda n: "https://" * n + "u:pw@host",
        lambda n: "https://" * n + "u:<redacted>@host",
    ),
    "repeated sk-ant-": (lambda n: "sk-ant-" * n, lambda n: "sk-ant-<redacted>"),
    "repeated tokentoken": (lambda n: "token" * n + ": v", lambda n: "token" * n + ": <redacted>"),
    "huge base64 bearer": (
        lambda n: "Authorization: Bearer " + (B64 * (n // len(B64) + 1))[:n],
        lambda n: "Authorization: Bearer <redacted>",
    ),
    "no marker at all": (lambda n: "a" * n, lambda n: "a" * n),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_old_rules_gave_the_same_output_on_small_text(shape: str) -> None:
    """The expected outputs below are the old behaviour, not a new policy."""
    make, want = SHAPES[shape]
    for n in (3, 8, 40):
        assert OLD.redact_text(make(n)) == want(n), shape


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_pathological_text_is_redacted_right_at_size(shape: str) -> None:
    make, want = SHAPES[shape]
    n = 1 << 15  # 32-300 KB: minutes to hours for the old rules on several of these shapes
    out = redact_text(make(n))
    assert out == want(n)
    assert redact_text(out) == out  # idempotent


def _cpu(fn: Callable[[str], object], text: str) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        fn(text)
        best = min(best, time.process_time() - t0)
    return max(best, 1e-3)  # below the clock's useful resolution, both count as 1 ms


def scales_linearly(fn: Callable[[str], object], make: Callable[[int], str], n: int) -> tuple[bool, float]:
    """Does ``fn`` take less than 24x the CPU time on 8x the input?  (linear: ~8x, quadratic: ~64x)"""
    small, big = make(n), make(8 * n)
    _cpu(fn, small)  # warm up
    ratio = _cpu(fn, big) / _cpu(fn, small)
    return ratio < 24, ratio


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_redaction_scales_linearly(shape: str) -> None:
    make, _ = SHAPES[shape]
    ok, ratio = scales_linearly(redact_text, make, 1 << 12)
    assert ok, f"{shape}: 8x the text took {ratio:.1f}x the time"


def test_the_linearity_gate_fails_on_the_old_rules() -> None:
    """The check above catches the quadratic rules it was written against."""
    make, _ = SHAPES["token: x a-a-a"]
    ok, ratio = scales_linearly(OLD.redact_text, make, 1 << 8)  # 0.5 KB vs 4 KB
    assert not ok, f"the old rules scaled by only {ratio:.1f}x"


def test_a_one_megabyte_tool_result_keeps_everything_but_its_secrets() -> None:
    rng = random.Random(3)
    words = ["GET", "POST", "/api/v1/items", "status=200", "took", "ms", "user", "auth", "ok", "token_count=5"]
    log = "\n".join(" ".join(rng.choice(words) for _ in range(14)) for _ in range(12_000))
    secret_lines = (
        "\nexport GH_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz012345\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y\n"
    )
    ev = {
        "type": "user",
        "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": log + secret_lines}]},
    }
    line = json.dumps(ev)
    assert len(line) > 1 << 20
    out = redact_json_line(line)
    back = json.loads(out)
    content = back["message"]["content"][0]["content"]
    assert content.startswith(log)  # the log itself is untouched (token_count=5 is not a secret)
    assert "ghp_abc" not in out and "eyJhbGci" not in out
    assert "GH_TOKEN=<redacted>" in content and "Authorization: Bearer <redacted>" in content


def test_a_long_flag_in_an_argument_list_is_not_backtracked_over() -> None:
    """``--keykeykey…``: the old flag pattern backtracked quadratically; a flag is short anyway."""
    make = lambda n: ["--" + "key" * n, "value"]  # noqa: E731
    assert redact_obj(make(1000)) == make(1000)  # too long to be a flag: the value is kept
    assert redact_obj(["--api-key", "v"]) == ["--api-key", "<redacted>"]
    ok, ratio = scales_linearly(lambda s: redact_obj(["--" + s, "v"]), lambda n: "key" * n, 1 << 14)
    assert ok, ratio


# -- the new rules against the old ones on random text ---------------------------------------
_PIECES = [
    "token", "TOKEN", "X_TOKEN", "API_KEY", "api_key", "apikey", "secret", "password", "passwd", ":", "=", " ",
    "  ", '"', "'", '\\"', "\\\\", "5", "12", "3.4", "ab", "xyz", "-", "_", ",", ";", "&", "}", "{", "sk-ant-",
    "sk-", "sk_live_", "abcdefghijklmnopqrstuvwxyz", "Bearer ", "bearer", "Authorization", "authorization: ",
    "x-api-key", "cookie", "https://", "redis://", "user", "@", "host", "/", "ghp_", "xoxb-", "AKIA",
    "ABCDEFGHIJKLMNOP", "\n", "<redacted>", 'tokens"', "input_tokens", "1a",
]  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=14))
def test_the_new_rules_redact_what_the_old_ones_did(parts: list[str]) -> None:
    """ASCII text built from rule fragments: the same output as the old rules, and idempotent.

    (A lone backslash the old rules took for a ``NAME=`` value is not sampled: the new rules
    leave ``X_TOKEN=\\`` as it is.  Outside ASCII, RE2's word boundary is ASCII-only, so the
    new rules redact *more* after a non-ASCII letter: ``éBearer abcdefghi``.)
    """
    text = "".join(parts)
    new = redact_text(text)
    assert new == OLD.redact_text(text)
    assert redact_text(new) == new


def test_redaction_in_json_keeps_the_json_valid_for_hostile_strings() -> None:
    rng = random.Random(11)
    for _ in range(300):
        s = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 30)))
        line = json.dumps({"type": "assistant", "text": s, "list": ["--token", s]})
        out = redact_json_line(line)
        assert json.loads(out)["type"] == "assistant"


# -- the event writer redacts off the event loop ---------------------------------------------
def test_the_event_writer_redacts_in_its_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resurgo.store import Store
    from resurgo.supervise._jobstore import JobStore
    from resurgo.supervise._process import parse_line

    threads: list[int] = []
    real = _jobstore.redact_json_line

    def spy(line: str, **kw: object) -> str:
        threads.append(threading.get_ident())
        return real(line, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_jobstore, "redact_json_line", spy)
    jobs = JobStore(Store(tmp_path / "s.db"))
    job = jobs.create_job("p", cwd=tmp_path)
    secret = json.dumps({"type": "user", "text": "X_TOKEN=abc " + "a-" * 200_000})

    async def main() -> int:
        w = jobs.event_writer(job.id, None, background=True, max_rows=2)
        for i in range(5):
            w.add(parse_line(secret.encode(), seq=i, ts=0.0, mono=0.0))
        assert threads == []  # add() never redacts: nothing ran on the loop
        await w.drain()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(threads) == 5 and loop_thread not in threads
    stored = jobs.events(job.id)
    assert len(stored) == 5 and all("X_TOKEN=<redacted>" in e.data_json and "abc" not in e.data_json for e in stored)


def test_the_public_re2_api_gives_the_same_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path uses google-re2's internals; the fallback (public API) must agree with it."""
    from resurgo import _redact

    rng = random.Random(17)
    samples = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 20))) for _ in range(400)]
    fast = [redact_text(s) for s in samples]
    monkeypatch.setattr(_redact, "_search", _redact._search_public)
    assert [redact_text(s) for s in samples] == fast
