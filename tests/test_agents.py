"""Agents: the loop, the toolbox, topologies, budgets, the performance registry and traces.

The model is the scripted fake (its requests are asserted on); tools run in the real
sandbox (``docker`` tests) — schema errors, meta-tools and budgets need no container.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from toolforge import Forge
from toolforge.agents import AgentSpec, SolveRequest, load_run_events, parse_action
from toolforge.agents.coordinator import Coordinator
from toolforge.agents.toolbox import function_name
from toolforge.errors import UsageError
from toolforge.llm.base import Completion, ToolCall, Usage
from toolforge.testing import Request, ScriptedLLM, tool_call


def classify(label: str) -> str:
    return json.dumps({"task_type": label})


def plan(*steps: str) -> str:
    return json.dumps(
        {
            "subtasks": [
                {
                    "task": s,
                    "task_type": f"type-{i}",
                    "agent_name": f"Step {i} agent",
                    "role": f"You are specialist {i}.",
                }
                for i, s in enumerate(steps, 1)
            ]
        }
    )


def answer(text: str, cost: float = 0.0, tokens: tuple[int, int] = (10, 5)) -> Completion:
    return Completion(text=text, usage=Usage(tokens[0], tokens[1], cost))


def call(
    name: str,
    args: dict[str, Any] | str,
    *,
    cost: float = 0.0,
    tokens: tuple[int, int] = (10, 5),
    id: str = "c1",
) -> Completion:
    return Completion(
        tool_calls=[ToolCall(id, name, args)], usage=Usage(tokens[0], tokens[1], cost)
    )


@pytest.fixture
def make_forge():
    forges: list[Forge] = []

    def make(*replies: Any, supports_tools: bool = True) -> tuple[Forge, ScriptedLLM]:
        llm = ScriptedLLM(replies, supports_tools=supports_tools)
        forge = Forge(llm=llm)
        forges.append(forge)
        return forge, llm

    yield make
    for f in forges:
        f.close()


@pytest.fixture
def cli_with(cli, monkeypatch: pytest.MonkeyPatch):
    """The CLI with its Forge given the scripted model."""

    def bind(*replies: Any) -> tuple[Any, ScriptedLLM]:
        llm = ScriptedLLM(replies)
        monkeypatch.setattr("toolforge.cli.agents.forge", lambda: Forge(llm=llm))
        return cli, llm

    return bind


def kinds(forge: Forge, run_id: str) -> list[str]:
    return [e["kind"] for e in forge.agents.events(run_id)]


# -- the loop and the toolbox ------------------------------------------------------------
def test_schema_errors_go_back_to_the_model_not_raised(make_forge) -> None:
    forge, llm = make_forge(
        classify("text-analysis"),
        call("word_count", {"txt": "a b"}, id="c1"),
        call("word-count", "{not json", id="c2"),
        call("nope", {}, id="c3"),
        call("list_tools", {"query": 5}, id="c4"),
        answer("gave up politely"),
    )
    forge.add(
        EXAMPLES / "word-count", test=False
    )  # registry only: validation fails before the sandbox
    result = forge.solve("count words", topology="single")
    assert (result.status, result.answer) == ("ok", "gave up politely")
    tools_offered = {t["function"]["name"]: t["function"] for t in llm.requests[1].tools}
    assert tools_offered["word_count"]["parameters"]["required"] == ["text"]
    assert {"generate_tool", "list_tools", "submit_job", "job_status", "memory_query"} <= set(
        tools_offered
    )
    tool_msgs = [m for m in llm.requests[-1].messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["c1", "c2", "c3", "c4"]
    errors = [json.loads(m["content"]) for m in tool_msgs]
    assert all(e["ok"] is False for e in errors)
    assert (
        "Invalid arguments for word-count" in errors[0]["error"]
        and "'text' is a required property" in errors[0]["error"]
    )
    assert "not valid JSON" in errors[1]["error"]
    assert errors[2]["error"].startswith("Unknown tool 'nope'")
    assert "5 is not of type 'string'" in errors[3]["error"]
    assert result.agents[0].tool_calls == 4


def test_function_names_are_sanitised_and_mapped_back(make_forge) -> None:
    assert function_name("word-count") == "word_count"
    forge, llm = make_forge(classify("x"), call("list_tools", {"query": "count"}), answer("done"))
    forge.add(EXAMPLES / "word-count", test=False)
    forge.add(EXAMPLES / "slugify", test=False)
    forge.solve("find a tool", topology="single")
    listed = json.loads(llm.requests[-1].messages[-1]["content"])
    assert listed == {
        "ok": True,
        "result": [
            {
                "name": "word_count",
                "description": "Count the words, lines and characters of a text.",
                "callable": True,
            }
        ],
    }


def test_allowed_tools_limit_what_is_offered(make_forge) -> None:
    forge, llm = make_forge(classify("x"), answer("ok"))
    forge.add(EXAMPLES / "word-count", test=False)
    forge.add(EXAMPLES / "slugify", test=False)
    forge.agents.add(
        AgentSpec(
            name="slugger", description="slugs", role="You slug.", tools=["slugify", "list_tools"]
        )
    )
    forge.solve("slug it", topology="single", agent="slugger")
    assert [t["function"]["name"] for t in llm.requests[1].tools] == ["slugify", "list_tools"]
    assert llm.requests[1].messages[0]["content"].startswith("You slug.")


def test_json_action_fallback_for_models_without_tool_calling(make_forge) -> None:
    forge, llm = make_forge(
        classify("x"),
        'Sure. {"action": "call", "tool": "list_tools", "args": {"query": ""}}',
        '{"action": "call", "tool": ',  # broken: shown its problem, counts a step
        '```json\n{"action": "final", "answer": "no tools yet"}\n```',
        supports_tools=False,
    )
    result = forge.solve("what tools exist?", topology="single")
    assert (result.status, result.answer, result.agents[0].steps) == ("ok", "no tools yet", 3)
    step = llm.requests[1]
    assert step.tools is None and step.response_format["json_schema"]["name"] == "AgentAction"
    assert '{"action": "final", "answer": "<your final answer>"}' in step.messages[0]["content"]
    assert "- list_tools: Search the registered tools" in step.messages[0]["content"]
    assert (
        llm.requests[2]
        .messages[-1]["content"]
        .startswith('Result of list_tools: {"ok": true, "result": []}')
    )
    assert "not a valid action" in llm.requests[3].messages[-1]["content"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"action": "call", "tool": "t", "args": {"a": 1}}', ("call", ("t", {"a": 1}))),
        ('{"tool": "t"}', ("call", ("t", {}))),
        ('{"action": "final", "answer": 42}', ("final", "42")),
        ('{"answer": "x"}', ("final", "x")),
        ("The answer is 9.", ("final", "The answer is 9.")),
    ],
)
def test_parse_action(text: str, expected: tuple[str, Any]) -> None:
    assert parse_action(text) == expected


def test_parse_action_rejects_unknown_actions() -> None:
    kind, problem = parse_action('{"action": "dance"}')
    assert kind == "invalid" and '"call" or "final"' in problem


# -- budgets -----------------------------------------------------------------------------
def test_max_steps_stop_is_recorded(make_forge) -> None:
    forge, llm = make_forge(classify("x"), *[call("list_tools", {}, id=f"c{i}") for i in range(3)])
    result = forge.solve("loop forever", topology="single", max_steps=3)
    agent = result.agents[0]
    assert (result.status, agent.status, agent.stop_reason, agent.steps, agent.tool_calls) == (
        "stopped",
        "stopped",
        "max_steps",
        3,
        3,
    )
    assert llm.remaining == 0
    stops = [e for e in forge.agents.events(result.run_id) if e["kind"] == "stop"]
    assert [(s["reason"], s["steps"]) for s in stops] == [("max_steps", 3)]
    assert forge.agents.run(result.run_id)["status"] == "stopped"
    assert [(s.runs, s.successes) for s in forge.agents.stats()] == [(1, 0)]


def test_token_budget_stops_the_agent(make_forge) -> None:
    forge, llm = make_forge(
        classify("x"), *[call("list_tools", {}, tokens=(600, 100)) for _ in range(2)]
    )
    result = forge.solve("spend tokens", topology="single", max_tokens=1000)
    agent = result.agents[0]
    assert (agent.stop_reason, agent.steps, agent.usage.total_tokens) == ("max_tokens", 2, 1400)


def test_wall_time_budget_stops_the_agent(make_forge) -> None:
    def slow(request: Request) -> Completion:
        time.sleep(0.3)
        return call("list_tools", {})

    forge, llm = make_forge(classify("x"), slow, slow)
    result = forge.solve("be slow", topology="single", max_seconds=0.2)
    assert (result.agents[0].stop_reason, result.agents[0].steps) == ("max_seconds", 1)
    assert llm.remaining == 1


def test_budget_exceeded_exits_4_with_the_partial_answer(cli_with) -> None:
    cli, llm = cli_with(
        classify("x"), Completion(text="thinking", tool_calls=[ToolCall("c", "list_tools", {})])
    )
    r = cli("solve", "loop", "--topology", "single", "--max-steps", "1")
    assert r.code == 4
    assert r.out.splitlines()[-1] == "thinking"
    assert "The run stopped early: generalist: max_steps" in r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["solve", "x", "--topology", "diagonal"],
            "Unknown topology 'diagonal': use one of single, vertical, horizontal, auto",
        ),
        (
            ["solve", "x", "--topology", "horizontal", "--merge", "loudest"],
            "Unknown merge strategy 'loudest'",
        ),
        (["solve", "   "], "The task is empty"),
        (
            ["solve", "x", "--topology", "horizontal", "--strategies", "only-one"],
            "A horizontal run needs at least 2 strategies (got 1)",
        ),
        (
            ["solve", "x", "--max-steps", "0"],
            "Invalid budget: --max-steps must be at least 1 (got 0)",
        ),
        (
            ["solve", "x", "--max-tokens", "0"],
            "Invalid budget: --max-tokens must be at least 1 (got 0)",
        ),
        (
            ["solve", "x", "--max-seconds", "0"],
            "Invalid budget: --max-seconds must be more than 0 (got 0)",
        ),
        (
            ["solve", "x", "--topology", "single", "--subtasks", "a;b"],
            "--subtasks only applies to --topology vertical",
        ),
        (["solve", "x", "--agent", "ghost"], "Unknown agent: ghost"),
        (["agents", "recommend", "math", "--by", "vibes"], "Unknown ranking 'vibes'"),
    ],
)
def test_bad_input_exits_2_before_any_model_call(cli_with, args: list[str], message: str) -> None:
    cli, llm = cli_with()
    r = cli(*args)
    assert r.code == 2, r
    assert r.err.startswith("Error: ") and message in r.err
    assert llm.requests == []


def test_agent_spec_is_strict() -> None:
    from toolforge.agents import parse_agent_spec

    with pytest.raises(UsageError) as e:
        parse_agent_spec({"name": "Bad Name", "description": "d", "role": "r", "colour": "red"})
    assert "name: Value error, must be lowercase" in str(
        e.value
    ) and "colour: Extra inputs are not permitted" in str(e.value)


# -- topologies --------------------------------------------------------------------------
def test_vertical_three_given_subtasks_pass_context(make_forge) -> None:
    forge, llm = make_forge(
        classify("report"),
        plan("gather numbers", "compute the total", "write a sentence"),
        answer("numbers: 3, 4"),
        answer("total: 7"),
        answer("The total is 7."),
        answer("FINAL: the total is 7."),
    )
    result = forge.solve(
        "report the total of 3 and 4",
        topology="vertical",
        subtasks=["gather numbers", "compute the total", "write a sentence"],
    )
    assert (result.status, result.topology, result.answer) == (
        "ok",
        "vertical",
        "FINAL: the total is 7.",
    )
    assign = llm.requests[1].messages[0]["content"]
    assert "1. gather numbers\n2. compute the total\n3. write a sentence" in assign
    step1, step2, step3, integrate = (r.messages for r in llm.requests[2:6])
    assert step1[0]["content"].startswith("You are specialist 1.")
    assert (
        step1[1]["content"]
        == "Overall task: report the total of 3 and 4\n\nYour task: gather numbers"
    )
    assert step2[1]["content"] == (
        "Overall task: report the total of 3 and 4\nResults of the previous steps:\n"
        "1. gather numbers\n   Result: numbers: 3, 4\n\nYour task: compute the total"
    )
    assert (
        "1. gather numbers\n   Result: numbers: 3, 4\n2. compute the total\n   Result: total: 7"
        in step3[1]["content"]
    )
    assert step3[0]["content"].startswith("You are specialist 3.")
    assert "3. write a sentence\n   Result: The total is 7." in integrate[1]["content"]
    assert [a.agent for a in result.agents] == ["step-1-agent", "step-2-agent", "step-3-agent"]
    assert [(s.agent, s.task_type) for s in forge.agents.stats()] == [
        ("step-1-agent", "type-1"),
        ("step-2-agent", "type-2"),
        ("step-3-agent", "type-3"),
    ]


def test_vertical_decomposed_by_the_model_and_a_stopped_step_ends_the_chain(make_forge) -> None:
    forge, llm = make_forge(
        classify("report"),
        plan("a", "b", "c"),
        answer("A done"),
        call("list_tools", {}),
    )
    result = forge.solve("do a then b then c", topology="vertical", max_steps=1)
    assert "Break the task into 2 to 6 ordered subtasks" in llm.requests[1].messages[0]["content"]
    assert (result.status, len(result.agents), result.stop_reason) == (
        "stopped",
        2,
        "step-2-agent: max_steps",
    )
    assert llm.remaining == 0


def _member(request: Request, answers: dict[str, str], barrier: threading.Barrier) -> Completion:
    """A member's reply, chosen by the strategy in its system prompt; waits for all three."""
    barrier.wait(timeout=30)  # proves the members run at the same time (a broken barrier fails)
    system = request.messages[0]["content"]
    strategy = system.rsplit("Your approach for this task: ", 1)[1].split("\n")[0]
    return answer(answers[strategy], cost=0.001)


