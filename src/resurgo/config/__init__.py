"""resurgo's configuration: project ``resurgo.toml``, user config, ``RESURGO_*`` variables, ``--config``.

See :mod:`resurgo.config._load` for the precedence rules.  Everything is
validated, and every problem is reported at once (``resurgo config check``).

    from resurgo.config import load_settings
    settings = load_settings()
    settings.raise_for_problems()          # ConfigError listing every problem
    policy = settings.retry_policy()       # resurgo.retrier.RetryPolicy
"""

from resurgo.config._load import (
    ENV_PREFIX,
    PROJECT_FILE,
    ConfigError,
    ConfigProblem,
    Settings,
    Value,
    find_project_config,
    load_settings,
    suggest,
    trust_problems,
    user_config_path,
)
from resurgo.config._schema import Key, redact_url

__all__ = [
    "ENV_PREFIX",
    "PROJECT_FILE",
    "ConfigError",
    "ConfigProblem",
    "Key",
    "Settings",
    "Value",
    "find_project_config",
    "load_settings",
    "redact_url",
    "suggest",
    "trust_problems",
    "user_config_path",
]
