"""Agents: specs, the tool-calling loop, topologies, the performance registry and traces."""

from toolforge.agents.coordinator import MERGES, TOPOLOGIES, Coordinator, SolveRequest, SolveResult
from toolforge.agents.loop import AgentLoop, AgentResult, parse_action
from toolforge.agents.spec import AgentSpec, Budget, default_agent, parse_agent_spec
from toolforge.agents.store import AgentStats, AgentStore, load_run_events
from toolforge.agents.toolbox import Toolbox, ToolOutcome, function_name

__all__ = [
    "MERGES",
    "TOPOLOGIES",
    "AgentLoop",
    "AgentResult",
    "AgentSpec",
    "AgentStats",
    "AgentStore",
    "Budget",
    "Coordinator",
    "SolveRequest",
    "SolveResult",
    "ToolOutcome",
    "Toolbox",
    "default_agent",
    "function_name",
    "load_run_events",
    "parse_action",
    "parse_agent_spec",
]
