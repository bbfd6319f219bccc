"""What a fleet worker accepts from Redis: a job spec is a request, not an order.

Anyone who can write to the fleet's Redis can queue jobs.  Without checks a
job spec could choose the program the worker runs (``PATH``, ``NODE_OPTIONS``,
``LD_PRELOAD``), where the worker's API key goes (``ANTHROPIC_BASE_URL``), the
CLI's settings and MCP servers (which start programs), a permission bypass,
a working folder anywhere on the host, and — through ``session_id`` — where a
transcript is written.  So a worker applies its own policy:

* **session ids** must be UUIDs (the CLI's own form): they become file names;
* **environment**: variables that choose programs, libraries, configuration,
  credentials or endpoints are refused (:data:`REFUSED_ENV`,
  :data:`REFUSED_ENV_PREFIXES`); a secret-named variable sent as
  ``<redacted>`` is dropped, never filled from the worker's environment (the
  worker's own credentials apply anyway, to the endpoint the *worker* chose);
* **cwd** must lie under one of the worker's ``cwd_roots`` (default: the
  folder the worker was started in);
* **claude_args**: only flags that narrow or tune a run are accepted
  (:data:`ALLOWED_CLAUDE_FLAGS`); everything else — ``--settings``,
  ``--mcp-config``, ``--dangerously-skip-permissions``, ``--permission-mode``,
  ``--add-dir``, ``--allowedTools``, ``--plugin-dir``, unknown flags — is
  refused.  Submitters restrict what a job may do; workers grant tools, in
  their own ``[supervisor] claude_args``.

Each refusal can be lifted per worker (``[worker] allow_env``,
``allow_claude_args``, ``cwd_roots``), deliberately, by whoever runs the worker.
A refused job is failed with the reasons, not passed on to another worker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALLOWED_CLAUDE_FLAGS",
    "REFUSED_ENV",
    "REFUSED_ENV_PREFIXES",
    "WorkerPolicy",
    "is_session_id",
]

REDACTED = "<redacted>"

#: variables a job from Redis may not set: they choose programs, libraries, configuration or trust
REFUSED_ENV = frozenset({
    "PATH", "HOME", "SHELL", "USER", "LOGNAME", "TMPDIR", "CLAUDE_CONFIG_DIR",
    "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "BASH_ENV", "ENV", "ZDOTDIR", "PROMPT_COMMAND", "EDITOR", "VISUAL", "PAGER", "BROWSER",
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR",
})
#: ... nor any variable starting with one of these (loader, API/cloud credentials and endpoints, git hooks)
REFUSED_ENV_PREFIXES = ("LD_", "DYLD_", "ANTHROPIC_", "CLAUDE_", "RESURGO_", "AWS_", "GOOGLE_", "CLOUD_ML_",
                        "VERTEX_", "GIT_", "NPM_CONFIG_", "OTEL_")

#: ``claude`` flags a job from Redis may pass: they narrow or tune a run, never widen what it may do
ALLOWED_CLAUDE_FLAGS = frozenset({
    "--model", "--fallback-model", "--max-turns", "--append-system-prompt", "--system-prompt",
    "--disallowedTools", "--disallowed-tools", "--verbose", "--max-budget-usd", "--effort",
})


def is_session_id(value: Any) -> bool:
    """A canonical UUID (what the CLI uses, and what is safe as a file name)."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _refused_env(name: str) -> bool:
    up = name.upper()
    return up in REFUSED_ENV or up.startswith(REFUSED_ENV_PREFIXES)


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    """What this worker runs for jobs it reads from Redis (see the module docstring).

    ``cwd_roots``: folders under which a job's ``cwd`` must lie (resolved; an
    empty tuple allows none).  ``allow_env``: variable names accepted although
    refused by default.  ``allow_claude_args``: extra accepted flags
    (``"--allowedTools"``; ``"*"`` accepts any).
    """

    cwd_roots: tuple[str, ...] = field(default_factory=lambda: (os.getcwd(),))
    allow_env: frozenset[str] = frozenset()
    allow_claude_args: frozenset[str] = frozenset()

    @classmethod
    def create(cls, *, cwd_roots: Iterable[str] | None = None, allow_env: Iterable[str] = (),
               allow_claude_args: Iterable[str] = ()) -> WorkerPolicy:
        roots = tuple(os.path.realpath(os.path.expanduser(r)) for r in (cwd_roots if cwd_roots is not None
                                                                         else (os.getcwd(),)))
        return cls(roots, frozenset(n.upper() for n in allow_env), frozenset(allow_claude_args))

    def env(self, env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
        """(the variables to apply, the reasons for refusing the job); ``<redacted>`` values are dropped."""
        out: dict[str, str] = {}
        problems: list[str] = []
        for k, v in env.items():
            if v == REDACTED:
                continue  # the worker's own environment applies; never copied into another variable
            if _refused_env(k) and k.upper() not in self.allow_env:
                problems.append(f"environment variable {k} is not accepted from the fleet queue "
                                f"(allow it with [worker] allow_env)")
                continue
            out[k] = v
        return out, problems

    def cwd(self, cwd: str) -> list[str]:
        if not os.path.isabs(cwd):
            return [f"cwd {cwd!r} is not an absolute path"]
        real = os.path.realpath(cwd)
        for root in self.cwd_roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return []
        return [f"cwd {cwd} is outside this worker's folders ({', '.join(self.cwd_roots) or 'none'}; "
                f"see [worker] cwd_roots)"]

    def claude_args(self, args: Iterable[str]) -> list[str]:
        if "*" in self.allow_claude_args:
            return []
        problems = []
        for a in args:
            if not a.startswith("-"):
                continue  # a value of the flag before it
            flag = a.split("=", 1)[0]
            if flag not in ALLOWED_CLAUDE_FLAGS and flag not in self.allow_claude_args:
                problems.append(f"claude argument {flag} is not accepted from the fleet queue "
                                f"(allow it with [worker] allow_claude_args)")
        return problems

    def check(self, spec: Any) -> tuple[dict[str, str], list[str]]:
        """(the environment to apply, every reason to refuse) for a fleet job spec."""
        env, problems = self.env(spec.env)
        problems += self.cwd(spec.cwd)
        problems += self.claude_args(spec.claude_args)
        return env, problems
