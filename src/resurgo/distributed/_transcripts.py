"""How session transcripts are kept in the fleet's Redis.

A transcript holds every tool result of a session: file contents, command
output, whatever secrets a tool printed.  It travels through Redis so that
another worker can resume the session, and it sits there until the job's keys
expire.  Three modes:

* ``redact`` (the default): every line goes through resurgo's secret
  redaction (:func:`resurgo._redact.redact_json_line`) before it leaves the
  host.  The resumed session sees ``<redacted>`` where a secret was, which is
  what a person reading Redis should see too.
* ``encrypt``: the transcript is encrypted with a Fernet key (AES-128-CBC +
  HMAC-SHA256, from the ``cryptography`` package, ``pip install
  'resurgo[crypto]'``) that every worker of the fleet shares (``[worker]
  transcript_key`` or ``RESURGO_WORKER_TRANSCRIPT_KEY``; make one with
  ``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``).
  Full fidelity, and Redis (or its backups) learns nothing.
* ``plain``: as the CLI wrote it; only for a Redis nobody else can read.

Decoding accepts any form it can read, so a fleet can switch modes without
losing the transcripts already stored.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MODES", "TranscriptCodec", "TranscriptError"]

MODES = ("redact", "encrypt", "plain")
_PREFIX = "resurgo-fernet:v1:"


class TranscriptError(ValueError):
    """A transcript cannot be encoded or decoded as configured (missing or wrong key)."""


class TranscriptCodec:
    """Encodes transcripts for Redis and decodes them back (see the module docstring)."""

    def __init__(self, mode: str = "redact", *, key: str | bytes | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"transcript mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._fernet: Any = None
        if key:
            try:
                from cryptography.fernet import Fernet
            except ImportError:
                raise TranscriptError("encrypted transcripts need the 'cryptography' package "
                                      "(pip install 'resurgo[crypto]')") from None
            try:
                self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
            except (ValueError, TypeError):
                raise TranscriptError("the transcript key must be a Fernet key (32 url-safe base64 bytes)") from None
        if mode == "encrypt" and self._fernet is None:
            raise TranscriptError("transcript mode 'encrypt' needs a key ([worker] transcript_key)")

    def encode(self, text: str) -> str:
        if self.mode == "plain":
            return text
        if self.mode == "encrypt":
            return _PREFIX + str(self._fernet.encrypt(text.encode("utf-8")).decode("ascii"))
        from resurgo._redact import redact_json_line

        return "".join(redact_json_line(line.rstrip("\n")) + "\n" if line.endswith("\n")
                       else redact_json_line(line) for line in text.splitlines(keepends=True))

    def decode(self, stored: str) -> str:
        if not stored.startswith(_PREFIX):
            return stored
        if self._fernet is None:
            raise TranscriptError("the stored transcript is encrypted and this worker has no transcript key")
        from cryptography.fernet import InvalidToken

        try:
            return str(self._fernet.decrypt(stored[len(_PREFIX):].encode("ascii")).decode("utf-8"))
        except (InvalidToken, ValueError):
            raise TranscriptError("the stored transcript does not decrypt with this worker's key") from None
