"""Agents, solving and run traces: ``toolforge agents …``, ``toolforge solve``, ``toolforge runs …``.

``solve`` exits 0 when the run answered, 4 when an agent hit a budget (steps, tokens,
time; the partial answer is still printed), 1 when it failed; bad options exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from toolforge.cli.render import console, err_console, forge, print_json, success, table
from toolforge.errors import BudgetExceeded, ToolforgeError

agents_app = typer.Typer(
    help="Agents: generate, list, show, remove, stats, recommend.", no_args_is_help=True
)
runs_app = typer.Typer(
    help="Recorded solve runs and their traces: list, show, export.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")
    app.add_typer(runs_app, name="runs")
    app.command("solve")(solve)


# -- agents ----------------------------------------------------------------------------------
@agents_app.command("generate")
def generate(
    task: str = typer.Argument(..., help="The kind of task the agent should specialise in."),
    name: str | None = typer.Option(
        None, "--name", help="The agent's name (default: the model's choice)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="litellm model string (default: the configured model)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the spec as JSON."),
) -> None:
    """Have the model design an agent for TASK and register it."""
    with forge() as f:
        with err_console().status("designing the agent…"):
            spec = f.generate_agent(task, name=name, model=model)
        if json_out:
            print_json(spec.model_dump(mode="json"))
        else:
            success(f"Registered agent {spec.name}@{spec.version}: {spec.description}")


@agents_app.command("list")
def list_agents(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered agents (latest version of each)."""
    with forge() as f:
        specs = f.agents.list()
        if json_out:
            print_json(
                [
                    {**s.model_dump(mode="json"), "versions": f.agents.versions(s.name)}
                    for s in specs
                ]
            )
            return
        if not specs:
            console().print(
                'No agents registered yet. Create one with: toolforge agents generate "TASK"'
            )
            return
        rows = [
            [s.name, s.version, _tools(s.tools), ", ".join(s.task_types), s.description]
            for s in specs
        ]
        table(["name", "version", "tools", "task types", "description"], rows)


@agents_app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show an agent's spec and its performance."""
    with forge() as f:
        spec = f.agents.get(ref)
        stats = [s.to_json() for s in f.agents.stats(agent=spec.name)]
        if json_out:
            print_json(
                {
                    **spec.model_dump(mode="json"),
                    "versions": f.agents.versions(spec.name),
                    "stats": stats,
                }
            )
            return
        out = console()
        out.print(f"[bold]{escape(spec.name)}[/]@{spec.version} — {escape(spec.description)}")
        out.print(
            f"tools: {escape(_tools(spec.tools))}    model: {spec.model or '(run default)'}    "
            f"temperature: {spec.temperature if spec.temperature is not None else '(default)'}"
        )
        out.print(
            f"budget: {spec.max_steps} steps, {spec.max_tokens or 'unlimited'} tokens, "
            f"{f'{spec.max_seconds:g}s' if spec.max_seconds else 'no time limit'}"
        )
        out.print(f"task types: {escape(', '.join(spec.task_types) or '-')}")
        out.print(f"role:\n{escape(spec.role)}")
        if stats:
            _stats_table(stats)


