"""Kept for imports inside the supervisor; the implementation is :mod:`resurgo._redact`."""

from resurgo._redact import REDACTED, is_secret_name, redact_argv, redact_env, redact_obj, redact_text

__all__ = ["REDACTED", "is_secret_name", "redact_argv", "redact_env", "redact_obj", "redact_text"]
