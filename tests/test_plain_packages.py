"""After the rename: ``resurgo.classify`` / ``resurgo.retry`` are plain functions whatever
was imported first, and no module's class is changed behind the user's back."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import types
import resurgo.supervise, resurgo.classifier, resurgo.retrier   # every sub-package imported first
import resurgo
assert isinstance(resurgo.classify, types.FunctionType), type(resurgo.classify)
assert isinstance(resurgo.retry, types.FunctionType), type(resurgo.retry)
assert resurgo.classifier.classify is resurgo.classify and resurgo.retrier.retry is resurgo.retry
odd = [n for n, m in list(sys.modules.items()) if n.startswith("resurgo") and type(m) is not types.ModuleType]
assert not odd, odd
print("ok")
"""


def test_functions_are_plain_functions_and_modules_plain_modules() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys\n" + SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
