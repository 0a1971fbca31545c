"""The tools an agent may call: registered tools (run in the sandbox) and meta-tools.

Each registered tool is offered with its JSON Schema as an OpenAI-style function; its name
is sanitised for function calling (``word-count`` → ``word_count``) and mapped back.
Meta-tools: ``generate_tool`` (synthesise a tool; it is callable in the same run),
``list_tools``, ``submit_job`` / ``job_status`` (long work) and the memory tools.

A call never raises for the model's mistakes: unknown tool, arguments that are not JSON or
fail the schema, a tool that fails or times out — each comes back as an error result the
model can read and correct. Only environment failures (Docker down, Ctrl-C) propagate.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import suppress
from dataclasses import dataclass
from itertools import islice
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from toolforge.errors import EnvironmentUnavailable, Interrupted, ToolforgeError
from toolforge.spec import validate_args

if TYPE_CHECKING:
    from toolforge.agents.spec import AgentSpec
    from toolforge.forge import Forge
    from toolforge.registry import ToolRecord
    from toolforge.spec import ToolSpec

MAX_RESULT_CHARS = 8000  # what one tool result may put into the conversation
LANGUAGES = ["python", "typescript", "bash"]
JOB_WAIT_S = 60.0  # job_status(wait=true) waits at most this long (or the agent's time left)
FINISHED_JOB = ("succeeded", "failed", "cancelled", "timed_out")

META_TOOLS: dict[str, dict[str, Any]] = {
    "generate_tool": {
        "description": "Create a new tool from a plain-words requirement when no registered tool fits. "
        "It is written, built, tested in the sandbox and registered; then you can call it by the name returned.",
        "parameters": {
            "type": "object",
            "properties": {
                "requirement": {
                    "type": "string",
                    "minLength": 1,
                    "description": "What the tool must do, with inputs and output.",
                },
                "language": {"type": "string", "enum": LANGUAGES, "default": "python"},
            },
            "required": ["requirement"],
            "additionalProperties": False,
        },
    },
    "list_tools": {
        "description": "Search the registered tools by words in their name or description.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "default": "",
                    "description": "Words to look for; empty lists all.",
                }
            },
            "additionalProperties": False,
        },
    },
    "submit_job": {
        "description": "Run a registered tool as a background job (for long work); returns a job id.",
        "parameters": {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "description": "The tool's name."},
                "args": {"type": "object", "description": "The tool's arguments."},
            },
            "required": ["tool"],
            "additionalProperties": False,
        },
    },
    "job_status": {
        "description": "The status of a background job, and its result once it finished.",
        "parameters": {
            "type": "object",
            "properties": {
                "job_id": {"type": "string"},
                "wait": {
                    "type": "boolean",
                    "default": False,
                    "description": "Wait for the job to finish.",
                },
            },
            "required": ["job_id"],
            "additionalProperties": False,
        },
    },
}


def function_name(tool_name: str) -> str:
    """A name every function-calling API accepts: ``^[a-zA-Z0-9_]{1,64}$``."""
    return (re.sub(r"[^a-zA-Z0-9_]", "_", tool_name) or "tool")[:64]


@dataclass
class ToolOutcome:
    """What a tool call gave: ``content`` is the JSON text shown to the model."""

    ok: bool
    content: str
    data: Any = None
    latency_s: float = 0.0


def _outcome(ok: bool, payload: dict[str, Any], started: float) -> ToolOutcome:
    text = json.dumps(payload, default=str, ensure_ascii=False)
    if len(text) > MAX_RESULT_CHARS:
        text = (
            text[:MAX_RESULT_CHARS]
            + f"… [truncated, {len(text) - MAX_RESULT_CHARS} more characters]"
        )
    return ToolOutcome(
        ok, text, payload.get("result", payload.get("error")), time.monotonic() - started
    )


class Toolbox:
    """The callable tools of one agent in one run (grows when the agent generates a tool)."""

    def __init__(self, forge: Forge, spec: AgentSpec, *, model: str | None = None) -> None:
        self.forge = forge
        self.spec = spec
        self.model = model
        self._tools: dict[str, ToolRecord] = {}  # function name → record
        self._meta: dict[str, dict[str, Any]] = {}
        self._memory_names: set[str] = set()
        for record in self._allowed_records():
            self._add_record(record)
        self._add_meta_tools()

    # -- what is offered -----------------------------------------------------------------
    def _allowed_records(self) -> list[ToolRecord]:
        records = self.forge.registry.list()
        return [r for r in records if self.spec.allows(r.name)]

    def _add_record(self, record: ToolRecord) -> str:
        fn = function_name(record.name)
        taken = set(self._meta) | {n for n, r in self._tools.items() if r.name != record.name}
        base, n = fn, 2
        while fn in taken:
            fn = f"{base}_{n}"[:64]
            n += 1
        self._tools[fn] = record
        return fn

    def _add_meta_tools(self) -> None:
        wanted = {name: d for name, d in META_TOOLS.items() if self.spec.allows(name)}
        if not hasattr(self.forge, "generate"):
            wanted.pop("generate_tool", None)
        if not hasattr(self.forge, "submit"):
            wanted.pop("submit_job", None)
            wanted.pop("job_status", None)
        self._meta.update(wanted)
        for definition in _memory_definitions():
            name = definition["function"]["name"]
            if self.spec.allows(name):
                self._meta[name] = {k: v for k, v in definition["function"].items() if k != "name"}
                self._memory_names.add(name)
        # a registered tool that shadows a meta-tool is renamed
        for fn in [fn for fn in self._tools if fn in self._meta]:
            self._add_record(self._tools.pop(fn))

    def names(self) -> list[str]:
        return sorted(self._tools) + sorted(self._meta)

    def definitions(self) -> list[dict[str, Any]]:
        """OpenAI-style function definitions, registered tools first."""
        defs = []
        for fn, record in sorted(self._tools.items()):
            defs.append(_function(fn, record.spec.description, record.spec.parameters))
        for name, meta in sorted(self._meta.items()):
            defs.append(_function(name, meta["description"], meta["parameters"]))
        return defs

    def describe(self) -> str:
        """The tools as text, for models without native tool calling."""
        lines = []
        for d in self.definitions():
            f = d["function"]
            lines.append(
                f"- {f['name']}: {f['description']}\n  arguments (JSON Schema): {json.dumps(f['parameters'])}"
            )
        return "\n".join(lines) or "(no tools)"

    def resolve(self, name: str) -> str | None:
        """Map what the model called (function name or tool name) to a function name."""
        if name in self._tools or name in self._meta:
            return name
        for fn, record in self._tools.items():
            if record.name == name:
                return fn
        fn = function_name(name)
        return fn if fn in self._tools or fn in self._meta else None

    # -- calling -------------------------------------------------------------------------
    def call(
        self, name: str, arguments: dict[str, Any] | str, *, timeout_s: float | None = None
    ) -> ToolOutcome:
        started = time.monotonic()
        fn = self.resolve(name)
        if fn is None:
            return _outcome(
                False,
                {
                    "ok": False,
                    "error": f"Unknown tool {name!r}. Available: {', '.join(self.names())}",
                },
                started,
            )
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                return _outcome(
                    False,
                    {
                        "ok": False,
                        "error": f"Arguments are not valid JSON ({e.msg}); send a JSON object.",
                    },
                    started,
                )
        if not isinstance(arguments, dict):
            return _outcome(
                False, {"ok": False, "error": "Arguments must be a JSON object."}, started
            )
        try:
            if fn in self._tools:
                return self._call_registered(self._tools[fn], arguments, timeout_s, started)
            return self._call_meta(fn, arguments, timeout_s, started)
        except (EnvironmentUnavailable, Interrupted):
            raise
        except ToolforgeError as e:
            return _outcome(False, {"ok": False, "error": str(e)}, started)

    def _call_registered(
        self, record: ToolRecord, args: dict[str, Any], timeout_s: float | None, started: float
    ) -> ToolOutcome:
        args = validate_args(record.spec, args)  # ArgumentError → an error result for the model
        limit = record.spec.limits.timeout_s
        result = self.forge.sandbox.call(
            record.bundle, args, timeout_s=min(limit, timeout_s) if timeout_s else None
        )
        if result.ok:
            payload: dict[str, Any] = {"ok": True, "result": result.result}
        else:
            error = result.error or {}
            message = error.get("message") or result.status.value
            payload = {
                "ok": False,
                "error": f"{error.get('type', result.status.value)}: {message}",
                "status": result.status.value,
            }
        if result.stdout.strip():
            payload["stdout"] = result.stdout[-2000:]
        return _outcome(result.ok, payload, started)

    def _call_meta(
        self, name: str, args: dict[str, Any], timeout_s: float | None, started: float
    ) -> ToolOutcome:
        schema = self._meta[name]["parameters"]
        validate_args(cast("ToolSpec", SimpleNamespace(name=name, parameters=schema)), args)
        if name in self._memory_names:
            from toolforge.memory.tools import call_memory_tool

            reply = call_memory_tool(self.forge.memory(), name, args)
            if "error" in reply:
                return _outcome(False, {"ok": False, "error": reply["error"]}, started)
            return _outcome(True, {"ok": True, "result": reply}, started)
        handler = getattr(self, "_meta_" + name)
        extra = {"timeout_s": timeout_s} if name == "job_status" else {}
        return _outcome(True, {"ok": True, "result": handler(**args, **extra)}, started)

    def _meta_generate_tool(self, requirement: str, language: str = "python") -> dict[str, Any]:
        result = self.forge.generate(requirement, language=language, model=self.model)
        record = result.record
        fn = self._add_record(record)
        return {
            "tool": fn,
            "description": record.spec.description,
            "parameters": record.spec.parameters,
            "note": f"{fn} is now callable.",
        }

    def _meta_list_tools(self, query: str = "") -> list[dict[str, Any]]:
        callable_names = {r.name: fn for fn, r in self._tools.items()}
        found: list[ToolRecord] = list(islice(self.forge.registry.search(query), 25))
        return [
            {
                "name": callable_names.get(r.name, r.name),
                "description": r.spec.description,
                "callable": r.name in callable_names,
            }
            for r in found
        ]

    def _job_tool(self, tool: str) -> ToolRecord:
        fn = self.resolve(tool)
        if fn is None or fn not in self._tools:
            from toolforge.errors import NotFoundError

            raise NotFoundError("tool", tool, hint="Call list_tools to see the tools you may use.")
        return self._tools[fn]

    def _meta_submit_job(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        record = self._job_tool(tool)
        handle = self.forge.submit(
            f"{record.name}@{record.version}", validate_args(record.spec, args or {})
        )
        return {"job_id": handle.id, "status": str(_value(handle.status()))}

    def _meta_job_status(
        self, job_id: str, wait: bool = False, *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        from toolforge.errors import JobWaitTimeout

        handle = self.forge.job(job_id)
        if wait:
            with suppress(JobWaitTimeout):  # still running: the status says so
                handle.wait(timeout=min(timeout_s or JOB_WAIT_S, JOB_WAIT_S))
        status = str(_value(handle.status()))
        out: dict[str, Any] = {"job_id": job_id, "status": status}
        if status in FINISHED_JOB:
            out["result"] = handle.result()  # a failed job raises its error: the model reads it
        return out


def _value(status: Any) -> Any:
    return getattr(status, "value", status)


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _memory_definitions() -> list[dict[str, Any]]:
    """The memory part's tool definitions, when that part is installed."""
    try:
        from toolforge.memory import tools as memory_tools
    except ImportError:
        return []
    return list(memory_tools.MEMORY_TOOLS)
