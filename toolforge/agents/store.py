"""The agents store (SQLite, component "agents"): agent specs with versions, the
performance registry, and run traces.

* ``agents``     — every version of every AgentSpec, as JSON.
* ``performance``— one row per agent execution: agent, task type, success, cost, latency,
  tokens, task id (the run id, or ``RUN/N`` for the N-th subtask or member).
* ``runs`` / ``run_events`` — a solve run and its ordered trace: every model call, tool
  call and result, with tokens, cost and latency (see :mod:`toolforge.agents.trace`).
"""

from __future__ import annotations

import builtins
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from toolforge import db
from toolforge.agents.spec import AgentSpec
from toolforge.config import Settings
from toolforge.errors import NotFoundError, UsageError

MIGRATIONS = [
    """
    CREATE TABLE agents (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE performance (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent TEXT NOT NULL,
        agent_version INTEGER,
        task_type TEXT NOT NULL,
        success INTEGER NOT NULL,
        cost_usd REAL NOT NULL DEFAULT 0,
        latency_s REAL NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        task_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX performance_type ON performance (task_type, agent);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        topology TEXT NOT NULL,
        reason TEXT,
        task_type TEXT,
        model TEXT,
        status TEXT NOT NULL,
        answer TEXT,
        stop_reason TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        latency_s REAL NOT NULL DEFAULT 0,
        meta TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE run_events (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        ts TEXT NOT NULL,
        kind TEXT NOT NULL,
        agent TEXT,
        data TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    """,
]

RANK_BY = ("success", "cost", "latency")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class AgentStats:
    """Aggregated performance of one agent (on one task type, or on all)."""

    agent: str
    task_type: str | None
    runs: int
    successes: int
    avg_cost_usd: float
    avg_latency_s: float
    avg_tokens: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "task_type": self.task_type,
            "runs": self.runs,
            "successes": self.successes,
            "success_rate": round(self.success_rate, 4),
            "avg_cost_usd": round(self.avg_cost_usd, 6),
            "avg_latency_s": round(self.avg_latency_s, 3),
            "avg_tokens": round(self.avg_tokens, 1),
        }


