"""``toolforge memory …``: exact output lines and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.memory_fixture import build
from toolforge import Forge
from toolforge.cli.app import main
from toolforge.testing import ScriptedLLM


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as info:
        main(["memory", *args])
    captured = capsys.readouterr()
    return info.value.code, captured.out.splitlines(), captured.err


@pytest.fixture
def fixture_graph() -> None:
    with Forge() as forge:
        build(forge.memory())


def test_add_show_and_remove(capsys):
    assert run(
        capsys, "add-node", "--type", "code", "--label", "parse_args", "--content", "Parses argv"
    ) == (0, ['✓ Added #1 code "parse_args"'], "")
    assert run(
        capsys,
        "add-node",
        "-t",
        "concept",
        "-l",
        "argument parsing",
        "--meta",
        '{"source": "docs"}',
    )[1] == ['✓ Added #2 concept "argument parsing"']
    assert run(capsys, "add-node", "-t", "code", "-l", "PARSE_ARGS", "-c", "Parses sys.argv")[
        1
    ] == ['✓ Updated #1 code "parse_args"']
    assert run(
        capsys,
        "add-edge",
        "--from",
        "parse_args",
        "--to",
        "2",
        "--type",
        "implements",
        "--weight",
        "0.5",
    )[1] == [
        '✓ Added #1 code "parse_args" -implements-> #2 concept "argument parsing" (weight 0.5)'
    ]
    code, out, _ = run(capsys, "show", "argument parsing")
    assert code == 0
    assert out[0] == '#2 concept "argument parsing"'
    assert out[1] == 'meta: {"source": "docs"}'
    assert out[3:] == ["relations: 1", '  <-implements- code "parse_args" (#1)']
    code, out, _ = run(capsys, "show", "1", "--json")
    data = json.loads("\n".join(out))
    assert (data["label"], data["content"], data["relations"][0]["node_label"]) == (
        "parse_args",
        "Parses sys.argv",
        "argument parsing",
    )
    assert run(capsys, "remove-edge", "--from", "parse_args", "--to", "argument parsing")[:2] == (
        0,
        ["✓ Removed 1 edge(s)"],
    )
    assert run(capsys, "remove", "parse_args")[:2] == (0, ['✓ Removed #1 code "parse_args"'])
    assert run(capsys, "stats")[:2] == (0, ["default: 1 node(s), 0 edge(s)", "  nodes: concept 1"])


def test_query_modes_print_exact_lines(capsys, fixture_graph):
    code, out, _ = run(capsys, "query", "cache")
    assert code == 0
    assert out == [
        '1. #12 concept "caching"  score 2.553',
        "   Keeping computed results to answer faster",
        '   <-implements- entity "Redis" (#11)',
        '2. #11 entity "Redis"  score 1.42',
        "   In-memory key value store used as a cache",
        '   -implements-> concept "caching" (#12)',
    ]
    assert run(capsys, "query", "*config*", "--mode", "pattern", "--type", "code")[1] == [
        '1. #4 code "load_config"',
        "   Reads the YAML configuration file from the home directory",
        '   -implements-> concept "configuration" (#6); -uses-> entity "PyYAML" (#5); '
        '<-about- answer "settings come from config.yaml" (#9); <-calls- code "main" (#7)',
        '2. #7 code "main"',
        "   Entry point: calls parse_args and load_config, then runs the command",
        '   -calls-> code "load_config" (#4); -calls-> code "parse_args" (#1); <-about- event "release 1.0" (#10)',
    ]
    code, out, _ = run(
        capsys,
        "query",
        "main",
        "-m",
        "traverse",
        "-r",
        "2",
        "-e",
        "calls",
        "-e",
        "uses",
        "-d",
        "out",
        "--json",
    )
    assert code == 0
    assert [
        (h["label"], h["depth"], h["via"] and h["via"]["type"]) for h in json.loads("\n".join(out))
    ] == [
        ("main", 0, None),
        ("load_config", 1, "calls"),
        ("parse_args", 1, "calls"),
        ("argparse", 2, "uses"),
        ("PyYAML", 2, "uses"),
    ]
    assert run(capsys, "query", "zebra") == (0, ["No matches."], "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["add-edge", "--from", "main", "--to", "ghost", "--type", "calls"],
            "Error: Unknown node: ghost",
        ),
        (
            ["query", "x", "--mode", "fuzzy"],
            "Error: Unknown query mode 'fuzzy': use one of similarity|pattern|traverse",
        ),
        (["query", "x", "--type", "gadget"], "Error: Unknown node type 'gadget'"),
        (["add-node", "--type", "gadget", "--label", "x"], "Error: Unknown node type 'gadget'"),
        (
            ["query", "main", "--mode", "traverse", "--radius", "-1"],
            "Error: --radius must be 0 or more, not -1",
        ),
        (["query", "x", "--graph", "nope"], "Error: Unknown graph: nope"),
        (
            ["add-node", "-t", "entity", "-l", "x", "--meta", "[1]"],
            "Error: --meta must be a JSON object",
        ),
        (["compress"], "Error: Give exactly one of --run RUN_ID or --events FILE.jsonl"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(capsys, fixture_graph, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.splitlines()[0].startswith(message)
    assert out == []


def test_export_import_and_malformed_import(capsys, fixture_graph, tmp_path: Path):
    dest = tmp_path / "g.json"
    assert run(capsys, "export", str(dest))[:2] == (
        0,
        [f"✓ Exported 12 node(s) and 10 edge(s) of default to {dest}"],
    )
    assert run(capsys, "import", str(dest), "--graph", "copy")[:2] == (
        0,
        [f"✓ Imported {dest} into copy: 12 node(s) added, 0 updated, 10 edge(s) added, 0 updated"],
    )
    bad = tmp_path / "bad.json"
    doc = json.loads(dest.read_text())
    doc["nodes"].append({"type": "entity", "label": "orphan"})
    doc["edges"].append({"from": "orphan", "to": "ghost", "type": "uses"})
    bad.write_text(json.dumps(doc))
    code, out, err = run(capsys, "import", str(bad), "--graph", "copy")
    assert code == 2
    assert err.splitlines() == [
        f"Error: Cannot import {bad}: 1 problem(s); nothing was imported",
        "  edges.10.to: Unknown node: ghost",
    ]
    assert (
        run(capsys, "import", str(bad), "--graph", "fresh")[0] == 2
    )  # leaves no empty graph behind
    bad.write_text("{not json")
    assert run(capsys, "import", str(bad))[0] == 2
    assert run(capsys, "graphs")[1] == [
        "copy: 12 node(s), 10 edge(s)",
        "default: 12 node(s), 10 edge(s)",
    ]
    assert json.loads("\n".join(run(capsys, "graphs", "--json")[1]))[0]["by_type"]["code"] == 3


def test_visualize_prints_mermaid_and_writes_html(capsys, fixture_graph, tmp_path: Path):
    code, out, _ = run(capsys, "visualize", "--center", "Redis", "--radius", "1")
    assert (code, out) == (
        0,
        [
            "graph LR",
            '    n11["Redis"]',
            '    n12("caching")',
            '    n11 -->|"implements"| n12',
            "    classDef concept fill:#e6f4ea,stroke:#3c8d5a",
            "    classDef entity fill:#e8f0fe,stroke:#4a6fa5",
            "    class n12 concept",
            "    class n11 entity",
        ],
    )
    page = tmp_path / "g.html"
    assert run(capsys, "visualize", "--html", str(page))[:2] == (0, [f"✓ Wrote {page}"])
    assert "n11 --&gt;|&quot;implements&quot;| n12" in page.read_text()


def test_compress_events_file(
    capsys, fixture_graph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    events = tmp_path / "session.jsonl"
    events.write_text(
        '{"kind": "decision", "content": "Use Redis as the fixture cache"}\n'
        '{"kind": "note", "content": "pytest is the runner"}\n'
    )
    reply = {
        "nodes": [
            {"type": "entity", "label": "pytest", "content": "the runner"},
            {"type": "entity", "label": "redis", "content": "fixture cache", "events": [0]},
        ],
        "edges": [{"from": "pytest", "to": "Redis", "type": "uses"}],
    }
    llm = ScriptedLLM([json.dumps(reply)])
    monkeypatch.setattr(Forge, "llm", property(lambda self: llm))
    code, out, _ = run(capsys, "compress", "--events", str(events), "--retain", "decision")
    assert (code, out) == (
        0,
        [
            "✓ Compressed 2 event(s) of session into default: 1 node(s) added, 1 merged, 1 edge(s) added, 1 event(s) kept"
        ],
    )
    code, out, _ = run(capsys, "show", "session #0 decision")
    assert out[-1] == '  -about-> entity "Redis" (#11)'


def test_compress_a_recorded_run(capsys, fixture_graph, monkeypatch: pytest.MonkeyPatch):
    from toolforge.agents.store import AgentStore
    from toolforge.config import load_settings

    store = AgentStore(load_settings())
    store.start_run("run-42", task="speed up tests", topology="single", model="scripted")
    store.add_event("run-42", 1, "tool_call", "worker", {"name": "pytest", "arguments": {"n": 2}})
    store.add_event(
        "run-42",
        2,
        "model_call",
        "worker",
        {"input": [{"role": "user", "content": "long"}], "output": "pytest-xdist halves the time"},
    )
    store.close()
    llm = ScriptedLLM(
        [
            json.dumps(
                {
                    "nodes": [
                        {"type": "entity", "label": "pytest-xdist", "content": "halves the time"}
                    ]
                }
            )
        ]
    )
    monkeypatch.setattr(Forge, "llm", property(lambda self: llm))
    assert run(capsys, "compress", "--run", "run-42", "--json")[0] == 0
    assert (
        '[0] tool_call (worker): {"arguments": {"n": 2}, "name": "pytest"}'
        in llm.requests[0].prompt
    )
    assert "[1] model_call (worker): pytest-xdist halves the time" in llm.requests[0].prompt
    assert run(capsys, "compress", "--run", "run-404")[:2] == (2, [])
