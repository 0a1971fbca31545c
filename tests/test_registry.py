"""The registry: versions, listing, removal, export — on a real SQLite index and real folders."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from toolforge.config import load_settings
from toolforge.errors import NotFoundError, UsageError
from toolforge.registry import Registry, parse_ref
from toolforge.spec import TestReport, load_tool_dir


@pytest.fixture
def registry(toolforge_home: Path) -> Registry:
    settings = load_settings()
    reg = Registry(settings.tools_dir, settings.db_path)
    yield reg
    reg.close()


def test_add_list_show(registry: Registry) -> None:
    for name in ("word-count", "slugify", "counter"):
        record, created = registry.add_dir(EXAMPLES / name)
        assert created and record.version == 1
    assert [r.name for r in registry.list()] == ["counter", "slugify", "word-count"]
    record = registry.get("slugify")
    assert record.spec.language.value == "typescript"
    assert (record.path / "main.ts").read_text() == (EXAMPLES / "slugify" / "main.ts").read_text()


def test_changed_tool_gets_a_new_version_and_old_one_stays(registry: Registry, example) -> None:
    src = example("word-count")
    registry.add_dir(src)
    again, created = registry.add_dir(src)
    assert (again.version, created) == (1, False)
    (src / "main.py").write_text((src / "main.py").read_text() + "\n# v2\n")
    v2, created = registry.add_dir(src)
    assert (v2.version, created) == (2, True)
    assert registry.versions("word-count") == [1, 2]
    assert "# v2" not in registry.get("word-count", 1).bundle.source
    assert registry.get("word-count").version == 2


def test_remove_version_and_all(registry: Registry, example) -> None:
    src = example("word-count")
    registry.add_dir(src)
    (src / "main.py").write_text((src / "main.py").read_text() + "\n# v2\n")
    registry.add_dir(src)
    assert registry.remove("word-count", 1) == [1]
    assert registry.versions("word-count") == [2]
    assert not (registry.tools_dir / "word-count" / "1").exists()
    assert registry.remove("word-count") == [2]
    assert not (registry.tools_dir / "word-count").exists()
    with pytest.raises(NotFoundError):
        registry.get("word-count")


def test_unknown_tool_and_version(registry: Registry) -> None:
    registry.add_dir(EXAMPLES / "counter")
    with pytest.raises(NotFoundError, match="Unknown tool: nope"):
        registry.get("nope")
    with pytest.raises(NotFoundError) as info:
        registry.get("counter", 9)
    assert "Versions of counter: 1" in str(info.value)


def test_report_and_meta_are_stored(registry: Registry) -> None:
    bundle = load_tool_dir(EXAMPLES / "word-count")
    report = TestReport(tool="word-count", version=1, backend="docker")
    record, _ = registry.add(bundle, report=report, meta={"requirement": "count words"})
    again = registry.get("word-count")
    assert again.report is not None and again.report.backend == "docker"
    assert again.meta == {"requirement": "count words"}
    assert (record.path / "report.json").is_file()


def test_export_roundtrip_and_refuses_non_empty(registry: Registry, tmp_path: Path) -> None:
    registry.add_dir(EXAMPLES / "counter")
    out = registry.export("counter", tmp_path / "out")
    assert load_tool_dir(out).source == load_tool_dir(EXAMPLES / "counter").source
    with pytest.raises(UsageError, match="not empty"):
        registry.export("counter", out)


def test_index_is_sqlite_with_recorded_migrations(registry: Registry) -> None:
    registry.add_dir(EXAMPLES / "counter")
    conn = sqlite3.connect(load_settings().db_path)
    assert conn.execute("SELECT step FROM _migrations WHERE component='registry'").fetchall() == [
        (1,)
    ]
    assert conn.execute("SELECT name, version FROM tools").fetchall() == [("counter", 1)]


def test_parse_ref() -> None:
    assert parse_ref("tool") == ("tool", None)
    assert parse_ref("tool@3") == ("tool", 3)
    for bad in ("tool@", "tool@x", "tool@0"):
        with pytest.raises(UsageError):
            parse_ref(bad)
