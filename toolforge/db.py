"""SQLite connections and ordered migrations, shared by every store.

Each component (registry, jobs, memory, agents …) owns a list of SQL steps applied in
order and recorded in ``_migrations`` so several components can share one database file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

_lock = threading.Lock()


def connect(path: Path | str, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open a WAL-mode connection usable from several threads and processes."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path), timeout=timeout, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


def migrate(conn: sqlite3.Connection, component: str, steps: Sequence[str]) -> int:
    """Apply the steps of ``component`` not yet recorded; return how many ran."""
    with _lock:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations ("
            " component TEXT NOT NULL, step INTEGER NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (datetime('now')),"
            " PRIMARY KEY (component, step))"
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = {
                row[0]
                for row in conn.execute(
                    "SELECT step FROM _migrations WHERE component = ?", (component,)
                )
            }
            ran = 0
            for number, sql in enumerate(steps, start=1):
                if number in done:
                    continue
                for statement in _split(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO _migrations (component, step) VALUES (?, ?)", (component, number)
                )
                ran += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ran


def _split(sql: str) -> list[str]:
    """Split a script into complete statements (triggers with inner ``;`` stay whole)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
