"""Kept for imports inside the dashboard; the implementation is :mod:`resurgo._redact`."""

from resurgo._redact import REDACTED, is_secret_name, redact, redact_obj

__all__ = ["REDACTED", "is_secret_name", "redact", "redact_obj"]