@pytest.mark.parametrize(
    ("merge", "merge_replies", "expected"),
    [
        ("majority_vote", [], "42"),
        (
            "best_score",
            [
                json.dumps(
                    {
                        "scores": [
                            {"member": 1, "score": 3},
                            {"member": 2, "score": 9, "reason": "right"},
                            {"member": 3, "score": 5},
                        ]
                    }
                )
            ],
            "42.",
        ),
        ("consensus", ["They agree: 42"], "They agree: 42"),
    ],
)
def test_horizontal_three_parallel_members_and_each_merge(
    make_forge, merge: str, merge_replies: list[str], expected: str
) -> None:
    answers = {"by hand": "42", "with a tool": "42.", "estimate": "about 40"}
    barrier = threading.Barrier(3)
    member = lambda request: _member(request, answers, barrier)  # noqa: E731
    forge, llm = make_forge(classify("arithmetic"), member, member, member, *merge_replies)
    result = forge.solve(
        "what is 6*7?",
        topology="horizontal",
        strategies=["by hand", "with a tool", "estimate"],
        merge=merge,
    )
    assert (result.status, result.answer, len(result.agents)) == ("ok", expected, 3)
    assert sorted(a.answer for a in result.agents) == sorted(answers.values())
    assert llm.remaining == 0
    if merge == "majority_vote":
        assert result.merge == {
            "strategy": "majority_vote",
            "chosen": 1,
            "votes": {"42": 2, "about 40": 1},
        }
        assert len(llm.requests) == 4  # no merge call
    elif merge == "best_score":
        assert result.merge["chosen"] == 2 and result.merge["scores"] == {
            "1": 3.0,
            "2": 9.0,
            "3": 5.0,
        }
        judge = llm.requests[-1].messages[1]["content"]
        assert "Candidate 1:\n" in judge and "Candidate 3:\n" in judge
    else:
        merge_prompt = llm.requests[-1].messages[1]["content"]
        assert (
            all(f"Answer {i}:\n" in merge_prompt for i in (1, 2, 3)) and "about 40" in merge_prompt
        )
    assert [(s.agent, s.runs, s.successes) for s in forge.agents.stats()] == [("generalist", 3, 3)]
    assert "merge" in kinds(forge, result.run_id)


