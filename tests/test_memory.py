"""Graph memory: exact results of each query mode on a small fixture graph, Mermaid,
import/export, compression with the scripted model, agent tools, and concurrent writers."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.memory_fixture import build
from toolforge import Forge
from toolforge.errors import LLMError, ModelUnavailable, NotFoundError, UsageError
from toolforge.llm.base import LLM, Completion
from toolforge.memory import MemoryStore
from toolforge.memory.compress import compress_events, read_jsonl
from toolforge.memory.mermaid import graph_mermaid, html_page, safe_label, to_mermaid
from toolforge.memory.models import Node
from toolforge.memory.tools import MEMORY_TOOLS, call_memory_tool, record_events
from toolforge.memory.transfer import export_graph
from toolforge.testing import ScriptedLLM


@pytest.fixture
def store(tmp_path: Path):
    with MemoryStore(tmp_path / "memory.db") as s:
        yield s


@pytest.fixture
def graph(store: MemoryStore):
    return build(store.graph("fixture"))


def labels(hits) -> list[str]:
    return [h.node.label for h in hits]


# -- similarity ----------------------------------------------------------------------------
def test_similarity_ranks_by_bm25_with_scores_and_relations(graph):
    hits = graph.query("YAML configuration file", "similarity")
    assert labels(hits) == [
        "load_config",
        "configuration",
        "settings come from config.yaml",
        "PyYAML",
    ]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert hits[0].scores == {"bm25": hits[0].score}
    assert [(r.direction, r.type, r.node_label) for r in hits[0].relations] == [
        ("out", "implements", "configuration"),
        ("out", "uses", "PyYAML"),
        ("in", "about", "settings come from config.yaml"),
        ("in", "calls", "main"),
    ]


def test_similarity_filters_by_type_edge_type_and_limit(graph):
    assert labels(graph.query("command line parsing")) == [
        "parse_args",
        "argparse",
        "main",
        "argument parsing",
    ]
    assert labels(graph.query("command line parsing", type="entity")) == ["argparse"]
    assert labels(graph.query("command line parsing", edge_types=["implements"])) == [
        "parse_args",
        "argument parsing",
    ]
    assert labels(graph.query("command line parsing", limit=2)) == ["parse_args", "argparse"]
    assert labels(graph.query("cache")) == ["caching", "Redis"]  # stemming: cache ~ caching
    assert graph.query("zebra") == []


# -- pattern ---------------------------------------------------------------------------------
def test_pattern_glob_and_regex_over_labels_and_content(graph):
    assert labels(graph.query("*config*", "pattern")) == [
        "configuration",
        "load_config",
        "main",
        "settings come from config.yaml",
    ]
    assert labels(graph.query("/^(load|parse)_/", "pattern")) == [
        "load_config",
        "parse_args",
        "settings come from config.yaml",
    ]
    assert labels(graph.query("[p]y*", "pattern")) == ["PyYAML"]
    assert labels(graph.query("redis", "pattern")) == [
        "Redis"
    ]  # a glob matches a whole label, any case
    assert labels(graph.query("*config*", "pattern", type="code")) == ["load_config", "main"]
    assert labels(graph.query("*config*", "pattern", edge_types=["answers"])) == [
        "settings come from config.yaml"
    ]
    assert labels(graph.query("100%", "pattern")) == []  # LIKE wildcards in a glob are literal


def test_pattern_rejects_a_bad_regex(graph):
    with pytest.raises(UsageError, match="Bad regular expression") as info:
        graph.query("/([a-/", "pattern")
    assert info.value.exit_code == 2


# -- traverse --------------------------------------------------------------------------------
def depths(hits) -> list[tuple[str, int]]:
    return [(h.node.label, h.depth) for h in hits]


def test_traverse_respects_radius(graph):
    assert depths(graph.query("main", "traverse", radius=0)) == [("main", 0)]
    assert depths(graph.query("main", "traverse", radius=1, direction="out")) == [
        ("main", 0),
        ("load_config", 1),
        ("parse_args", 1),
    ]
    assert depths(graph.query("main", "traverse", radius=2, direction="out")) == [
        ("main", 0),
        ("load_config", 1),
        ("parse_args", 1),
        ("argparse", 2),
        ("argument parsing", 2),
        ("configuration", 2),
        ("PyYAML", 2),
    ]


def test_traverse_respects_edge_types_and_direction(graph):
    assert depths(graph.query("main", "traverse", radius=3, edge_types=["calls"])) == [
        ("main", 0),
        ("load_config", 1),
        ("parse_args", 1),
    ]
    assert depths(graph.query("load_config", "traverse", radius=1, direction="in")) == [
        ("load_config", 0),
        ("main", 1),
        ("settings come from config.yaml", 1),
    ]
    assert depths(graph.query("load_config", "traverse", radius=2, direction="in")) == [
        ("load_config", 0),
        ("main", 1),
        ("settings come from config.yaml", 1),
        ("release 1.0", 2),
    ]
    both = graph.query(
        "load_config",
        "traverse",
        radius=2,
        direction="both",
        edge_types=["uses", "about", "answers"],
    )
    assert depths(both) == [
        ("load_config", 0),
        ("PyYAML", 1),
        ("settings come from config.yaml", 1),
        ("how are settings loaded?", 2),
    ]
    via = {h.node.label: (h.via.type if h.via else None) for h in both}
    assert via == {
        "load_config": None,
        "PyYAML": "uses",
        "settings come from config.yaml": "about",
        "how are settings loaded?": "answers",
    }
    assert depths(graph.query("Redis", "traverse", radius=5, type="concept")) == [("caching", 1)]


def test_nodes_are_named_by_id_label_or_type_label(graph, store):
    assert graph.node(4).label == "load_config"
    assert graph.node("4").label == "load_config"
    assert graph.node("LOAD_CONFIG").id == 4  # labels compare case-insensitively
    graph.add_node("concept", "parse_args", "the idea")
    with pytest.raises(UsageError, match="names 2 nodes"):
        graph.node("parse_args")
    assert graph.node("concept:parse_args").type == "concept"
    assert graph.node("code:parse_args").id == 1


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g: g.add_edge("main", "nowhere", "calls"), "Unknown node: nowhere"),
        (lambda g: g.add_edge("main", "main", "calls"), "two different nodes"),
        (lambda g: g.add_edge("main", "Redis", "Calls Often"), "Bad edge type"),
        (lambda g: g.add_node("widget", "x"), "Unknown node type 'widget'"),
        (lambda g: g.add_node("entity", "  "), "non-empty label"),
        (lambda g: g.query("main", "fuzzy"), "Unknown query mode 'fuzzy'"),
        (lambda g: g.query("main", "similarity", type="widget"), "Unknown node type"),
        (lambda g: g.query("main", "traverse", radius=-1), "--radius must be 0 or more"),
        (lambda g: g.query("main", "traverse", direction="up"), "Unknown direction"),
        (lambda g: g.query("main", "pattern", limit=0), "--limit must be a positive"),
        (lambda g: g.query("   "), "query text is empty"),
        (lambda g: g.query("?!", "similarity"), "has no words"),
        (lambda g: g.query("ghost", "traverse"), "Unknown node: ghost"),
    ],
)
def test_bad_input_is_a_usage_error_exit_2(graph, call, message):
    before = export_graph(graph)
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        call(graph)
    assert info.value.exit_code == 2
    assert export_graph(graph) == before


def test_unknown_graph_is_not_found_but_default_always_exists(store):
    with pytest.raises(NotFoundError, match="Unknown graph: nope"):
        store.graph("nope", create=False)
    assert store.graph("default", create=False).info().nodes == 0
    with pytest.raises(UsageError, match="Bad graph name"):
        store.graph("../etc")
    opened = store.graph("opened")  # opening is not writing: no graph is recorded until a node is
    with pytest.raises(UsageError):
        opened.import_data(
            {
                "nodes": [{"type": "entity", "label": "a"}],
                "edges": [{"from": "a", "to": "b", "type": "uses"}],
            }
        )
    assert store.graphs() == []
    opened.add_node("entity", "a")
    assert [g.name for g in store.graphs()] == ["opened"]


def test_upsert_and_remove(graph):
    node, created = graph.add_node("entity", "redis", "", {"port": 6379})
    assert (node.id, created, node.content, node.meta) == (
        11,
        False,
        "In-memory key value store used as a cache",
        {"port": 6379},
    )
    edge, created = graph.add_edge("Redis", "caching", "implements", 0.5)
    assert (created, edge.weight) == (False, 0.5)
    assert graph.remove_node("main").id == 7
    assert graph.info().edges == 7  # main's three edges went with it
    assert graph.remove_edges("parse_args", "argparse") == 1
    with pytest.raises(NotFoundError):
        graph.remove_edges("parse_args", "argparse")


# -- Mermaid ------------------------------------------------------------------------------------
_ID = r"n\d+"
_LABEL = r'"(?:[^"#<>&`\\]|#(?:quot|amp|lt|gt|\d+);)*"'
_SHAPES = [r"\[{0}\]", r"\({0}\)", r"\[\[{0}\]\]", r"\{{\{{{0}\}}\}}", r"\(\[{0}\]\)", r">{0}\]"]
NODE_LINE = re.compile(rf"^    ({_ID})(?:{'|'.join(s.format(_LABEL) for s in _SHAPES)})$")
EDGE_LINE = re.compile(rf"^    ({_ID}) -->\|{_LABEL}\| ({_ID})$")
CLASSDEF_LINE = re.compile(r"^    classDef [a-z]+ [a-z-]+:#[0-9a-f]{6}(?:,[a-z-]+:#[0-9a-f]{6})*$")
CLASS_LINE = re.compile(rf"^    class ({_ID}(?:,{_ID})*) [a-z]+$")


def check_mermaid(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """A small grammar for the flowchart subset we write: every line must parse, every
    edge end and class member must be a declared node, no node declared twice."""
    lines = text.splitlines()
    assert lines[0] == "graph LR"
    nodes: set[str] = set()
    edges = []
    for line in lines[1:]:
        if line.startswith("    %% "):
            continue
        if m := NODE_LINE.match(line):
            assert m.group(1) not in nodes, f"declared twice: {line}"
            nodes.add(m.group(1))
        elif m := EDGE_LINE.match(line):
            edges.append((m.group(1), m.group(2)))
        elif m := CLASS_LINE.match(line):
            assert set(m.group(1).split(",")) <= nodes
        else:
            assert CLASSDEF_LINE.match(line), f"not valid Mermaid: {line!r}"
    assert {e for pair in edges for e in pair} <= nodes
    return nodes, edges


def test_mermaid_is_valid_and_deterministic(graph, tmp_path):
    text = graph_mermaid(graph)
    nodes, edges = check_mermaid(text)
    assert len(nodes) == 12 and len(edges) == 10
    assert text.splitlines()[1:4] == [
        '    n1[["parse_args"]]',
        '    n2("argument parsing")',
        '    n3["argparse"]',
    ]
    assert '    n7 -->|"calls"| n1' in text.splitlines()
    assert graph_mermaid(graph) == text
    with MemoryStore(tmp_path / "other.db") as other:
        assert graph_mermaid(build(other.graph("fixture"))) == text  # same data, same text


def test_mermaid_neighbourhood_and_hostile_labels(graph):
    near = graph_mermaid(graph, center="load_config", radius=1)
    nodes, edges = check_mermaid(near)
    assert nodes == {"n4", "n5", "n6", "n7", "n9"}
    assert sorted(edges) == [("n4", "n5"), ("n4", "n6"), ("n7", "n4"), ("n9", "n4")]
    graph.add_node("entity", 'say "hi" <b>#1</b> & `x` \\ end]; n1-->n2', "")
    weird = graph_mermaid(graph)
    check_mermaid(weird)
    assert (
        '"say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt; #amp; #96;x#96; #92; end]; n1--#gt;n2"'
        in weird
    )
    assert len(safe_label("x" * 500)) == 60


def test_mermaid_caps_big_graphs_with_a_note(graph):
    nodes = [Node(id=i, type="entity", label=f"e{i}") for i in range(1, 4)]
    assert to_mermaid(nodes, [], note="a\nb").splitlines()[1] == "    %% a b"
    capped = graph_mermaid(graph, max_nodes=5)
    assert (
        capped.splitlines()[1]
        == "    %% showing 5 of 12 nodes; narrow it with --center and --radius"
    )
    nodes_seen, edges = check_mermaid(capped)
    assert nodes_seen == {"n1", "n2", "n3", "n4", "n5"} and sorted(edges) == [
        ("n1", "n2"),
        ("n1", "n3"),
        ("n4", "n5"),
    ]


def test_html_page_embeds_readable_text(graph):
    page = html_page(graph_mermaid(graph), title="memory <fixture>")
    assert (
        page.count("    n7 --&gt;|&quot;calls&quot;| n1") == 2
    )  # drawn by mermaid.js and shown as text
    assert "<title>memory &lt;fixture&gt;</title>" in page
    assert '<pre class="mermaid">\ngraph LR\n' in page


# -- import / export ------------------------------------------------------------------------------
def test_export_import_round_trip(graph, store, tmp_path):
    data = export_graph(graph)
    assert [n["label"] for n in data["nodes"]][:3] == ["parse_args", "argument parsing", "argparse"]
    assert data["edges"][0] == {
        "from": 7,
        "to": 1,
        "type": "calls",
        "weight": 1.0,
        "meta": {},
        "created_at": data["edges"][0]["created_at"],
    }
    copy = store.graph("copy")
    result = copy.import_data(json.loads(json.dumps(data)))
    assert result.to_dict() == {
        "nodes_created": 12,
        "nodes_updated": 0,
        "edges_created": 10,
        "edges_updated": 0,
    }
    again = export_graph(copy)
    ids = {n["id"]: n["label"] for n in data["nodes"]}
    new_ids = {n["id"]: n["label"] for n in again["nodes"]}

    def normal(doc, names):
        return (
            [{k: v for k, v in n.items() if k != "id"} for n in doc["nodes"]],
            [{**e, "from": names[e["from"]], "to": names[e["to"]]} for e in doc["edges"]],
        )

    assert normal(again, new_ids) == normal(data, ids)
    with MemoryStore(tmp_path / "fresh.db") as fresh:  # into an empty store: identical, ids and all
        fresh.graph("fixture").import_data(data)
        assert export_graph(fresh.graph("fixture")) == data
    assert copy.import_data(data).to_dict() == {
        "nodes_created": 0,
        "nodes_updated": 12,
        "edges_created": 0,
        "edges_updated": 10,
    }


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {
                "nodes": [{"type": "entity", "label": "new"}],
                "edges": [{"from": "new", "to": "ghost", "type": "uses"}],
            },
            "edges.0.to: Unknown node: ghost",
        ),
        ({"nodes": [{"type": "gadget", "label": "x"}]}, "nodes.0.type"),
        (
            {"nodes": [{"type": "entity", "label": "a"}, {"type": "entity", "label": "A"}]},
            "a second entity",
        ),
        ({"nodes": [{"type": "entity", "label": "a", "colour": "red"}]}, "nodes.0.colour"),
        ({"format": "other", "nodes": []}, "format: expected"),
        (
            {
                "nodes": [{"type": "entity", "label": "n"}],
                "edges": [{"from": "n", "to": "main", "type": "Bad Type"}],
            },
            "edges.0.type",
        ),
        ([1, 2], "<root>"),
    ],
)
def test_import_is_all_or_nothing(graph, doc, message):
    before = export_graph(graph)
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        graph.import_data(doc, source="bad.json")
    assert info.value.exit_code == 2
    assert export_graph(graph) == before


# -- compression -------------------------------------------------------------------------------------
EVENTS = [
    {"kind": "task", "agent": "planner", "content": "Speed up the test suite of the web service"},
    {"kind": "tool_call", "agent": "worker", "content": "ran pytest: 240 tests in 95 s"},
    {"kind": "decision", "agent": "planner", "content": "Cache fixtures in Redis between tests"},
    {
        "kind": "observation",
        "agent": "worker",
        "content": "pytest-xdist halves the time",
        "retain": True,
    },
    {"kind": "tool_call", "agent": "worker", "content": "ran pytest -n 2: 240 tests in 48 s"},
]


def extraction(nodes, edges) -> str:
    return json.dumps({"nodes": nodes, "edges": edges})


def test_compress_extracts_merges_dedups_and_retains(graph):
    llm = ScriptedLLM(
        [
            extraction(
                [
                    {
                        "type": "entity",
                        "label": "pytest",
                        "content": "test runner; 240 tests took 95 s",
                        "events": [1],
                    },
                    {
                        "type": "concept",
                        "label": "redis",
                        "content": "fixture cache",
                        "events": [2],
                    },
                ],
                [{"from": "pytest", "to": "redis", "type": "uses"}],
            ),
            '{"nodes": [{"type": "plugin", "label": "pytest-xdist"}]}',  # invalid type: re-asked
            extraction(
                [
                    {
                        "type": "code",
                        "label": "pytest-xdist",
                        "content": "parallel test runs",
                        "events": [3, 4],
                    },
                    {
                        "type": "entity",
                        "label": "PyTest",
                        "content": "with -n 2: 48 s",
                        "events": [4],
                    },
                ],
                [
                    {"from": "pytest", "to": "pytest-xdist", "type": "uses"},
                    {"from": "pytest-xdist", "to": "nowhere", "type": "about"},
                ],
            ),
        ]
    )
    result = compress_events(
        graph, llm, EVENTS, source="run-7", retain_kinds=["decision"], chunk_chars=200
    )
    assert result.chunks == 2 and result.attempts == 3
    assert result.nodes_created == ["pytest", "pytest-xdist"]
    assert result.nodes_merged == [
        "redis",
        "PyTest",
    ]  # into the fixture's Redis, and the first pytest
    assert result.edges_created == 2 and result.edges_dropped == ["pytest-xdist -about-> nowhere"]
    assert result.events_retained == [2, 3]
    pytest_node = graph.node("pytest")
    assert pytest_node.content == "test runner; 240 tests took 95 s\nwith -n 2: 48 s"
    assert graph.node("Redis").content == "In-memory key value store used as a cache\nfixture cache"
    kept = graph.node("run-7 #3 observation")
    assert (kept.type, kept.content) == (
        "event",
        "observation (worker): pytest-xdist halves the time",
    )
    assert {(r.direction, r.type, r.node_label) for r in graph.relations(kept.id)} == {
        ("out", "about", "pytest-xdist")
    }
    assert {
        (r.type, r.node_label) for r in graph.relations(graph.node("run-7 #2 decision").id)
    } == {("about", "Redis")}
    assert graph.info().nodes == 12 + 4
    assert (
        "Speed up the test suite" in llm.requests[0].prompt
        and "[4] tool_call (worker)" in llm.requests[1].prompt
    )
    assert "nodes.0.type" in llm.requests[2].prompt  # the re-ask showed the validation error


def test_compress_writes_nothing_when_the_model_stays_unusable(graph):
    before = export_graph(graph)
    llm = ScriptedLLM(["not json", "still not", "nope"])
    with pytest.raises(LLMError):
        compress_events(graph, llm, EVENTS, source="run-8")
    assert export_graph(graph) == before


def test_read_jsonl_reports_every_bad_line(tmp_path):
    good = tmp_path / "ok.jsonl"
    good.write_text('{"kind": "a"}\n\n{"kind": "b"}\n')
    assert read_jsonl(good) == [{"kind": "a"}, {"kind": "b"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "a"}\n{oops\n[1]\n')
    with pytest.raises(
        UsageError,
        match=r"2 bad line\(s\)\n  line 2: not JSON .*\n  line 3: expected a JSON object",
    ):
        read_jsonl(bad)


# -- agent tools ------------------------------------------------------------------------------------
def test_memory_tools_for_agents(store):
    g = store.graph("agents")
    assert [t["function"]["name"] for t in MEMORY_TOOLS] == [
        "memory_add_node",
        "memory_add_edge",
        "memory_query",
    ]
    assert call_memory_tool(
        g, "memory_add_node", {"type": "entity", "label": "Redis", "content": "a cache"}
    ) == {"id": 1, "type": "entity", "label": "Redis", "created": True}
    call_memory_tool(g, "memory_add_node", {"type": "concept", "label": "caching"})
    assert (
        call_memory_tool(g, "memory_add_edge", {"from": "Redis", "to": 2, "type": "implements"})[
            "created"
        ]
        is True
    )
    found = call_memory_tool(g, "memory_query", {"text": "cache"})
    assert [r["label"] for r in found["results"]] == [
        "caching",
        "Redis",
    ]  # a label match outranks content
    assert found["results"][1]["relations"] == ["-implements-> caching"]
    walk = call_memory_tool(
        g, "memory_query", {"text": "caching", "mode": "traverse", "direction": "in"}
    )
    assert [(r["label"], r["depth"]) for r in walk["results"]] == [("caching", 0), ("Redis", 1)]
    assert call_memory_tool(g, "memory_add_edge", {"from": "Redis", "to": "ghost", "type": "uses"})[
        "error"
    ].startswith("Unknown node: ghost")
    assert (
        "Missing argument(s): label"
        in call_memory_tool(g, "memory_add_node", {"type": "entity"})["error"]
    )
    assert (
        "Unknown argument(s) colour"
        in call_memory_tool(g, "memory_add_node", {"type": "entity", "label": "x", "colour": 1})[
            "error"
        ]
    )
    with pytest.raises(NotFoundError):
        call_memory_tool(g, "memory_delete_everything", {})


def test_record_events_is_idempotent(store):
    g = store.graph("runs")
    ids = record_events(g, "r1", EVENTS[:2])
    assert record_events(g, "r1", EVENTS[:2]) == ids
    assert [g.node(i).label for i in ids] == ["run r1", "run r1 #0 task", "run r1 #1 tool_call"]
    walk = g.query("run r1", "traverse", direction="in", edge_types=["part_of"])
    assert [h.node.label for h in walk] == ["run r1", "run r1 #0 task", "run r1 #1 tool_call"]


# -- hybrid ranking ---------------------------------------------------------------------------------------
class WordVectors(LLM):
    """A fake embedding model: words of one meaning share a dimension."""

    model = "fake-embed"
    MEANINGS = [
        {"car", "automobile", "vehicle"},
        {"fruit", "apple", "banana"},
        {"cache", "redis", "memory"},
    ]

    def complete(self, messages, **kwargs) -> Completion:  # noqa: ANN001, ANN003
        raise NotImplementedError

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls = getattr(self, "calls", 0) + 1
        out = []
        for text in texts:
            words = set(re.findall(r"\w+", text.lower()))
            out.append([float(len(words & meaning)) for meaning in self.MEANINGS] + [0.1])
        return out


def test_hybrid_ranking_finds_meaning_without_shared_words(tmp_path):
    llm = WordVectors()
    with MemoryStore(tmp_path / "h.db", embedder=llm.embed, embed_model="fake-embed") as s:
        g = s.graph("h")
        g.add_node("entity", "sedan", "a car with four doors")
        g.add_node("entity", "orchard", "where an apple grows")
        g.add_node("entity", "automobile club", "members")
        hits = g.query("automobile vehicle")
        assert [h.node.label for h in hits][:2] == ["automobile club", "sedan"]
        sedan = hits[1]
        assert "bm25" not in sedan.scores and sedan.scores["cosine"] > 0.9
        assert hits[0].scores["bm25"] > 0 and hits[0].score > sedan.score
        calls = llm.calls
        g.query("fruit")
        assert llm.calls == calls + 1  # vectors are stored: only the query is embedded again
        assert s.rows("SELECT count(*) FROM memory_vectors")[0][0] == 3
        g.add_node("entity", "sedan", "a banana")  # new content: its vector is dropped and redone
        assert s.rows("SELECT count(*) FROM memory_vectors")[0][0] == 2
        fruit = {h.node.label: h.scores["cosine"] for h in g.query("fruit")}
        assert fruit["sedan"] == fruit["orchard"] > 0.9 > fruit["automobile club"]
        assert llm.calls == calls + 3 and s.rows("SELECT count(*) FROM memory_vectors")[0][0] == 3


def test_a_chat_only_model_cannot_embed(tmp_path):
    llm = ScriptedLLM()
    with MemoryStore(tmp_path / "h.db", embedder=llm.embed, embed_model="scripted") as s:
        g = s.graph("h")
        g.add_node("entity", "sedan", "a car")
        with pytest.raises(ModelUnavailable, match="cannot embed text") as info:
            g.query("car")
        assert info.value.exit_code == 3


def test_forge_memory_opens_and_closes_graphs(tmp_path):
    forge = Forge()
    g = forge.memory("notes")
    g.add_node("concept", "idea")
    assert forge.memory("notes").node("idea").id == 1
    assert (forge.settings.home / "memory.db").is_file()
    forge.close()
    with pytest.raises(sqlite3.ProgrammingError):
        g.node("idea")
    with Forge() as again:
        assert [i.name for i in again.memory_store.graphs()] == ["notes"]


# -- concurrency -------------------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from toolforge.memory import MemoryStore
    path, worker = sys.argv[1], int(sys.argv[2])
    with MemoryStore(path) as store:
        g = store.graph("shared")
        g.add_node("concept", "hub")
        for i in range(40):
            g.add_node("entity", f"w{worker}-{i}", f"written by worker {worker}")
            g.add_edge(f"w{worker}-{i}", "hub", "part_of")
            g.add_node("concept", "hub", f"touched by {worker}")
""")


def test_concurrent_writers_do_not_corrupt_the_graph(tmp_path):
    path = tmp_path / "shared.db"
    MemoryStore(path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w)], stderr=subprocess.PIPE, text=True
        )
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with MemoryStore(path) as s:
        g = s.graph("shared", create=False)
        info = g.info()
        assert (info.nodes, info.edges, info.by_type) == (161, 160, {"concept": 1, "entity": 160})
        assert s.rows("PRAGMA integrity_check")[0][0] == "ok"
        s.conn.execute("INSERT INTO memory_fts (memory_fts, rank) VALUES ('integrity-check', 1)")
        assert len(g.query("worker", limit=50)) == 50
        walk = g.query("hub", "traverse", direction="in")
        assert len(walk) == 161 and {h.depth for h in walk} == {0, 1}
