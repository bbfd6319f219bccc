"""The supervisor's process-tree mechanics, which live in :mod:`resurgo._procs`.

They are generic (subreaper, session and environment-marker tracking, ending
a tree with SIGTERM, grace, SIGKILL) and the SDK wrappers (:mod:`resurgo.sdk`)
use them too, so they moved to a top-level private module; this module keeps
the supervisor's imports (and its tests') working.
"""

from __future__ import annotations

from resurgo._procs import (
    PR_GET_CHILD_SUBREAPER,
    PR_SET_CHILD_SUBREAPER,
    ProcIds,
    TreeKillReport,
    TreeTracker,
    become_subreaper,
    children_of,
    create_time,
    descendants,
    end_tree,
    env_marked,
    env_values,
    is_subreaper,
    marked_tree,
    our_children,
    proc_ids,
    reap_orphans,
    same_process,
    session_members,
)

__all__ = [
    "PR_GET_CHILD_SUBREAPER",
    "PR_SET_CHILD_SUBREAPER",
    "ProcIds",
    "TreeKillReport",
    "TreeTracker",
    "become_subreaper",
    "children_of",
    "create_time",
    "descendants",
    "end_tree",
    "env_marked",
    "env_values",
    "is_subreaper",
    "marked_tree",
    "our_children",
    "proc_ids",
    "reap_orphans",
    "same_process",
    "session_members",
]