def test_horizontal_strategies_proposed_by_the_model(make_forge) -> None:
    barrier = threading.Barrier(2)
    answers = {"guess": "7", "compute": "7"}
    member = lambda request: _member(request, answers, barrier)  # noqa: E731
    forge, llm = make_forge(
        classify("x"), json.dumps({"strategies": ["guess", "compute"]}), member, member
    )
    result = forge.solve("3+4?", topology="horizontal", merge="majority_vote")
    assert (result.answer, len(result.agents)) == ("7", 2)


@pytest.mark.parametrize("choice", ["single", "vertical", "horizontal"])
def test_auto_chooses_each_topology_and_says_why(make_forge, choice: str) -> None:
    replies: list[Any] = [
        classify("x"),
        json.dumps({"topology": choice, "reason": f"because {choice} fits"}),
    ]
    if choice == "single":
        replies += [answer("one")]
    elif choice == "vertical":
        replies += [plan("a", "b", "c"), answer("A"), answer("B"), answer("C"), answer("ABC")]
    else:
        barrier = threading.Barrier(3)
        answers = {"p": "x", "q": "x", "r": "y"}
        member = lambda request: _member(request, answers, barrier)  # noqa: E731
        replies += [json.dumps({"strategies": ["p", "q", "r"]}), member, member, member, "x it is"]
    forge, llm = make_forge(*replies)
    result = forge.solve("some task")
    assert (result.topology, result.reason, result.status) == (
        choice,
        f"because {choice} fits",
        "ok",
    )
    rule = llm.requests[1].messages[0]["content"]
    assert "3 or more separable steps" in rule and "open-ended" in rule
    assert forge.agents.run(result.run_id)["topology"] == choice
    assert llm.remaining == 0


