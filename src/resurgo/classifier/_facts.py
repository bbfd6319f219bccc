"""Turning exceptions and observations into the facts rules are matched against.

Exceptions and CLI observations reach the same rules, so both are reduced to
:class:`Node` objects: one per exception in a cause chain / group, or one for a
whole observation.  Extraction is defensive (hostile ``__str__``, cyclic
chains, huge texts) because the classifier runs on the failure path, where a
second failure would hide the first.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resurgo.classifier._patterns import MAX_TEXT, cap_text
from resurgo.classifier._types import Observation

#: Chain members examined per exception (cycles and pathological groups stop here).
MAX_NODES = 32


@dataclass(slots=True)
class Node:
    """Facts about one failure source.

    ``names`` maps every name the failure's exception class is known by
    (bare, ``package.Name`` and ``module.Qualname`` of each class in its MRO)
    to its MRO distance, so the most derived class with a rule wins.
    """

    names: Mapping[str, int] = field(default_factory=dict)
    text: str = ""
    status: int | None = None
    errno: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    cli_errors: frozenset[str] = frozenset()
    subtype: str | None = None
    terminal_reason: str | None = None
    result_error: bool = False
    stream_incomplete: bool = False
    depth: int = 0
    headers: Any = None
    primary: str = ""  # the short text a signature is built from
    label: str = ""  # the exception type name shown in signatures and evidence
    hits: frozenset[int] | None = None  # rules whose message pattern matched (set by the engine)


# -- exceptions ----------------------------------------------------------------------

_CLASS_NAMES: dict[type, dict[str, int]] = {}


def class_names(cls: type) -> dict[str, int]:
    """Names of ``cls`` and its bases with MRO distance; cached per class (hot path)."""
    cached = _CLASS_NAMES.get(cls)
    if cached is not None:
        return cached
    out: dict[str, int] = {}
    for level, c in enumerate(cls.__mro__):
        if c is object or c is BaseException:
            continue
        mod = getattr(c, "__module__", "") or ""
        name = c.__name__
        qual = getattr(c, "__qualname__", name)
        for n in (name, f"{mod}.{qual}", f"{mod.split('.', 1)[0]}.{name}"):
            if n not in out:
                out[n] = level
    if len(_CLASS_NAMES) < 10_000:
        _CLASS_NAMES[cls] = out
    return out


def names_from_string(type_name: str) -> dict[str, int]:
    """Names an observation's ``exception_type`` string is known by (no MRO available)."""
    type_name = type_name.strip()
    parts = type_name.split(".")
    out = {type_name: 0, parts[-1]: 0}
    if len(parts) > 2:
        out[f"{parts[0]}.{parts[-1]}"] = 0
    return out


def safe_str(exc: BaseException) -> str:
    """``str(exc)`` that never raises and never returns something huge."""
    try:
        s = str(exc)
    except Exception:
        try:
            s = repr(exc)
        except Exception:
            s = ""
    if not isinstance(s, str):  # pragma: no cover - str() guarantees a str
        s = ""
    return s if len(s) <= MAX_TEXT else cap_text(s)


#: Attributes through which exceptions carry structured evidence (the observation fields of
#: the spec): HTTP statuses, a response with status and headers, process exit codes and
#: stderr, and an attached CLI ``result`` (claude_agent_sdk's ResultError ``data``).
_STATUS_ATTRS = ("status_code", "status", "http_status", "api_error_status", "code")
_RESULT_ATTRS = ("data", "result", "result_message")
_OTHER_ATTRS = ("response", "headers", "returncode", "exit_code", "stderr", "subtype", "terminal_reason")
_EVIDENCE_ATTRS = frozenset((*_STATUS_ATTRS, *_RESULT_ATTRS, *_OTHER_ATTRS))
_CLASS_ATTRS: dict[type, frozenset[str]] = {}


def _class_attrs(cls: type) -> frozenset[str]:
    """Evidence attributes a class defines itself (properties, slots); cached per class.

    With the instance ``__dict__`` this tells which attributes an exception can
    have before asking, so a plain ``ValueError`` costs no failed lookups.
    """
    found = _CLASS_ATTRS.get(cls)
    if found is None:
        found = frozenset(a for a in _EVIDENCE_ATTRS if any(a in vars(c) for c in cls.__mro__))
        if len(_CLASS_ATTRS) < 10_000:
            _CLASS_ATTRS[cls] = found
    return found


def _http_status(v: Any) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599:
        return v
    return None


def _result_of(v: Any) -> Mapping[str, Any] | None:
    """An attached CLI result event (dict, or an object such as the SDK's ResultMessage)."""
    if isinstance(v, Mapping):
        if v.get("type") == "result" or "is_error" in v or "api_error_status" in v:
            return v
        return None
    if v is None or isinstance(v, str | bytes | int | float) or not hasattr(v, "is_error"):
        return None
    out: dict[str, Any] = {}
    for k in ("is_error", "subtype", "terminal_reason", "api_error_status", "result", "errors"):
        x = getattr(v, k, None)
        if x is not None:
            out[k] = x
    return out