@agents_app.command("remove")
def remove(
    ref: str = typer.Argument(..., help="NAME (every version) or NAME@VERSION"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove an agent (its recorded performance stays)."""
    with forge() as f:
        spec = f.agents.get(ref)
        if not yes and not typer.confirm(f"Remove agent {ref}?", default=False):
            raise typer.Exit(1)
        versions = f.agents.remove(ref)
        success(f"Removed agent {spec.name} version(s) {', '.join(map(str, versions))}")


@agents_app.command("stats")
def stats(
    agent: str | None = typer.Option(None, "--agent", help="Only this agent."),
    task_type: str | None = typer.Option(None, "--task-type", help="Only this task type."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Success rate, average cost, average latency and count per agent and task type."""
    with forge() as f:
        rows = [s.to_json() for s in f.agents.stats(agent=agent, task_type=task_type)]
        if json_out:
            print_json(rows)
        elif not rows:
            console().print('No agent runs recorded yet. Run one with: toolforge solve "TASK"')
        else:
            _stats_table(rows)


@agents_app.command("recommend")
def recommend(
    task_type: str = typer.Argument(..., help="A task-type label (see: toolforge agents stats)."),
    by: str = typer.Option("success", "--by", help="success | cost | latency"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The best agent for TASK_TYPE, with its figures."""
    with forge() as f:
        best = f.agents.recommend(task_type, by=by)
        if best is None:
            from toolforge.errors import NotFoundError

            raise NotFoundError(
                "task type",
                task_type,
                hint="No agent has run on it yet; see: toolforge agents stats",
            )
        if json_out:
            print_json({**best.to_json(), "by": by})
            return
        console().print(
            f"{escape(best.agent)}: success {best.success_rate:.0%} ({best.successes}/{best.runs}), "
            f"avg cost ${best.avg_cost_usd:.6f}, avg latency {best.avg_latency_s:.2f}s"
        )


def _tools(tools: Any) -> str:
    return tools if isinstance(tools, str) else ", ".join(tools) or "(none)"


def _stats_table(rows: list[dict[str, Any]]) -> None:
    table(
        ["agent", "task type", "runs", "success", "avg cost $", "avg latency s", "avg tokens"],
        [
            [
                r["agent"],
                r["task_type"],
                r["runs"],
                f"{r['success_rate']:.0%}",
                f"{r['avg_cost_usd']:.6f}",
                f"{r['avg_latency_s']:.2f}",
                f"{r['avg_tokens']:.0f}",
            ]
            for r in rows
        ],
    )


# -- solve -----------------------------------------------------------------------------------
def solve(
    task: str = typer.Argument(..., help="What to do, in plain words."),
    topology: str = typer.Option(
        "auto", "--topology", "-t", help="single | vertical | horizontal | auto"
    ),
    model: str | None = typer.Option(
        None, "--model", help="litellm model string (default: the configured model)."
    ),
    subtasks: str | None = typer.Option(
        None, "--subtasks", help="Vertical: the ordered steps, separated by ';'."
    ),
    strategies: str | None = typer.Option(
        None, "--strategies", help="Horizontal: the approaches, separated by ','."
    ),
    merge: str = typer.Option(
        "consensus", "--merge", help="Horizontal: consensus | majority_vote | best_score"
    ),
    agent: str | None = typer.Option(
        None, "--agent", help="Use this registered agent instead of the recommendation."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Model turns per agent (default: the agent's)."
    ),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Token budget per agent."),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="Wall-time budget per agent."
    ),
    remember: str | None = typer.Option(
        None, "--remember", help="Record the run's key events in this graph memory (e.g. default)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Solve TASK with agents that call the registered tools (and can create new ones)."""
    with forge() as f, err_console().status("starting…") as status:
        result = f.solve(
            task,
            topology=topology,
            model=model,
            merge=merge,
            agent=agent,
            subtasks=subtasks.split(";") if subtasks is not None else None,
            strategies=strategies.split(",") if strategies is not None else None,
            max_steps=max_steps,
            max_tokens=max_tokens,
            max_seconds=max_seconds,
            progress=lambda message: status.update(escape(message)),
            remember=remember,
        )
    if json_out:
        print_json(result.to_json())
    else:
        out = console()
        out.print(
            f"[dim]run {result.run_id} · {result.topology} ({escape(result.reason)}) · task type "
            f"{escape(result.task_type)} · {len(result.agents)} agent(s) · "
            f"{result.usage.total_tokens} tokens · {result.latency_s:.1f}s[/]"
        )
        out.print(escape(result.answer) if result.answer else "[dim](no answer)[/]")
    if result.status == "stopped":
        raise BudgetExceeded(
            f"The run stopped early: {result.stop_reason}",
            hint=f"See the trace with: toolforge runs show {result.run_id}",
        )
    if result.status != "ok":
        raise ToolforgeError(
            f"The run failed: {result.stop_reason}",
            hint=f"See the trace with: toolforge runs show {result.run_id}",
        )


# -- runs ------------------------------------------------------------------------------------
@runs_app.command("list")
def list_runs(
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many, newest first."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List recorded solve runs, newest first."""
    with forge() as f:
        runs = f.agents.runs(limit=limit)
        if json_out:
            print_json(runs)
            return
        if not runs:
            console().print('No runs recorded yet. Start one with: toolforge solve "TASK"')
            return
        table(
            ["id", "started", "topology", "task type", "status", "tokens", "latency s", "task"],
            [
                [
                    r["id"],
                    r["started_at"][:19],
                    r["topology"],
                    r["task_type"],
                    r["status"],
                    r["prompt_tokens"] + r["completion_tokens"],
                    f"{r['latency_s']:.1f}",
                    r["task"][:60],
                ]
                for r in runs
            ],
        )


@runs_app.command("show")
def show_run(
    run_id: str = typer.Argument(..., help="A run id (see: toolforge runs list)."),
    json_out: bool = typer.Option(
        False, "--json", help="Print the run and its whole trace as JSON."
    ),
) -> None:
    """Show a run and its trace: every model call, tool call and result."""
    with forge() as f:
        data = f.agents.export_run(run_id)
    if json_out:
        print_json(data)
        return
    out = console()
    out.print(
        f"[bold]{data['id']}[/] {data['status']} · {data['topology']} ({escape(data['reason'] or '')}) · "
        f"task type {escape(data['task_type'] or '-')} · {data['prompt_tokens'] + data['completion_tokens']} "
        f"tokens · ${data['cost_usd']:.6f} · {data['latency_s']:.2f}s"
    )
    out.print(f"task: {escape(data['task'])}")
    for e in data["events"]:
        out.print(
            f"{e['seq']:>4} {escape(e['agent'] or 'coordinator'):<18} {e['kind']:<12} {escape(_event_line(e))}"
        )
    out.print(f"answer: {escape(data['answer'] or '')}")


def _event_line(e: dict[str, Any]) -> str:
    kind = e["kind"]
    if kind == "model_call":
        calls = ", ".join(c["name"] for c in e.get("tool_calls", []))
        what = f"→ {calls}" if calls else (e.get("output") or "").replace("\n", " ")[:80]
        return (
            f"[{e.get('purpose')}] {e.get('prompt_tokens', 0)}+{e.get('completion_tokens', 0)} tok "
            f"{e.get('latency_ms', 0):.0f}ms {what}"
        )
    if kind == "tool_call":
        return f"{e.get('tool')} {json.dumps(e.get('args'), default=str)[:100]}"
    if kind == "tool_result":
        return f"{e.get('tool')} {'ok' if e.get('ok') else 'ERROR'} {e.get('latency_ms', 0):.0f}ms {str(e.get('content'))[:100]}"
    skip = {"seq", "ts", "kind", "agent"}
    return json.dumps(
        {k: v for k, v in e.items() if k not in skip}, default=str, ensure_ascii=False
    )[:140]


@runs_app.command("export")
def export_run(
    run_id: str = typer.Argument(..., help="A run id."),
    dest: Path = typer.Argument(..., help="The JSON file to write."),
) -> None:
    """Write a run and its whole trace to a JSON file."""
    with forge() as f:
        data = f.agents.export_run(run_id)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    tmp.replace(dest)
    success(f"Exported run {run_id} ({len(data['events'])} events) to {dest}")