def test_auto_prints_the_choice_and_reason(cli_with) -> None:
    cli, llm = cli_with(
        classify("x"), json.dumps({"topology": "single", "reason": "one step"}), answer("done")
    )
    r = cli("solve", "a small task")
    assert r.code == 0
    first, last = r.out.splitlines()[0], r.out.splitlines()[-1]
    assert " · single (one step) · task type x · 1 agent(s) · " in first and last == "done"


# -- the performance registry ------------------------------------------------------------
def test_stats_and_recommendation_after_recorded_runs(make_forge, cli_with) -> None:
    forge, llm = make_forge()
    forge.agents.add(AgentSpec(name="alpha", description="a", role="You are alpha."))
    forge.agents.add(AgentSpec(name="beta", description="b", role="You are beta."))
    llm.add(classify("math"), answer("1", cost=0.002, tokens=(100, 20)))
    assert forge.solve("1*1", topology="single", agent="alpha").status == "ok"
    llm.add(classify("math"), call("list_tools", {}, cost=0.004, tokens=(200, 40)))
    assert forge.solve("loop", topology="single", agent="alpha", max_steps=1).status == "stopped"
    llm.add(classify("math"), answer("2", cost=0.01, tokens=(50, 10)))
    assert forge.solve("1+1", topology="single", agent="beta").status == "ok"
    llm.add(classify("poetry"), answer("roses", cost=0.5))
    forge.solve("a poem", topology="single", agent="beta")

    stats = [s.to_json() for s in forge.agents.stats(task_type="math")]
    assert [
        {
            k: s[k]
            for k in ("agent", "runs", "successes", "success_rate", "avg_cost_usd", "avg_tokens")
        }
        for s in stats
    ] == [
        {
            "agent": "alpha",
            "runs": 2,
            "successes": 1,
            "success_rate": 0.5,
            "avg_cost_usd": 0.003,
            "avg_tokens": 180.0,
        },
        {
            "agent": "beta",
            "runs": 1,
            "successes": 1,
            "success_rate": 1.0,
            "avg_cost_usd": 0.01,
            "avg_tokens": 60.0,
        },
    ]
    assert forge.agents.recommend("math").agent == "beta"
    assert forge.agents.recommend("math", by="cost").agent == "alpha"
    assert forge.agents.recommend("unknown-type") is None

    cli, _ = cli_with()
    r = cli("agents", "stats", "--agent", "beta", "--json")
    assert [(s["task_type"], s["runs"], s["avg_cost_usd"]) for s in json.loads(r.out)] == [
        ("math", 1, 0.01),
        ("poetry", 1, 0.5),
    ]
    r = cli("agents", "recommend", "math", "--by", "cost", "--json")
    rec = json.loads(r.out)
    assert (r.code, rec["agent"], rec["success_rate"], rec["avg_cost_usd"], rec["by"]) == (
        0,
        "alpha",
        0.5,
        0.003,
        "cost",
    )
    r = cli("agents", "recommend", "math")
    assert r.out.startswith("beta: success 100% (1/1), avg cost $0.010000, avg latency ")
    r = cli("agents", "recommend", "cooking")
    assert r.code == 2 and "Unknown task type: cooking" in r.err


