"""status / jobs / show / cleanup / cancel / rules over a store, and bad input, driven as a user would."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.cli._helpers import SECRET, cli_env, resurgo, seed_store

from resurgo.classifier import Classifier
from resurgo.store import Store


def _seeded(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    db = tmp_path / "runs.db"
    ids = seed_store(db)
    return db, ids, cli_env(tmp_path)


def test_status_counts_active_jobs_and_breakers(tmp_path: Path) -> None:
    db, ids, env = _seeded(tmp_path)
    p = resurgo(["--store", str(db), "status", "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["counts"]["succeeded"] == 1 and d["counts"]["failed"] == 1
    assert d["counts"]["running"] == 1 and d["counts"]["pending"] == 1
    assert [a["id"] for a in d["active"]] == [ids["running"]]
    assert d["breakers"][0]["state"] == "open"
    p = resurgo(["status", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 0
    assert "succeeded 1" in p.stdout and "open" in p.stdout and ids["running"][:12] in p.stdout


def test_status_shows_the_health_of_live_supervisors_only(tmp_path: Path) -> None:
    import socket
    import time

    from resurgo.supervise._jobstore import owner_id

    db, _, env = _seeded(tmp_path)
    live, dead = owner_id(), f"{socket.gethostname()}:999999:1"  # this test process; a pid that does not exist
    now = time.time()
    with Store(db) as s:
        for owner, comp, state, detail in (
            (live, "api:http://127.0.0.1:9", "unhealthy", f"cannot connect (key {SECRET})"),
            (live, "disk:/tmp", "healthy", "900 MB free"),
            (dead, "process:4242", "degraded", "no event for 60 s"),
        ):
            s.execute("INSERT INTO health VALUES(?,?,?,?,?)", (owner, comp, state, detail, now - 3))
    p = resurgo(["--store", str(db), "status", "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    health = json.loads(p.stdout)["health"]
    assert [(h["owner"], h["component"], h["state"]) for h in health] == [
        (live, "api:http://127.0.0.1:9", "unhealthy"), (live, "disk:/tmp", "healthy")]
    assert all(3 <= h["age_s"] < 60 and h["ts"] == now - 3 for h in health)
    assert SECRET not in p.stdout and "cannot connect" in health[0]["detail"]
    p = resurgo(["status", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    text = p.stdout[p.stdout.index("health"):]
    assert "api:http://127.0.0.1:9" in text and "unhealthy" in text and "disk:/tmp" in text
    assert "process:4242" not in p.stdout and SECRET not in p.stdout
    # the dead supervisor's rows go with `resurgo cleanup`
    p = resurgo(["cleanup", "--store", str(db), "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["stale_health_rows"] == 1
    with Store(db) as s:
        assert {r[0] for r in s.query("SELECT owner FROM health")} == {live}
    # no store yet: an empty health list, not an error
    p = resurgo(["--store", str(tmp_path / "none.db"), "status", "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["health"] == []


def test_jobs_filter_limit_and_json(tmp_path: Path) -> None:
    db, ids, env = _seeded(tmp_path)
    p = resurgo(["jobs", "--store", str(db), "--state", "failed", "--json"], cwd=tmp_path, env=env)
    assert p.returncode == 0
    rows = json.loads(p.stdout)
    assert [r["id"] for r in rows] == [ids["failed"]]
    assert rows[0]["reason"] == "gave up after 5 recoveries"
    p = resurgo(["jobs", "--store", str(db), "--limit", "2", "--json"], cwd=tmp_path, env=env)
    assert len(json.loads(p.stdout)) == 2
    p = resurgo(["jobs", "--store", str(db), "--state", "bogus"], cwd=tmp_path, env=env)
    assert p.returncode == 2 and "bogus" in p.stderr


def test_show_timeline_is_redacted(tmp_path: Path) -> None:
    db, ids, env = _seeded(tmp_path)
    p = resurgo(["show", "hello", "--store", str(db)], cwd=tmp_path, env=env)  # by name
    assert p.returncode == 0, p.stderr
    assert ids["ok"] in p.stdout
    assert "tool Bash: sleep 1; echo step" in p.stdout
    assert "recoveries" in p.stdout and "overloaded" in p.stdout
    assert SECRET not in p.stdout and "SECRETSECRET" not in p.stdout
    p = resurgo(["show", ids["ok"][:6], "--store", str(db), "--json"], cwd=tmp_path, env=env)  # by prefix
    assert p.returncode == 0
    d = json.loads(p.stdout)
    assert d["job"]["id"] == ids["ok"] and len(d["recoveries"]) == 1 and d["attempts"][0]["n"] == 1
    assert "SECRETSECRET" not in p.stdout
    assert d["job"]["env"]["FOO"] == "bar"


def test_show_unknown_job_and_missing_store(tmp_path: Path) -> None:
    db, _, env = _seeded(tmp_path)
    p = resurgo(["show", "nope", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 2 and "no job 'nope'" in p.stderr
    p = resurgo(["show", "x", "--store", str(tmp_path / "absent.db")], cwd=tmp_path, env=env)
    assert p.returncode == 2 and "no run store" in p.stderr
    assert not (tmp_path / "absent.db").exists()
    p = resurgo(["jobs", "--store", str(tmp_path / "absent.db")], cwd=tmp_path, env=env)
    assert p.returncode == 0 and "no runs yet" in p.stdout


def test_store_that_is_not_a_database_is_refused_and_left_intact(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"my precious notes, not a database\n" * 100)
    before = hashlib.sha256(bad.read_bytes()).hexdigest()
    for args in (["status"], ["jobs"], ["show", "x"], ["cleanup"], ["rules", "list"],
                 ["run", "hello", "--claude", "/bin/true"]):
        p = resurgo([*args, "--store", str(bad)], cwd=tmp_path, env=env)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "not a usable resurgo store" in p.stderr and "Traceback" not in p.stderr
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == before
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith("notes")) == ["notes.db"]


def test_unwritable_store_location(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    p = resurgo(["run", "hello", "--store", str(blocker / "runs.db")], cwd=tmp_path, env=env)
    assert p.returncode == 2, p.stderr
    assert "cannot" in p.stderr and "Traceback" not in p.stderr
    p = resurgo(["cleanup", "--store", str(tmp_path)], cwd=tmp_path, env=env)  # a folder
    assert p.returncode == 2 and "is a folder" in p.stderr


def test_cancel_pending_and_finished(tmp_path: Path) -> None:
    db, ids, env = _seeded(tmp_path)
    p = resurgo(["cancel", "later", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 0 and "cancelled job" in p.stdout
    p = resurgo(["cancel", "hello", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 0 and "already succeeded" in p.stdout
    with Store(db) as s:
        assert s.query("SELECT state FROM jobs WHERE id=?", (ids["pending"],))[0][0] == "cancelled"


def test_cleanup_interrupts_jobs_of_a_dead_supervisor(tmp_path: Path) -> None:
    db, ids, env = _seeded(tmp_path)
    with Store(db) as s:  # the running job's owner: this host, a pid that does not exist
        import socket

        s.execute("UPDATE jobs SET owner=? WHERE id=?", (f"{socket.gethostname()}:999999:1", ids["running"]))
    p = resurgo(["cleanup", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert "marked 1 orphaned job(s) interrupted" in p.stdout
    with Store(db) as s:
        assert s.query("SELECT state FROM jobs WHERE id=?", (ids["running"],))[0][0] == "interrupted"
    p = resurgo(["cleanup", "--store", str(db), "--json"], cwd=tmp_path, env=env)
    assert json.loads(p.stdout)["interrupted_jobs"] == []


def test_rules_list_and_forget(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with Store(db) as s:
        c = Classifier(store=s)
        for _ in range(3):
            c.record_outcome("weird glitch in the frobnicator", True)
        c.record_outcome("other thing", False)
    env = cli_env(tmp_path)
    p = resurgo(["rules", "list", "--store", str(db), "--json"], cwd=tmp_path, env=env)
    assert [r["signature"] for r in json.loads(p.stdout)] == ["weird glitch in the frobnicator"]
    p = resurgo(["rules", "list", "--all", "--store", str(db), "--json"], cwd=tmp_path, env=env)
    assert len(json.loads(p.stdout)) == 2
    p = resurgo(["rules", "forget", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 2 and "exactly one" in p.stderr
    p = resurgo(["rules", "forget", "nope", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 2
    p = resurgo(["rules", "forget", "weird glitch in the frobnicator", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 0 and "forgot 1" in p.stdout
    p = resurgo(["rules", "forget", "--all", "--store", str(db)], cwd=tmp_path, env=env)
    assert p.returncode == 0 and "forgot 1" in p.stdout


def test_unknown_options_and_commands_are_usage_errors(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    for args in (["jobs", "--bogus"], ["frobnicate"], ["run"], ["batch"], ["show"], ["status", "extra"]):
        p = resurgo(args, cwd=tmp_path, env=env)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr


def test_batch_bad_files(tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"RESURGO_CLAUDE": "/bin/true"})
    store = ["--store", str(tmp_path / "r.db")]
    p = resurgo(["batch", str(tmp_path / "missing.jsonl"), *store], cwd=tmp_path, env=env)
    assert p.returncode == 2 and "batch file not found" in p.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('not json\n{"promt": "x"}\n\n# comment\n[1]\n{"prompt": ""}\n{"prompt": "x", "cwd": "nowhere"}\n')
    p = resurgo(["batch", str(bad), *store], cwd=tmp_path, env=env)
    assert p.returncode == 2
    for n, what in ((1, "not valid JSON"), (2, "did you mean 'prompt'"), (5, "must be an object"),
                    (6, "non-empty string"), (7, "is not a folder")):
        assert f"line {n}: " in p.stderr and what in p.stderr, (n, p.stderr)
    assert "no valid jobs" in p.stderr
    t = tmp_path / "b.toml"
    t.write_text("[[jobs]\n")
    p = resurgo(["batch", str(t), *store], cwd=tmp_path, env=env)
    assert p.returncode == 2 and "invalid TOML" in p.stderr
    y = tmp_path / "b.yaml"
    y.write_text("- prompt: ok\n- {promt: typo}\n- prompt: [1, 2]\n")
    p = resurgo(["batch", str(y), *store, "--claude", str(tmp_path / "no-such-claude")], cwd=tmp_path, env=env)
    assert "line 2: unknown field 'promt'" in p.stderr and "line 3:" in p.stderr
    assert p.returncode == 2 and "not an executable" in p.stderr
