"""The live web dashboard of supervised runs (``resurgo dashboard``).

A standard-library HTTP server over the run store: a JSON API, server-sent
events for live updates, ``/metrics`` for Prometheus and a single-page UI whose
assets all ship in this package (it works offline; nothing comes from a CDN).
"""

from resurgo.dashboard._server import (
    RANGES,
    BadRequest,
    Dashboard,
    DashboardError,
    is_loopback,
    parse_range,
    serve,
)

__all__ = ["RANGES", "BadRequest", "Dashboard", "DashboardError", "is_loopback", "parse_range", "serve"]
