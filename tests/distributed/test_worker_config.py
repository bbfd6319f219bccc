"""``resurgo worker`` finds its Redis in the configuration when --redis is not given."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from resurgo.distributed import FleetQueue

from .conftest import RedisProcess
from .test_batch_redis import batch_env, resurgo


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def test_worker_serves_the_redis_of_the_redis_url_key(tmp_path: Path, redis_proc: RedisProcess) -> None:
    cfg = tmp_path / "fleet.toml"
    cfg.write_text(f'[redis]\nurl = "{redis_proc.url}"\n')
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "resurgo", "--config", str(cfg), "worker", "--name", "from-config",
             "--store", str(tmp_path / "w.db"), "--grace", "0"],
            cwd=tmp_path, env={**batch_env(tmp_path), "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
        )
    q = FleetQueue(redis_proc.url)
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and proc.poll() is None and "serving" not in log.read_text(errors="replace"):
            time.sleep(0.1)
        assert "worker from-config serving" in log.read_text(errors="replace"), log.read_text(errors="replace")
        # an entry without a job is read and acknowledged by whoever serves this stream: only our worker can
        eid = _text(q.client.xadd(q.stream, {"noise": "1"}))
        group: dict[str, object] = {}
        while time.monotonic() < end and proc.poll() is None:
            group = {_text(g["name"]): g for g in q.client.xinfo_groups(q.stream)}.get("workers", {})
            if _text(group.get("last-delivered-id", b"")) == eid and group.get("pending") == 0:
                break
            time.sleep(0.1)
        assert _text(group.get("last-delivered-id", b"")) == eid and group.get("pending") == 0, group
        consumers = [_text(c["name"]) for c in q.client.xinfo_consumers(q.stream, "workers")]
        assert consumers == ["from-config"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        q.close()


def test_no_redis_anywhere_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    r = resurgo(["--config", str(cfg), "worker", "--store", str(tmp_path / "w.db")], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "no Redis to serve: pass --redis URL or set `url` in the [redis] section" in r.stderr
    assert r.stdout == "" and not (tmp_path / "w.db").exists()


def test_a_bad_scheme_in_either_place_is_refused(tmp_path: Path) -> None:
    r = resurgo(["worker", "--redis", "http://127.0.0.1:1/0"], cwd=tmp_path)
    assert r.returncode == 2 and "must start with redis://, rediss:// or unix://" in r.stderr, r.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[redis]\nurl = "http://127.0.0.1:1/0"\n')
    r = resurgo(["--config", str(cfg), "worker"], cwd=tmp_path)
    assert r.returncode == 2 and "invalid configuration" in r.stderr and "redis" in r.stderr, r.stderr
