"""Packages whose public names are imported on first use (PEP 562).

Why: the configuration schema takes its defaults from ``resurgo.retrier._policy``
and ``resurgo.breaker._config``; ``resurgo run`` reads the configuration before it
starts the CLI, so importing one small module must not load its whole package
(regex engines, hooks, the breaker's state machine).  Each package keeps its real
imports under ``TYPE_CHECKING`` for type checkers and IDEs.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping
from typing import Any


def load(package: str, exports: Mapping[str, str], name: str, namespace: MutableMapping[str, Any]) -> Any:
    """The value of ``package.name`` from the module ``exports`` names; cached in ``namespace``."""
    target = exports.get(name)
    if target is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(target), name)
    namespace[name] = value
    return value


__all__ = ["load"]
