"""The tool registry: versioned tool folders under TOOLFORGE_HOME, indexed in SQLite."""

from __future__ import annotations

import builtins
import json
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from toolforge import db
from toolforge.errors import NotFoundError, UsageError
from toolforge.spec import TestReport, ToolBundle, load_tool_dir, write_tool_dir

MIGRATIONS = [
    """
    CREATE TABLE tools (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        language TEXT NOT NULL,
        description TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        path TEXT NOT NULL,
        created_at TEXT NOT NULL,
        image TEXT,
        report TEXT,
        meta TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (name, version)
    );
    CREATE INDEX tools_hash ON tools (name, content_hash);
    """,
]


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name"`` → (name, None); ``"name@3"`` → (name, 3)."""
    name, sep, version = ref.partition("@")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise UsageError(f"Bad tool reference {ref!r}: expected NAME or NAME@VERSION (VERSION ≥ 1)")
    return name, int(version)


@dataclass
class ToolRecord:
    bundle: ToolBundle
    path: Path
    created_at: str
    content_hash: str
    image: str | None = None
    report: TestReport | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.bundle.spec.name

    @property
    def version(self) -> int:
        return self.bundle.spec.version

    @property
    def spec(self):  # noqa: ANN201 - ToolSpec
        return self.bundle.spec

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "language": self.spec.language.value,
            "description": self.spec.description,
            "stateful": self.spec.stateful,
            "created_at": self.created_at,
            "tests": self.report.summary if self.report else None,
        }


class Registry:
    """Add, list, show, version, remove and export tools."""

    def __init__(self, tools_dir: Path, db_path: Path) -> None:
        self.tools_dir = Path(tools_dir)
        self.tools_dir.mkdir(parents=True, exist_ok=True)
        self._conn = db.connect(db_path)
        db.migrate(self._conn, "registry", MIGRATIONS)

    def close(self) -> None:
        self._conn.close()

    # -- writing ------------------------------------------------------------------
    def add(
        self,
        bundle: ToolBundle,
        *,
        report: TestReport | None = None,
        meta: dict[str, Any] | None = None,
        image: str | None = None,
    ) -> tuple[ToolRecord, bool]:
        """Register ``bundle``; return (record, created). Unchanged content is not re-added."""
        content_hash = bundle.content_hash()
        latest = self._latest_row(bundle.name)
        if (
            latest is not None
            and latest["content_hash"] == content_hash
            and report is None
            and not meta
        ):
            return self._record(latest), False
        version = (latest["version"] + 1) if latest is not None else 1
        bundle = bundle.with_version(version)
        if report is not None:
            report = report.model_copy(update={"version": version})
        final = self.tools_dir / bundle.name / str(version)
        staging = Path(tempfile.mkdtemp(prefix=f".{bundle.name}-", dir=self.tools_dir))
        try:
            write_tool_dir(bundle, staging)
            if report is not None:
                (staging / "report.json").write_text(
                    report.model_dump_json(indent=2), encoding="utf-8"
                )
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self._conn.execute(
                "INSERT INTO tools (name, version, language, description, content_hash, path,"
                " created_at, image, report, meta) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    bundle.name,
                    version,
                    bundle.spec.language.value,
                    bundle.spec.description,
                    content_hash,
                    str(final),
                    now,
                    image,
                    report.model_dump_json() if report else None,
                    json.dumps(meta or {}),
                ),
            )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if final.exists() and self._row(bundle.name, version) is None:
                shutil.rmtree(final, ignore_errors=True)
            raise
        return self.get(bundle.name, version), True

    def add_dir(self, path: Path | str, **kwargs: Any) -> tuple[ToolRecord, bool]:
        return self.add(load_tool_dir(path), **kwargs)

    def set_report(self, name: str, version: int, report: TestReport) -> None:
        record = self.get(name, version)
        (record.path / "report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        self._conn.execute(
            "UPDATE tools SET report = ? WHERE name = ? AND version = ?",
            (report.model_dump_json(), name, version),
        )

    def set_image(self, name: str, version: int, image: str) -> None:
        self._conn.execute(
            "UPDATE tools SET image = ? WHERE name = ? AND version = ?", (image, name, version)
        )

    def remove(self, name: str, version: int | None = None) -> list[int]:
        """Remove one version, or every version; return the versions removed."""
        versions = [version] if version is not None else self.versions(name)
        if not versions or (version is not None and self._row(name, version) is None):
            raise self._not_found(name, version)
        for v in versions:
            self._conn.execute("DELETE FROM tools WHERE name = ? AND version = ?", (name, v))
            shutil.rmtree(self.tools_dir / name / str(v), ignore_errors=True)
        if not self.versions(name):
            shutil.rmtree(self.tools_dir / name, ignore_errors=True)
        return versions

    def export(self, name: str, dest: Path | str, version: int | None = None) -> Path:
        record = self.get(name, version)
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise UsageError(
                f"{dest} exists and is not empty", hint="Choose a new or empty folder."
            )
        return write_tool_dir(record.bundle, dest)

    # -- reading ------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> ToolRecord:
        row = self._latest_row(name) if version is None else self._row(name, version)
        if row is None:
            raise self._not_found(name, version)
        return self._record(row)

    def resolve(self, ref: str) -> ToolRecord:
        name, version = parse_ref(ref)
        return self.get(name, version)

    def exists(self, name: str) -> bool:
        return self._latest_row(name) is not None

    def versions(self, name: str) -> list[int]:
        rows = self._conn.execute(
            "SELECT version FROM tools WHERE name = ? ORDER BY version", (name,)
        )
        return [r[0] for r in rows]

    def list(self) -> list[ToolRecord]:
        rows = self._conn.execute(
            "SELECT t.* FROM tools t JOIN (SELECT name, MAX(version) v FROM tools GROUP BY name) m"
            " ON t.name = m.name AND t.version = m.v ORDER BY t.name"
        )
        return [self._record(r) for r in rows]

    def search(self, query: str) -> builtins.list[ToolRecord]:
        words = [w.lower() for w in query.split() if w]
        tools = self.list()
        if not words:
            return tools
        scored = []
        for record in tools:
            text = f"{record.name} {record.spec.description}".lower()
            score = sum(w in text for w in words)
            if score:
                scored.append((-score, record.name, record))
        return [r for *_, r in sorted(scored, key=lambda t: (t[0], t[1]))]

    # -- internals ----------------------------------------------------------------
    def _row(self, name: str, version: int) -> sqlite3.Row | None:
        cur = self._conn.execute(
            "SELECT * FROM tools WHERE name = ? AND version = ?", (name, version)
        )
        return cur.fetchone()

    def _latest_row(self, name: str) -> sqlite3.Row | None:
        cur = self._conn.execute(
            "SELECT * FROM tools WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
        )
        return cur.fetchone()

    def _record(self, row: sqlite3.Row) -> ToolRecord:
        path = Path(row["path"])
        bundle = load_tool_dir(path)
        bundle = bundle.with_version(row["version"])
        report = TestReport.model_validate_json(row["report"]) if row["report"] else None
        return ToolRecord(
            bundle=bundle,
            path=path,
            created_at=row["created_at"],
            content_hash=row["content_hash"],
            image=row["image"],
            report=report,
            meta=json.loads(row["meta"] or "{}"),
        )

    def _not_found(self, name: str, version: int | None) -> NotFoundError:
        if version is not None and self.versions(name):
            return NotFoundError(
                "tool version",
                f"{name}@{version}",
                hint=f"Versions of {name}: {', '.join(map(str, self.versions(name)))}",
            )
        return NotFoundError("tool", name, hint="See the registered tools with: toolforge list")
