"""The one exception tree of toolforge.

Every error a user can meet is a :class:`ToolforgeError`; the CLI's single error
boundary prints its message and exits with its ``exit_code``::

    ToolforgeError                      exit 1   something failed
    ├── UsageError                      exit 2   bad input: fix the command or the file
    │   ├── SpecError                            a tool.yaml / tool directory breaks a rule (all problems listed)
    │   ├── ArgumentError                        call arguments do not match the tool's JSON Schema
    │   ├── NotFoundError                        an unknown tool, version, job, agent, node, run …
    │   └── ConfigError                          a bad config file or setting
    ├── EnvironmentUnavailable          exit 3   something toolforge needs is not there
    │   ├── DockerUnavailable                    the Docker engine cannot be reached
    │   └── ModelUnavailable                     no model, a wrong key, an unknown model
    ├── LimitExceeded                   exit 4   a limit was hit
    │   ├── ToolTimeout                          wall-time limit: the work was killed
    │   ├── OutOfMemory                          memory limit: the container was OOM-killed
    │   ├── OutputTooLarge                       the result is over limits.output_kb
    │   └── BudgetExceeded                       an agent ran out of steps / tokens / time
    ├── ToolFailed                      exit 1   the tool ran and raised / exited non-zero
    ├── TestsFailed                     exit 1   a tool's own tests failed in the sandbox
    ├── BuildError                      exit 1   an image build failed (carries the build log)
    ├── DependencyError                 exit 1   a pip / npm / apt dependency cannot be resolved
    ├── LLMError                        exit 1   the model kept answering with unusable output
    ├── SynthesisFailed                 exit 1   no draft passed its tests within the attempts
    ├── JobCancelled                    exit 5   a background job was cancelled before it finished
    ├── JobWaitTimeout                  exit 124 a job was still queued/running when the wait ended
    └── Interrupted                     exit 130 Ctrl-C

Exceptions carry fields and never log on construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ToolforgeError(Exception):
    """Root of every error toolforge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class UsageError(ToolforgeError):
    exit_code = 2


class SpecError(UsageError):
    """A tool spec or tool directory is invalid. ``problems`` lists every (path, message)."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = [f"Invalid tool {source}: {len(self.problems)} problem(s)"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in self.problems]
        super().__init__("\n".join(lines))


class ArgumentError(UsageError):
    """Arguments for a tool call failed its parameter schema."""

    def __init__(self, tool: str, problems: Sequence[tuple[str, str]]) -> None:
        self.tool = tool
        self.problems = list(problems)
        lines = [f"Invalid arguments for {tool}:"]
        lines += [f"  {path or '<args>'}: {msg}" for path, msg in self.problems]
        super().__init__("\n".join(lines), hint=f"See the parameters with: toolforge show {tool}")


class NotFoundError(UsageError):
    def __init__(self, kind: str, name: str, *, hint: str | None = None) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"Unknown {kind}: {name}", hint=hint)


class ConfigError(UsageError):
    pass


class EnvironmentUnavailable(ToolforgeError):
    exit_code = 3


class DockerUnavailable(EnvironmentUnavailable):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"The Docker engine is not reachable: {detail}",
            hint="Start it (make setup does: apt-get install docker.io; dockerd &) "
            "or set DOCKER_HOST, or use the local backend with TOOLFORGE_BACKEND=local.",
        )


class ModelUnavailable(EnvironmentUnavailable):
    pass


class LimitExceeded(ToolforgeError):
    exit_code = 4


class ToolTimeout(LimitExceeded):
    def __init__(self, tool: str, timeout_s: float) -> None:
        self.tool = tool
        self.timeout_s = timeout_s
        super().__init__(
            f"{tool} exceeded its time limit of {timeout_s:g}s; the work was killed",
            hint="Raise it with --timeout or limits.timeout_s in tool.yaml.",
        )


class OutOfMemory(LimitExceeded):
    def __init__(self, tool: str, memory_mb: int) -> None:
        self.tool = tool
        self.memory_mb = memory_mb
        super().__init__(
            f"{tool} ran out of memory (limit {memory_mb} MB) and was killed",
            hint="Raise limits.memory_mb in tool.yaml if the tool really needs more.",
        )


class OutputTooLarge(LimitExceeded):
    def __init__(self, tool: str, detail: str) -> None:
        self.tool = tool
        super().__init__(
            f"{tool}: {detail}",
            hint="Return less, or raise limits.output_kb in tool.yaml.",
        )


class BudgetExceeded(LimitExceeded):
    pass


class ToolFailed(ToolforgeError):
    """The tool ran and failed. ``error`` is the runner's error object."""

    def __init__(self, tool: str, error_type: str, message: str, traceback: str = "") -> None:
        self.tool = tool
        self.error_type = error_type
        self.traceback = traceback
        super().__init__(f"{tool} failed: {error_type}: {message}")


class TestsFailed(ToolforgeError):
    __test__ = False  # not a pytest class

    def __init__(self, tool: str, report: Any) -> None:
        self.tool = tool
        self.report = report
        failed = [c for c in getattr(report, "cases", []) if not c.passed]
        lines = [f"{tool}: {len(failed)} of {len(getattr(report, 'cases', []))} test(s) failed"]
        for case in failed[:5]:
            lines.append(f"  test {case.index}: {case.detail}")
        super().__init__(
            "\n".join(lines), hint="Nothing was registered. Fix the tool, or add it with --no-test."
        )


class BuildError(ToolforgeError):
    def __init__(self, message: str, build_log: str = "") -> None:
        self.build_log = build_log
        tail = "\n".join(build_log.strip().splitlines()[-15:])
        super().__init__(message + (f"\n--- build log (tail) ---\n{tail}" if tail else ""))


class DependencyError(ToolforgeError):
    def __init__(self, kind: str, name: str, detail: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(
            f"Cannot resolve {kind} dependency {name!r}: {detail}",
            hint="Check the name and version in tool.yaml dependencies.",
        )


class LLMError(ToolforgeError):
    """The model's output stayed unusable. Carries the attempts and the last raw output."""

    def __init__(self, message: str, *, attempts: int = 0, last_output: str = "") -> None:
        self.attempts = attempts
        self.last_output = last_output
        super().__init__(message)


class SynthesisFailed(ToolforgeError):
    """Nothing was registered. ``result`` is the SynthesisResult (history, usage, timings)."""

    def __init__(
        self, message: str, *, draft_dir: str | None = None, attempts: int = 0, result: Any = None
    ) -> None:
        self.draft_dir = draft_dir
        self.attempts = attempts
        self.result = result
        super().__init__(
            message, hint=f"The last draft and its report are in {draft_dir}" if draft_dir else None
        )


class JobCancelled(ToolforgeError):
    """``jobs wait`` / ``JobHandle.result()`` on a cancelled job."""

    exit_code = 5

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Job {job_id} was cancelled")


class JobWaitTimeout(ToolforgeError):
    """Waiting ended before the job did; the job itself goes on (like coreutils ``timeout``: 124)."""

    exit_code = 124

    def __init__(self, job_id: str, status: str, timeout_s: float) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(
            f"Job {job_id} is still {status} after {timeout_s:g}s of waiting",
            hint=f"It goes on in the background: toolforge jobs wait {job_id}, or cancel it: toolforge jobs cancel {job_id}",
        )


class Interrupted(ToolforgeError):
    exit_code = 130

    def __init__(self, message: str = "Interrupted") -> None:
        super().__init__(message)
