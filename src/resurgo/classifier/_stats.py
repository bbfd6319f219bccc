"""Error statistics over sliding time windows, with bounded memory.

The metrics, dashboard and priority logic ask "how many errors of this type /
severity / signature in the last N seconds".  Counts go into fixed-width time
buckets (read from the injected clock) that expire after ``horizon`` seconds;
each bucket keeps at most ``max_signatures`` distinct signatures (the rest are
counted under ``"<other>"``), so memory is bounded however hostile the input.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

OTHER = "<other>"


@dataclass(slots=True)
class _Bucket:
    index: int
    total: int = 0
    types: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)
    signatures: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class ErrorStats:
    """Counts in one window; ``by_signature`` is limited to the ``top`` most frequent."""

    window: float
    total: int
    by_type: dict[str, int]
    by_severity: dict[str, int]
    by_signature: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "total": self.total,
            "by_type": dict(self.by_type),
            "by_severity": dict(self.by_severity),
            "by_signature": dict(self.by_signature),
        }


class WindowedStats:
    """Time-bucketed counters; not thread-safe on its own (the classifier holds a lock)."""

    def __init__(self, *, bucket_seconds: float = 10.0, horizon: float = 86_400.0, max_signatures: int = 256) -> None:
        if bucket_seconds <= 0 or horizon < bucket_seconds:
            raise ValueError("need bucket_seconds > 0 and horizon >= bucket_seconds")
        self.bucket_seconds = float(bucket_seconds)
        self.horizon = float(horizon)
        self.max_signatures = max_signatures
        self._buckets: deque[_Bucket] = deque()

    def record(self, now: float, etype: str | None, severity: str | None, signature: str) -> None:
        idx = int(now // self.bucket_seconds)
        b = self._buckets[-1] if self._buckets else None
        if b is None or b.index != idx:
            if b is not None and idx < b.index:  # clock went backwards: count in the newest bucket
                idx = b.index
            else:
                b = _Bucket(idx)
                self._buckets.append(b)
                self._expire(idx)
        assert b is not None
        b.total += 1
        if etype is not None:
            b.types[etype] += 1
        if severity is not None:
            b.severities[severity] += 1
        sigs = b.signatures
        if signature in sigs or len(sigs) < self.max_signatures:
            sigs[signature] += 1
        else:
            sigs[OTHER] += 1

    def _expire(self, idx: int) -> None:
        oldest = idx - int(self.horizon // self.bucket_seconds)
        while self._buckets and self._buckets[0].index < oldest:
            self._buckets.popleft()

    def snapshot(self, now: float, window: float, *, top: int = 20) -> ErrorStats:
        if window <= 0:
            raise ValueError("window must be positive")
        window = min(window, self.horizon)
        first = int((now - window) // self.bucket_seconds) + 1
        total = 0
        types: Counter[str] = Counter()
        sevs: Counter[str] = Counter()
        sigs: Counter[str] = Counter()
        for b in reversed(self._buckets):
            if b.index < first:
                break
            total += b.total
            types.update(b.types)
            sevs.update(b.severities)
            sigs.update(b.signatures)
        return ErrorStats(
            window=window,
            total=total,
            by_type=dict(types),
            by_severity=dict(sevs),
            by_signature=dict(sigs.most_common(top)),
        )

    def clear(self) -> None:
        self._buckets.clear()


class SpreadTracker:
    """How many distinct jobs hit a signature recently (LRU-bounded), for priority."""

    def __init__(self, *, max_signatures: int = 4096, per_signature: int = 64) -> None:
        self._hits: OrderedDict[str, deque[tuple[float, str | None]]] = OrderedDict()
        self.max_signatures = max_signatures
        self.per_signature = per_signature

    def hit(self, signature: str, now: float, job: str | None) -> None:
        q = self._hits.get(signature)
        if q is None:
            q = deque(maxlen=self.per_signature)
            self._hits[signature] = q
            if len(self._hits) > self.max_signatures:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(signature)
        q.append((now, job))  # without a job id (None) every occurrence counts as its own job

    def hit_and_count(self, signature: str, now: float, job: str | None, window: float, cap: int) -> int:
        """:meth:`hit` then :meth:`jobs` with one lookup (the classifier's per-error path)."""
        hits = self._hits
        q = hits.get(signature)
        if q is None:
            q = deque(maxlen=self.per_signature)
            hits[signature] = q
            if len(hits) > self.max_signatures:
                hits.popitem(last=False)
        else:
            hits.move_to_end(signature)
        q.append((now, job))  # None: an anonymous occurrence, a job of its own
        return self._count(q, now - window, cap)

    @staticmethod
    def _count(q: deque[tuple[float, str | None]], cutoff: float, cap: int) -> int:
        n = 0
        seen: set[str] = set()
        for t, job in reversed(q):
            if t < cutoff:
                break
            if job is None:
                n += 1
            elif job not in seen:
                seen.add(job)
                n += 1
            if n >= cap:
                break
        return n

    def jobs(self, signature: str, now: float, window: float, cap: int = 1 << 30) -> int:
        """Distinct jobs within ``window``; stops counting at ``cap`` (the caller's threshold)."""
        q = self._hits.get(signature)
        if not q:
            return 0
        return self._count(q, now - window, cap)


__all__ = ["OTHER", "ErrorStats", "SpreadTracker", "WindowedStats"]
