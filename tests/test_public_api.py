"""The top-level names work whatever was imported first (sub-packages share their names)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import resurgo.supervise            # imports every sub-package before the top-level names are used
import resurgo
from resurgo import classify, retry
assert resurgo.classify(ConnectionResetError("reset")).type == "network"
assert classify(TimeoutError()).type == "timeout"
resurgo.set_testing(True, attempts=3)
n = []
@resurgo.retry(max_attempts=3)
def f():
    n.append(1)
    if len(n) < 2:
        raise ConnectionResetError("reset")
    return "ok"
assert f() == "ok" and len(n) == 2
@retry
def g():
    return 1
assert g() == 1
assert resurgo.classifier.Classifier is not None and resurgo.retrier.Retrier is not None
print("ok")
"""


def test_function_and_subpackage_names_both_work_in_any_import_order() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_every_public_name_resolves() -> None:
    import resurgo

    for name in resurgo.__all__:
        assert getattr(resurgo, name) is not None, name