def test_recommend_by_latency_exact(make_forge) -> None:
    forge, _ = make_forge()
    store = forge.agents
    for agent, success, latency in [
        ("fast", True, 1.0),
        ("fast", False, 3.0),
        ("slow", True, 5.0),
        ("never", False, 0.1),
    ]:
        store.record_performance(
            agent=agent,
            agent_version=None,
            task_type="t",
            success=success,
            cost_usd=0.0,
            latency_s=latency,
            tokens=0,
            task_id="x",
        )
    best = store.recommend("t", by="latency")
    assert (best.agent, best.avg_latency_s, best.success_rate) == (
        "fast",
        2.0,
        0.5,
    )  # "never" never succeeded
    assert store.recommend("t", by="success").agent == "slow"


def test_solve_uses_the_recommended_registered_agent(make_forge) -> None:
    forge, llm = make_forge(classify("text-analysis"), answer("counted"))
    forge.agents.add(
        AgentSpec(
            name="wc-expert",
            description="counts",
            role="You are the counting expert.",
            task_types=["Text Analysis"],
        )
    )
    forge.agents.add(AgentSpec(name="other", description="other", role="You are other."))
    forge.agents.record_performance(
        agent="other",
        agent_version=1,
        task_type="text-analysis",
        success=False,
        cost_usd=0,
        latency_s=1,
        tokens=1,
        task_id="old",
    )
    forge.agents.record_performance(
        agent="wc-expert",
        agent_version=1,
        task_type="text-analysis",
        success=True,
        cost_usd=0,
        latency_s=1,
        tokens=1,
        task_id="old",
    )
    result = forge.solve("count the words of a poem", topology="single")
    assert (
        "Reuse one of these known labels when it fits: text-analysis."
        in llm.requests[0].messages[0]["content"]
    )
    assert llm.requests[1].messages[0]["content"].startswith("You are the counting expert.")
    plan_event = next(e for e in forge.agents.events(result.run_id) if e["kind"] == "plan")
    assert plan_event["agent"] == "wc-expert" and plan_event["why"].startswith(
        "recommended for text-analysis"
    )


