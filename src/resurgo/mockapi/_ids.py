"""Identifiers in the real API's formats (``msg_01…``, ``toolu_01…``, ``req_01…``).

Clients sometimes validate or log these, so they look like the real ones:
a prefix, ``01`` and 22 base62 characters.
"""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def _rand(n: int = 22) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def message_id() -> str:
    return "msg_01" + _rand()


def request_id() -> str:
    return "req_01" + _rand()


def tool_use_id() -> str:
    """A fresh tool-use id; the prefix marks ids this stand-in issued.

    Ids are random, never derived from the step, because a resumed
    conversation may repeat a step and the real API rejects duplicate ids.
    """
    return TOOL_ID_PREFIX + _rand(19)


TOOL_ID_PREFIX = "toolu_01Rsg"
