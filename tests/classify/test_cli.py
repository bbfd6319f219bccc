"""``resurgo classify`` as other tools use it: a subprocess in a pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIELDS = {
    "error",
    "type",
    "severity",
    "category",
    "description",
    "retryable",
    "retry_after",
    "strategy",
    "priority",
    "rule",
    "confidence",
}


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from resurgo.cli import main; main()", "classify", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lines_in_order_with_bad_lines_and_blank_lines() -> None:
    stdin = (
        "\n".join(
            [
                json.dumps({"message": "API Error: Request timed out."}),
                "not json",
                "",
                "[1, 2]",
                json.dumps({"exit_code": "1"}),
                json.dumps({"events": [{"type": "result", "is_error": False, "subtype": "success"}], "exit_code": 0}),
                json.dumps({"http_status": 401}),
            ]
        )
        + "\n"
    )
    p = run(stdin=stdin)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == 6  # the blank line yields nothing
    assert out[0]["type"] == "timeout" and set(out[0]) == FIELDS
    assert out[1] == {"error": None, "invalid": out[1]["invalid"]} and "not JSON" in out[1]["invalid"]
    assert "not a JSON object" in out[2]["invalid"]
    assert "exit_code" in out[3]["invalid"]
    assert out[4]["error"] is False and out[4]["type"] is None and out[4]["severity"] is None
    assert out[5]["type"] == "auth" and out[5]["retryable"] is False


def test_files_in_order_and_explain(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"signal": 9}) + "\n")
    b.write_text(json.dumps({"message": "Credit balance is too low"}) + "\n")
    p = run("--explain", str(a), str(b))
    assert p.returncode == 0, p.stderr
    first, second = (json.loads(x) for x in p.stdout.splitlines())
    assert first["type"] == "process" and second["category"] == "billing"
    assert any("rule cli.billing" in e for e in second["evidence"])


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    p = run(str(tmp_path / "nope.jsonl"))
    assert p.returncode != 0
    assert "cannot read" in p.stderr and "nope.jsonl" in p.stderr
    assert p.stdout == ""


def test_user_rules_and_bad_rules(tmp_path: Path) -> None:
    good = tmp_path / "r.toml"
    good.write_text('[[rule]]\nid = "acme.blip"\nmessage = "blip"\ntype = "network"\n')
    p = run("--rules", str(good), stdin=json.dumps({"message": "a blip"}) + "\n")
    assert json.loads(p.stdout)["rule"] == "acme.blip"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nid = "acme.bad"\nmessage = "(x"\ntype = "network"\n')
    p = run("--rules", str(bad), stdin="{}\n")
    assert p.returncode != 0 and "acme.bad" in p.stderr


def test_streams_line_by_line_in_a_pipe() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from resurgo.cli import main; main()", "classify"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin and proc.stdout
        for obs, want in (({"signal": 11}, "process"), ({"http_status": 429}, "resource")):
            proc.stdin.write(json.dumps(obs) + "\n")
            proc.stdin.flush()
            assert json.loads(proc.stdout.readline())["type"] == want  # answered before EOF
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