# -- agents registry and traces ------------------------------------------------------------
def test_agents_generate_list_show_remove(cli_with, toolforge_home: Path) -> None:
    draft = {
        "name": "CSV Wrangler",
        "description": "Cleans CSV files.",
        "role": "You clean CSV data.",
        "tools": ["word-count", "made-up-tool"],
        "temperature": 0.1,
        "max_steps": 5,
        "task_types": ["Data Cleaning"],
    }
    cli, llm = cli_with(
        json.dumps(draft), json.dumps({**draft, "role": "You clean CSV data, carefully."})
    )
    Forge().add(EXAMPLES / "word-count", test=False)
    r = cli("agents", "generate", "clean up CSV files", "--json")
    spec = json.loads(r.out)
    assert (
        r.code,
        spec["name"],
        spec["version"],
        spec["tools"],
        spec["task_types"],
        spec["max_steps"],
    ) == (0, "csv-wrangler", 1, ["word-count"], ["data-cleaning"], 5)
    assert "- word-count: Count the words" in llm.requests[0].messages[0]["content"]
    r = cli("agents", "generate", "clean up CSV files", "--name", "csv-wrangler")
    assert (r.code, r.out) == (0, "✓ Registered agent csv-wrangler@2: Cleans CSV files.\n")
    r = cli("agents", "list", "--json")
    assert [(a["name"], a["version"], a["versions"]) for a in json.loads(r.out)] == [
        ("csv-wrangler", 2, [1, 2])
    ]
    r = cli("agents", "show", "csv-wrangler@1")
    assert r.out.splitlines()[0] == "csv-wrangler@1 — Cleans CSV files."
    assert "role:\nYou clean CSV data." in r.out
    r = cli("agents", "remove", "csv-wrangler", "--yes")
    assert (r.code, r.out) == (0, "✓ Removed agent csv-wrangler version(s) 1, 2\n")
    r = cli("agents", "show", "csv-wrangler")
    assert r.code == 2 and "Unknown agent: csv-wrangler" in r.err


def test_traces_recorded_shown_and_exported(cli_with, tmp_path: Path) -> None:
    cli, llm = cli_with(
        classify("lookup"),
        call("list_tools", {"query": ""}, tokens=(30, 3)),
        answer("nothing", tokens=(40, 2)),
    )
    r = cli("solve", "which tools are there?", "--topology", "single", "--json")
    result = json.loads(r.out)
    run_id = result["run_id"]
    f = Forge()
    events = load_run_events(f.settings, run_id)
    assert [e["kind"] for e in events] == [
        "run_start",
        "model_call",
        "plan",
        "agent_start",
        "model_call",
        "tool_call",
        "tool_result",
        "model_call",
        "agent_end",
        "run_end",
    ]
    assert [e["seq"] for e in events] == list(range(1, 11))
    step1, tool_result, step2 = events[4], events[6], events[7]
    assert step1["agent"] == "generalist" and step1["tool_calls"][0]["name"] == "list_tools"
    assert [m["role"] for m in step1["input"]] == ["system", "user"]
    assert [m["role"] for m in step2["input"]] == [
        "assistant",
        "tool",
    ]  # only what is new since the last call
    assert (step1["prompt_tokens"], step1["completion_tokens"]) == (30, 3)
    assert tool_result["ok"] is True and tool_result["content"] == '{"ok": true, "result": []}'
    assert events[-1]["status"] == "ok" and events[-1]["answer"] == "nothing"
    from toolforge.memory.compress import load_events

    assert load_events(f.settings, run_id=run_id) == (
        run_id,
        events,
    )  # what `memory compress --run` reads
    run = f.agents.run(run_id)
    assert (run["status"], run["task_type"], run["completion_tokens"]) == (
        "ok",
        "lookup",
        result["completion_tokens"],
    )
    f.close()

    r = cli("runs", "list", "--json")
    assert [x["id"] for x in json.loads(r.out)] == [run_id]
    r = cli("runs", "show", run_id)
    assert r.code == 0 and "tool_call" in r.out and "answer: nothing" in r.out
    r = cli("runs", "export", run_id, str(tmp_path / "run.json"))
    assert r.out == f"✓ Exported run {run_id} (10 events) to {tmp_path / 'run.json'}\n"
    exported = json.loads((tmp_path / "run.json").read_text())
    assert exported["id"] == run_id and len(exported["events"]) == 10
    r = cli("runs", "show", "run-nope")
    assert r.code == 2 and "Unknown run: run-nope" in r.err


