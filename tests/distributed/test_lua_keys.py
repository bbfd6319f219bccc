"""Every Lua script passes each key it touches in KEYS (Redis Cluster routes scripts on KEYS; issue 15, item 13)."""

from __future__ import annotations

import re

import pytest

from resurgo.distributed import _budget, _queue, _shared_breaker, _shared_learning

# commands whose first argument is not a key
_NOT_KEYED = {"TIME", "PUBLISH"}
_CALL = re.compile(r"redis\.call\(\s*'([A-Za-z]+)'\s*,\s*([^,)]+)")


def _scripts() -> list[tuple[str, str]]:
    out = []
    for mod in (_queue, _shared_breaker, _budget, _shared_learning):
        for name, value in vars(mod).items():
            if isinstance(value, str) and "redis.call(" in value:
                out.append((f"{mod.__name__}.{name}", value))
    return out


def undeclared(script: str) -> list[str]:
    """Key arguments that are not a plain ``KEYS[n]`` (built from ARGV, or ``KEYS[1] .. ':x'``)."""
    bad = []
    for cmd, first in _CALL.findall(script):
        if cmd.upper() in _NOT_KEYED:
            continue
        if not re.fullmatch(r"KEYS\[\d+\]", first.strip()):
            bad.append(f"{cmd} {first.strip()}")
    # XACK/XADD/... carry the key first; any other concatenation onto KEYS builds a key in the script
    bad += [m for m in re.findall(r"KEYS\[\d+\]\s*\.\.", script)]
    return bad


def test_the_checker_sees_the_old_mistakes() -> None:
    assert undeclared("redis.call('XACK', ARGV[5], ARGV[6], ARGV[3])")
    assert undeclared("redis.call('RPUSH', KEYS[1] .. ':owners', prev)")
    assert undeclared("return redis.call('EXISTS', KEYS[1] .. ':transcript')")
    assert not undeclared("redis.call('HGET', KEYS[1], 'x') redis.call('TIME')")


@pytest.mark.parametrize(("name", "script"), _scripts(), ids=[n for n, _ in _scripts()])
def test_script_declares_its_keys(name: str, script: str) -> None:
    assert undeclared(script) == [], name