def _text_attr(v: Any) -> str:
    if isinstance(v, bytes):
        v = v[-MAX_TEXT:].decode("utf-8", "replace")
    return v[-MAX_TEXT:] if isinstance(v, str) else ""


def _structured(exc: BaseException, node: Node, present: Any) -> None:
    """Fill ``node`` from the exception's structured attributes (see ``_EVIDENCE_ATTRS``).

    Precedence follows the spec's observation fields: a status on the exception
    itself, then on its ``response``, then the attached result's
    ``api_error_status``; ``returncode``/``exit_code`` give the exit code (a
    negative one is a signal); ``stderr`` and the result's texts join the text.
    """
    msg = node.text
    status: int | None = None
    for a in _STATUS_ATTRS:
        if a in present:
            status = _http_status(getattr(exc, a, None))
            if status is not None:
                break
    resp = getattr(exc, "response", None) if "response" in present else None
    if status is None and resp is not None:
        for a in ("status_code", "status"):
            status = _http_status(getattr(resp, a, None))
            if status is not None:
                break
    result: Mapping[str, Any] | None = None
    for a in _RESULT_ATTRS:
        if a in present:
            result = _result_of(getattr(exc, a, None))
            if result is not None:
                break
    extra: list[str] = []
    if result is not None:
        node.result_error = bool(result.get("is_error"))
        st = result.get("subtype")
        node.subtype = st if isinstance(st, str) else None
        tr = result.get("terminal_reason")
        node.terminal_reason = tr if isinstance(tr, str) else None
        if node.result_error:
            if status is None:
                status = _http_status(result.get("api_error_status"))
            texts: list[str] = []
            _collect_text(result.get("result"), texts)
            _collect_text(result.get("errors"), texts)
            extra.extend(t for t in texts if t not in msg)
    for a in ("subtype", "terminal_reason"):
        if a in present and getattr(node, a) is None:
            v = getattr(exc, a, None)
            if isinstance(v, str) and v:
                setattr(node, a, v)
    node.status = status
    if status is not None:
        h = getattr(resp, "headers", None) if resp is not None else None
        if h is None and "headers" in present:
            h = getattr(exc, "headers", None)
        node.headers = h if h is not None and hasattr(h, "get") else None
    rc = getattr(exc, "returncode", None) if "returncode" in present else None
    if rc is None and "exit_code" in present:
        rc = getattr(exc, "exit_code", None)
    if isinstance(rc, int) and not isinstance(rc, bool):
        if rc < 0:
            node.signal = -rc
        else:
            node.exit_code = rc
    if "stderr" in present:
        err = getattr(exc, "stderr", None)
        if err:
            tail = _text_attr(err)
            if tail:
                extra.append(tail)
    if extra:
        node.text = "\n".join([msg, *extra]) if msg else "\n".join(extra)


def exception_node(exc: BaseException, depth: int) -> Node:
    cls = type(exc)
    msg = safe_str(exc)
    node = Node(names=class_names(cls), text=msg, primary=msg, label=cls.__name__, depth=depth)
    try:
        if isinstance(exc, OSError) and isinstance(exc.errno, int):
            node.errno = _errno.errorcode.get(exc.errno)
        present = _class_attrs(cls)
        d = getattr(exc, "__dict__", None)
        if d:
            present = present | (d.keys() & _EVIDENCE_ATTRS)
        if present:
            _structured(exc, node, present)
    except Exception:  # a property that raises must not break classification
        pass
    return node


def exception_nodes(exc: BaseException) -> list[tuple[BaseException, Node]]:
    """The exception, its cause/context chain and group members, breadth first, cycle-safe."""
    if (
        exc.__cause__ is None
        and (exc.__context__ is None or exc.__suppress_context__)
        and not isinstance(exc, BaseExceptionGroup)
        and not isinstance(getattr(exc, "reason", None), BaseException)
    ):
        return [(exc, exception_node(exc, 0))]  # the common case: a lone exception
    out: list[tuple[BaseException, Node]] = []
    seen: set[int] = set()
    queue: list[tuple[BaseException, int]] = [(exc, 0)]
    i = 0
    while i < len(queue) and len(out) < MAX_NODES:
        e, depth = queue[i]
        i += 1
        if id(e) in seen:
            continue
        seen.add(id(e))
        out.append((e, exception_node(e, depth)))
        for nxt in related(e):
            if id(nxt) not in seen:
                queue.append((nxt, depth + 1))
    return out


def related(e: BaseException) -> list[BaseException]:
    """Exceptions that explain ``e``: group members, its cause, its (unsuppressed) context."""
    out: list[BaseException] = []
    if isinstance(e, BaseExceptionGroup):
        out.extend(x for x in e.exceptions if isinstance(x, BaseException))
    if e.__cause__ is not None:
        out.append(e.__cause__)
    elif e.__context__ is not None and not e.__suppress_context__:
        out.append(e.__context__)
    reason = getattr(e, "reason", None)  # urllib3 MaxRetryError, urllib.error.URLError
    if isinstance(reason, BaseException):
        out.append(reason)
    return out