def test_a_failing_model_marks_the_run_failed(make_forge) -> None:
    forge, llm = make_forge(classify("x"))  # the agent's call finds the script exhausted
    with pytest.raises(AssertionError):
        forge.solve("task", topology="single")
    run = forge.agents.runs()[0]
    assert run["status"] == "failed" and "no reply left" in run["stop_reason"]


def test_coordinator_solve_request_is_checked_before_the_run(make_forge) -> None:
    forge, llm = make_forge()
    with pytest.raises(UsageError, match="Give --subtasks"):
        Coordinator(forge).solve(SolveRequest("x", "auto", subtasks=["a"], strategies=["b", "c"]))
    assert forge.agents.runs() == []


# -- with the real sandbox ---------------------------------------------------------------
@pytest.mark.docker
def test_single_agent_calls_two_tools_then_answers(make_forge) -> None:
    forge, llm = make_forge(
        classify("text-analysis"),
        Completion(
            tool_calls=[
                ToolCall("c1", "word_count", {"text": "the quick brown fox"}),
                ToolCall("c2", "slugify", {"text": "The Quick Brown Fox!"}),
            ]
        ),
        answer("4 words; slug the-quick-brown-fox"),
    )
    forge.add(EXAMPLES / "word-count", test=False)
    forge.add(EXAMPLES / "slugify", test=False)
    try:
        result = forge.solve(
            "count the words of 'the quick brown fox' and slugify it", topology="single"
        )
    finally:
        forge.sandbox.close()
    assert (result.status, result.answer) == ("ok", "4 words; slug the-quick-brown-fox")
    tool_msgs = {
        m["tool_call_id"]: json.loads(m["content"])
        for m in llm.requests[2].messages
        if m["role"] == "tool"
    }
    assert tool_msgs == {
        "c1": {"ok": True, "result": {"words": 4, "lines": 1, "chars": 19}},
        "c2": {"ok": True, "result": "the-quick-brown-fox"},
    }
    results = [e for e in forge.agents.events(result.run_id) if e["kind"] == "tool_result"]
    assert [(e["tool"], e["ok"]) for e in results] == [("word_count", True), ("slugify", True)]


VOWELS = """def run(text: str) -> dict:
    return {"vowels": sum(ch in "aeiouAEIOU" for ch in text)}
"""


@pytest.mark.docker
def test_agent_generates_a_tool_and_calls_it_in_the_same_run(make_forge) -> None:
    draft = {
        "name": "vowel-count",
        "description": "Count the vowels of a text.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
        "code": VOWELS,
        "tests": [
            {"args": {"text": "banana"}, "expect": {"vowels": 3}},
            {"args": {"text": ""}, "expect": {"vowels": 0}},
            {"args": {"text": "AEIOU xyz"}, "expect": {"vowels": 5}},
        ],
    }

    def use_new_tool(request: Request) -> Completion:
        offered = [t["function"]["name"] for t in request.tools]
        assert "vowel_count" in offered  # the new tool is callable in the same run
        return tool_call("vowel_count", {"text": "onomatopoeia"}, id="c2")

    forge, llm = make_forge(
        classify("text-analysis"),
        tool_call(
            "generate_tool",
            {"requirement": "count the vowels of a text", "language": "python"},
            id="c1",
        ),
        json.dumps(draft),
        use_new_tool,
        answer("onomatopoeia has 8 vowels"),
    )
    try:
        result = forge.solve("how many vowels are in 'onomatopoeia'?", topology="single")
    finally:
        forge.sandbox.close()
    assert (result.status, result.answer) == ("ok", "onomatopoeia has 8 vowels")
    assert forge.tool("vowel-count").report.passed
    tool_msgs = {
        m["tool_call_id"]: json.loads(m["content"])
        for m in llm.requests[-1].messages
        if m["role"] == "tool"
    }
    assert tool_msgs["c1"]["result"]["tool"] == "vowel_count"
    assert tool_msgs["c2"] == {"ok": True, "result": {"vowels": 8}}
    assert (
        "count the vowels of a text" in llm.requests[2].prompt
    )  # the synthesis call came through the fake


