"""A job's whole workflow (chain, group, chord) as a tree: its root and every job below it."""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec
import psycopg

from sluice.store.sqlfiles import queries

from .._sql import utc

Q = queries(__package__, "tree.sql")
MAX_NODES: Final = 500
MAX_DEPTH: Final = 50


class Node(msgspec.Struct):
    id: str
    name: str | None
    state: str
    parent_id: str | None
    group_id: str | None
    first_seen_at: dt.datetime | None
    runtime: float | None


class Workflow(msgspec.Struct):
    root_id: str
    nodes: list[Node]  # the root first, then by depth; a node's parent comes before it
    truncated: bool  # more than MAX_NODES jobs: the deepest were left out


def workflow(conn: psycopg.Connection, connection_id: str, root_id: str) -> Workflow:
    params = {"connection_id": connection_id, "root_id": root_id, "max_depth": MAX_DEPTH,
              "limit": MAX_NODES + 1}
    rows = conn.execute(Q["workflow"], params).fetchall()
    nodes = [Node(i, n, s, p, g, utc(at), rt) for i, n, s, p, g, at, rt in rows[:MAX_NODES]]
    return Workflow(root_id, nodes, len(rows) > MAX_NODES)