# -- observations --------------------------------------------------------------------


@dataclass(slots=True)
class ObservationFacts:
    """An observation reduced to one node plus the facts that decide "is it an error at all"."""

    node: Node
    killed_by: str | None
    result: Mapping[str, Any] | None
    result_ok: bool
    error_event: bool
    resets_at: float | None
    has_evidence: bool


def _collect_text(v: Any, out: list[str], budget: int = 8) -> None:
    if budget <= 0:
        return
    if isinstance(v, str):
        if v:
            out.append(v[:MAX_TEXT])
    elif isinstance(v, Mapping):
        for key in ("message", "error", "text", "type"):
            if key in v:
                _collect_text(v[key], out, budget - 1)
    elif isinstance(v, list):
        for item in v[:16]:
            _collect_text(item, out, budget - 1)


def observation_facts(obs: Observation) -> ObservationFacts:
    """Reduce an observation (the spec's JSON form) to facts; robust to odd event shapes."""
    texts: list[str] = []
    if obs.message:
        texts.append(cap_text(obs.message))
    result: Mapping[str, Any] | None = None
    cli_errors: set[str] = set()
    retry_status: int | None = None
    resets_at: float | None = None
    subtype = terminal = None
    for ev in obs.events:
        et = ev.get("type")
        if et == "result":
            result = ev
        elif et == "assistant":
            err = ev.get("error")
            msg = ev.get("message")
            if isinstance(err, str) and err:
                cli_errors.add(err)
                if isinstance(msg, Mapping):
                    _collect_text(msg.get("content"), texts)
            elif isinstance(msg, Mapping) and msg.get("model") == "<synthetic>":
                # a synthetic message without an error field still carries the CLI's error text
                _collect_text(msg.get("content"), texts)
        elif et == "system" and ev.get("subtype") == "api_retry":
            st = ev.get("error_status")
            if isinstance(st, int) and not isinstance(st, bool):
                retry_status = st
            _collect_text(ev.get("error"), texts)
        elif et == "rate_limit_event":
            info = ev.get("rate_limit_info")
            cand = ev.get("resetsAt")
            if cand is None and isinstance(info, Mapping):
                cand = info.get("resetsAt")
            if isinstance(cand, int | float) and not isinstance(cand, bool):
                resets_at = float(cand) / (1000.0 if cand > 1e11 else 1.0)
    result_error = False
    result_ok = False
    status = obs.http_status
    if result is not None:
        result_error = bool(result.get("is_error"))
        result_ok = result.get("is_error") is False or ("is_error" not in result and result.get("subtype") == "success")
        st = result.get("subtype")
        subtype = st if isinstance(st, str) else None
        tr = result.get("terminal_reason")
        terminal = tr if isinstance(tr, str) else None
        if result_error:
            _collect_text(result.get("result"), texts)
            _collect_text(result.get("errors"), texts)
            ast = result.get("api_error_status")
            if status is None and isinstance(ast, int) and not isinstance(ast, bool):
                status = ast
    elif status is None and retry_status is not None:
        status = retry_status  # ended while the CLI was still retrying this status
    stream_incomplete = bool(obs.events) and result is None
    stderr = cap_text(obs.stderr[-MAX_TEXT:]) if obs.stderr else ""
    if stderr:
        texts.append(stderr)
    text = "\n".join(texts)
    if len(text) > 2 * MAX_TEXT:
        text = cap_text(text, 2 * MAX_TEXT)
    names = names_from_string(obs.exception_type) if obs.exception_type else {}
    primary = ""
    for cand_text in texts:
        if cand_text.strip():
            primary = cand_text if cand_text is not stderr else stderr[-400:]
            break
    node = Node(
        names=names,
        text=text,
        status=status,
        exit_code=obs.exit_code,
        signal=obs.signal,
        cli_errors=frozenset(cli_errors),
        subtype=subtype,
        terminal_reason=terminal,
        result_error=result_error,
        stream_incomplete=stream_incomplete,
        headers=obs.headers or None,
        primary=primary,
        label=(obs.exception_type or "").rsplit(".", 1)[-1],
    )
    has_evidence = bool(
        obs.message
        or obs.exception_type
        or (obs.exit_code not in (None, 0))
        or obs.signal is not None
        or (status is not None and status >= 400)
        or stderr.strip()
        or cli_errors
        or result_error
        or stream_incomplete
    )
    return ObservationFacts(
        node=node,
        killed_by=obs.killed_by,
        result=result,
        result_ok=result_ok,
        error_event=bool(cli_errors) or result_error,
        resets_at=resets_at,
        has_evidence=has_evidence,
    )


__all__ = [
    "MAX_NODES",
    "Node",
    "ObservationFacts",
    "class_names",
    "exception_node",
    "exception_nodes",
    "names_from_string",
    "observation_facts",
    "related",
    "safe_str",
]