def test_job_tools_queue_a_call_and_report_its_status(make_forge) -> None:
    def status_of_submitted(request: Request) -> Completion:
        job_id = json.loads(request.messages[-1]["content"])["result"]["job_id"]
        return call("job_status", {"job_id": job_id}, id="c2")

    forge, llm = make_forge(
        classify("x"),
        call("submit_job", {"tool": "word_count", "args": {"text": "a b"}}, id="c1"),
        status_of_submitted,
        call("submit_job", {"tool": "word_count", "args": {}}, id="c3"),
        answer("queued"),
    )
    forge.add(EXAMPLES / "word-count", test=False)
    result = forge.solve("count later", topology="single")
    tool_msgs = [json.loads(m["content"]) for m in llm.requests[-1].messages if m["role"] == "tool"]
    job_id = tool_msgs[0]["result"]["job_id"]
    assert tool_msgs[0]["result"]["status"] == "queued"
    assert tool_msgs[1] == {"ok": True, "result": {"job_id": job_id, "status": "queued"}}
    assert tool_msgs[2]["ok"] is False and "'text' is a required property" in tool_msgs[2]["error"]
    assert forge.job(job_id).info().args == {"text": "a b"} and result.status == "ok"


def test_memory_tools_write_and_read_the_shared_graph(make_forge) -> None:
    forge, llm = make_forge(
        classify("x"),
        call(
            "memory_add_node",
            {"type": "concept", "label": "fox", "content": "a quick brown animal"},
            id="c1",
        ),
        call("memory_query", {"text": "quick animal"}, id="c2"),
        call("memory_add_node", {"type": "no-such-type", "label": "x"}, id="c3"),
        answer("remembered"),
    )
    forge.solve("remember the fox", topology="single")
    added, found, bad = [
        json.loads(m["content"]) for m in llm.requests[-1].messages if m["role"] == "tool"
    ]
    assert added["ok"] is True and added["result"]["created"] is True
    assert [r["label"] for r in found["result"]["results"]][:1] == ["fox"]
    assert bad["ok"] is False and "no-such-type" in bad["error"]
    assert [h.node.label for h in forge.memory().query("fox", "similarity")][:1] == ["fox"]


def test_cli_splits_subtasks_and_strategies(cli_with) -> None:
    cli, llm = cli_with(
        classify("x"), plan("a", "b", "c"), answer("A"), answer("B"), answer("C"), answer("ABC")
    )
    r = cli("solve", "three steps", "--topology", "vertical", "--subtasks", "a; b ;c", "--json")
    data = json.loads(r.out)
    assert (r.code, data["topology"], [a["task"] for a in data["agents"]], data["answer"]) == (
        0,
        "vertical",
        ["a", "b", "c"],
        "ABC",
    )

    barrier = threading.Barrier(2)
    member = lambda request: _member(request, {"x": "same", "y": "same"}, barrier)  # noqa: E731
    cli, llm = cli_with(classify("x"), member, member)
    r = cli(
        "solve",
        "pick",
        "-t",
        "horizontal",
        "--strategies",
        "x,y",
        "--merge",
        "majority_vote",
        "--json",
    )
    data = json.loads(r.out)
    assert (r.code, data["answer"], data["merge"]["votes"]) == (0, "same", {"same": 2})


def test_an_agent_that_never_succeeded_is_not_recommended_to_solve(make_forge) -> None:
    forge, llm = make_forge(classify("math"), answer("2"))
    forge.agents.add(AgentSpec(name="loser", description="l", role="You are loser."))
    forge.agents.record_performance(
        agent="loser",
        agent_version=1,
        task_type="math",
        success=False,
        cost_usd=0,
        latency_s=1,
        tokens=1,
        task_id="old",
    )
    result = forge.solve("1+1", topology="single")
    assert result.agents[0].agent == "generalist"
    assert (
        llm.requests[1].messages[0]["content"].startswith("You are a capable, careful assistant.")
    )


def test_remember_records_the_runs_key_events_in_graph_memory(make_forge) -> None:
    forge, _ = make_forge(
        classify("lookup"),
        call("list_tools", {"query": ""}, id="c1"),
        answer("there are no tools yet"),
    )
    result = forge.solve("which tools exist?", topology="single", remember="notes")
    graph = forge.memory("notes")
    label = f"run {result.run_id}"
    events = [e for e in forge.agents.events(result.run_id) if e["kind"] != "model_call"]
    assert graph.node(label).content == f"{len(events)} key event(s)"

    def linked() -> list:
        hits = graph.query(label, "traverse", radius=1, direction="in", edge_types=["part_of"])
        return sorted(h.node.meta["index"] for h in hits if "index" in h.node.meta)

    assert linked() == list(range(len(events)))
    assert any("list_tools" in h.node.content for h in graph.query("list_tools", "similarity"))
    forge.remember_run(result.run_id, graph="notes")  # re-recording updates, never duplicates
    assert linked() == list(range(len(events)))