class AgentStore:
    """Agent registry, performance registry and run traces in the shared SQLite file."""

    def __init__(self, settings: Settings) -> None:
        self._conn = db.connect(settings.db_path)
        db.migrate(self._conn, "agents", MIGRATIONS)
        self._lock = threading.Lock()  # one connection shared by the threads of a run

    def close(self) -> None:
        self._conn.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- agent registry ------------------------------------------------------------------
    def add(self, spec: AgentSpec) -> AgentSpec:
        """Register ``spec`` as the next version of its name; an unchanged spec is not re-added."""
        latest = self.latest(spec.name)
        if latest is not None and latest.model_dump(exclude={"version"}) == spec.model_dump(
            exclude={"version"}
        ):
            return latest
        spec = spec.model_copy(update={"version": (latest.version + 1) if latest else 1})
        self._exec(
            "INSERT INTO agents (name, version, spec, created_at) VALUES (?,?,?,?)",
            (spec.name, spec.version, spec.model_dump_json(), now_iso()),
        )
        return spec

    def latest(self, name: str) -> AgentSpec | None:
        rows = self._exec(
            "SELECT spec FROM agents WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
        )
        return AgentSpec.model_validate_json(rows[0][0]) if rows else None

    def get(self, ref: str) -> AgentSpec:
        """``NAME`` (latest version) or ``NAME@VERSION``."""
        name, _, version = ref.partition("@")
        if version:
            if not version.isdigit():
                raise UsageError(f"Bad agent reference {ref!r}: expected NAME or NAME@VERSION")
            rows = self._exec(
                "SELECT spec FROM agents WHERE name = ? AND version = ?", (name, int(version))
            )
            spec = AgentSpec.model_validate_json(rows[0][0]) if rows else None
        else:
            spec = self.latest(name)
        if spec is None:
            raise NotFoundError(
                "agent", ref, hint="See the registered agents with: toolforge agents list"
            )
        return spec

    def versions(self, name: str) -> list[int]:
        return [
            r[0]
            for r in self._exec(
                "SELECT version FROM agents WHERE name = ? ORDER BY version", (name,)
            )
        ]

    def list(self) -> builtins.list[AgentSpec]:
        rows = self._exec(
            "SELECT a.spec FROM agents a JOIN (SELECT name, MAX(version) v FROM agents GROUP BY name) m"
            " ON a.name = m.name AND a.version = m.v ORDER BY a.name"
        )
        return [AgentSpec.model_validate_json(r[0]) for r in rows]

    def remove(self, ref: str) -> builtins.list[int]:
        spec = self.get(ref)
        versions = [spec.version] if "@" in ref else self.versions(spec.name)
        for v in versions:
            self._exec("DELETE FROM agents WHERE name = ? AND version = ?", (spec.name, v))
        return versions

    # -- performance registry ------------------------------------------------------------
    def record_performance(
        self,
        *,
        agent: str,
        agent_version: int | None,
        task_type: str,
        success: bool,
        cost_usd: float,
        latency_s: float,
        tokens: int,
        task_id: str,
    ) -> None:
        self._exec(
            "INSERT INTO performance (agent, agent_version, task_type, success, cost_usd, latency_s,"
            " tokens, task_id, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                agent,
                agent_version,
                task_type,
                int(success),
                cost_usd,
                latency_s,
                tokens,
                task_id,
                now_iso(),
            ),
        )

    def stats(
        self, *, agent: str | None = None, task_type: str | None = None
    ) -> builtins.list[AgentStats]:
        """Success rate, average cost / latency / tokens and count per (agent, task type)."""
        where, params = [], []
        if agent:
            where.append("agent = ?")
            params.append(agent)
        if task_type:
            where.append("task_type = ?")
            params.append(task_type)
        rows = self._exec(
            "SELECT agent, task_type, COUNT(*), SUM(success), AVG(cost_usd), AVG(latency_s), AVG(tokens)"
            " FROM performance"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY agent, task_type ORDER BY agent, task_type",
            tuple(params),
        )
        return [AgentStats(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def recommend(self, task_type: str, *, by: str = "success") -> AgentStats | None:
        """The best agent for ``task_type``, or None when none has run on it.

        ``success``: highest success rate, ties to lower cost, then lower latency.
        ``cost`` / ``latency``: lowest average among agents that succeeded at least once
        (all agents when none did), ties to higher success rate.
        """
        if by not in RANK_BY:
            raise UsageError(f"Unknown ranking {by!r}: use one of {', '.join(RANK_BY)}")
        candidates = self.stats(task_type=task_type)
        if not candidates:
            return None
        if by == "success":
            return min(
                candidates,
                key=lambda s: (-s.success_rate, s.avg_cost_usd, s.avg_latency_s, s.agent),
            )
        if any(s.successes for s in candidates):
            candidates = [s for s in candidates if s.successes]
        field = "avg_cost_usd" if by == "cost" else "avg_latency_s"
        return min(candidates, key=lambda s: (getattr(s, field), -s.success_rate, s.agent))

    # -- runs and traces -----------------------------------------------------------------
    def start_run(self, run_id: str, *, task: str, topology: str, model: str | None) -> None:
        self._exec(
            "INSERT INTO runs (id, task, topology, model, status, started_at) VALUES (?,?,?,?,?,?)",
            (run_id, task, topology, model, "running", now_iso()),
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        allowed = {
            "topology",
            "reason",
            "task_type",
            "status",
            "answer",
            "stop_reason",
            "finished_at",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "latency_s",
            "meta",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}")
        if "meta" in fields:
            fields["meta"] = json.dumps(fields["meta"], default=str)
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def add_event(
        self, run_id: str, seq: int, kind: str, agent: str | None, data: dict[str, Any]
    ) -> None:
        self._exec(
            "INSERT INTO run_events (run_id, seq, ts, kind, agent, data) VALUES (?,?,?,?,?,?)",
            (
                run_id,
                seq,
                now_iso(),
                kind,
                agent,
                json.dumps(data, default=str, ensure_ascii=False),
            ),
        )

    def run(self, run_id: str) -> dict[str, Any]:
        rows = self._exec("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFoundError(
                "run", run_id, hint="See the recorded runs with: toolforge runs list"
            )
        return _run_dict(rows[0])

    def runs(self, *, limit: int = 50) -> builtins.list[dict[str, Any]]:
        rows = self._exec("SELECT * FROM runs ORDER BY started_at DESC, id LIMIT ?", (limit,))
        return [_run_dict(r) for r in rows]

    def events(self, run_id: str) -> builtins.list[dict[str, Any]]:
        self.run(run_id)  # unknown ids fail with NotFoundError
        rows = self._exec(
            "SELECT seq, ts, kind, agent, data FROM run_events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [
            {"seq": r[0], "ts": r[1], "kind": r[2], "agent": r[3], **json.loads(r[4])} for r in rows
        ]

    def export_run(self, run_id: str) -> dict[str, Any]:
        """The run and its full trace as one JSON-serialisable document."""
        return {**self.run(run_id), "events": self.events(run_id)}


def _run_dict(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["meta"] = json.loads(data.get("meta") or "{}")
    return data


def load_run_events(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    """The ordered trace of a run (for ``memory compress --run``).

    Each event is ``{"seq", "ts", "kind", "agent", ...data}``; kinds are ``run_start``,
    ``model_call``, ``tool_call``, ``tool_result``, ``agent_start``, ``agent_end``, ``stop``,
    ``plan``, ``merge`` and ``run_end`` (see :mod:`toolforge.agents.trace`).
    """
    store = AgentStore(settings)
    try:
        return store.events(run_id)
    finally:
        store.close()
