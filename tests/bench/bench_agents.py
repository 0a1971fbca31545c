"""Agent overhead, each beside a baseline measured in the same run.

* turn: one agent turn with a meta-tool call (scripted model, schema validation, tool
  dispatch) with its trace written to SQLite vs the same turn with the trace discarded
  (so the difference is what durable tracing costs);
* tool call: an agent's call of a registered tool through the warm sandbox pool vs
  ``Forge.call`` of the same tool (so the difference is what the agent layer adds).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.bench.report import Report, p50, p99, timed
from toolforge import Forge
from toolforge.agents.loop import AgentLoop
from toolforge.agents.spec import default_agent
from toolforge.agents.toolbox import Toolbox
from toolforge.agents.trace import Tracer
from toolforge.config import load_settings
from toolforge.testing import ScriptedLLM, tool_call

TURNS = 200
TOOL_CALLS = 100
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tools" / "word-count"


def _loop(forge: Forge, llm: ScriptedLLM, tracer: Tracer) -> AgentLoop:
    spec = default_agent()
    return AgentLoop(
        spec, llm=llm, toolbox=Toolbox(forge, spec), tracer=tracer, budget=spec.budget(max_steps=1)
    )


class _Discard:
    """A trace sink that keeps nothing (the baseline for the cost of durable traces)."""

    def add_event(self, *args: object) -> None:
        pass


def bench(report: Report) -> None:
    home = Path(tempfile.mkdtemp(prefix="toolforge-bench-agents-"))
    settings = load_settings(home=home, backend="docker", pool_size=2)
    try:
        with Forge(settings, llm=ScriptedLLM()) as forge:
            store = forge.agents
            store.start_run("bench-run", task="bench", topology="single", model=None)
            tracer = Tracer(store, "bench-run")
            llm = ScriptedLLM()
            reply = tool_call("list_tools", {"query": "count"})

            untraced = Tracer(_Discard(), "bench-run")  # type: ignore[arg-type]

            def bare() -> None:
                llm.add(reply)
                _loop(forge, llm, untraced).run("count the words")

            def turn() -> None:
                llm.add(reply)
                _loop(forge, llm, tracer).run("count the words")

            forge.add(EXAMPLE, test=False)
            base = timed(bare, TURNS, warmup=10)
            turns = timed(turn, TURNS, warmup=10)
            report.add(
                "agents",
                "agent turn + meta-tool call p50",
                p50(turns),
                "ms",
                baseline_name="same turn, trace discarded",
                baseline=p50(base),
                note=f"p99 {p99(turns):.2f} ms",
            )

            record = forge.tool("word-count")
            spec = default_agent()
            toolbox = Toolbox(forge, spec)
            args = {"text": "the quick brown fox"}
            direct = timed(lambda: forge.call("word-count", args), TOOL_CALLS, warmup=5)
            via_agent = timed(lambda: toolbox.call("word_count", args), TOOL_CALLS, warmup=5)
            report.add(
                "agents",
                "agent tool call (warm sandbox) p50",
                p50(via_agent),
                "ms",
                baseline_name="Forge.call same tool",
                baseline=p50(direct),
                note=f"{record.name}; p99 {p99(via_agent):.2f} ms",
            )

            forge.sandbox.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
