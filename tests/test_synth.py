"""The synthesis pipeline.

Unit part: drafts, static checks, prompts and the draft → check → test → repair/resample
loop with the scripted model and a scripted test runner (so each branch is exact and fast).
Docker part (``@pytest.mark.docker``): the whole pipeline through ``Forge.generate`` against
the REAL sandbox for every language — first try, after a repair, garbage JSON then valid,
never passing, a transient error retried — plus the CLI's exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import litellm
import pytest

from tests.synth_drafts import REQUIREMENT, TESTS, draft, draft_json
from toolforge.errors import BuildError, SpecError, SynthesisFailed
from toolforge.forge import Forge
from toolforge.llm.litellm_model import LiteLLM
from toolforge.spec import CaseResult, TestReport, ToolBundle
from toolforge.spec.models import Language
from toolforge.synth import prompts
from toolforge.synth.checks import static_problems
from toolforge.synth.draft import ToolDraft, normalize_name, to_bundle
from toolforge.synth.failures import describe_report
from toolforge.synth.pipeline import Synthesizer, SynthEvent
from toolforge.testing import ScriptedLLM

LANGUAGES = ["python", "typescript", "bash"]


def bundle_of(language: str, kind: str = "good", **kw: Any) -> ToolBundle:
    return to_bundle(
        ToolDraft.model_validate(draft(language, kind, **kw)),
        language=language,
        requirement=REQUIREMENT,
    )


# -- drafts ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Vowel Count!", "vowel-count"),
        ("c_to_f", "c_to_f"),
        ("42 things", "tool-42-things"),
        ("---", "tool"),
        ("x" * 80, "x" * 64),
    ],
)
def test_normalize_name(raw: str, name: str) -> None:
    assert normalize_name(raw) == name


def test_to_bundle_builds_a_spec_with_requirement_and_tests() -> None:
    bundle = bundle_of("typescript", name="C To F")
    assert bundle.name == "c-to-f"
    assert bundle.spec.language is Language.typescript
    assert bundle.spec.requirement == REQUIREMENT
    assert [(t.args, t.expect) for t in bundle.spec.tests] == [
        (t["args"], t["expect"]) for t in TESTS
    ]
    assert bundle.source.endswith("}\n")


def test_to_bundle_reports_spec_problems() -> None:
    bad = ToolDraft.model_validate({**draft("python"), "parameters": {"type": "array"}})
    with pytest.raises(SpecError) as info:
        to_bundle(bad, language="python", requirement="x")
    assert info.value.problems == [("parameters", 'must be a JSON Schema with "type": "object"')]
    no_description = ToolDraft.model_validate({**draft("python"), "description": " "})
    assert to_bundle(no_description, language="python", requirement="x").spec.description == "x"


def test_draft_needs_three_tests() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        ToolDraft.model_validate(draft("python", tests=TESTS[:2]))


# -- static checks --------------------------------------------------------------------------
@pytest.mark.parametrize("language", LANGUAGES)
def test_good_drafts_have_no_static_problems(language: str) -> None:
    assert static_problems(bundle_of(language)) == []


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("python", "main.py line 1: SyntaxError"),
        ("typescript", "main.ts"),
        ("bash", "main.sh does not parse (bash -n)"),
    ],
)
def test_broken_source_is_caught_without_running_it(language: str, expected: str) -> None:
    problems = static_problems(bundle_of(language, "broken"))
    assert len(problems) == 1 and problems[0].startswith(expected)


def test_python_entry_function_must_exist_and_match_the_parameters() -> None:
    bundle = bundle_of("python")
    no_run = ToolBundle(bundle.spec, "def convert(celsius):\n    return celsius\n")
    assert static_problems(no_run) == [
        "main.py must define a top-level function run(...) with one keyword argument per parameter"
    ]
    wrong_args = ToolBundle(bundle.spec, "def run(c, scale):\n    return c\n")
    assert static_problems(wrong_args) == [
        "run() has no argument 'celsius' but the parameters declare it",
        "run() requires argument 'c' which is not a declared parameter",
        "run() requires argument 'scale' which is not a declared parameter",
    ]
    assert static_problems(ToolBundle(bundle.spec, "def run(**args):\n    return 1\n")) == []


def test_typescript_needs_an_exported_run() -> None:
    bundle = bundle_of("typescript")
    problems = static_problems(ToolBundle(bundle.spec, "function run(args: any) { return 1; }\n"))
    assert problems == ["main.ts must contain `export function run(args: {...}) { ... }`"]


def test_test_args_must_match_the_schema() -> None:
    tests = [*TESTS[:2], {"args": {"celsius": "hot"}, "expect": 1}, {"args": {}, "expect": 1}]
    problems = static_problems(bundle_of("python", tests=tests))
    assert problems[0].startswith("test 3 args/celsius: 'hot' is not of type 'number'")
    assert problems[1].startswith("test 4 args: 'celsius' is a required property")


# -- prompts --------------------------------------------------------------------------------
@pytest.mark.parametrize("language", list(Language))
def test_prompts_have_rules_and_a_worked_example_per_language(language: Language) -> None:
    for variant in prompts.EXAMPLE_VARIANTS:
        messages = prompts.draft_messages("reverse words", language, variant=variant)
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert language.main_file in messages[0]["content"]
        example = ToolDraft.model_validate_json(messages[2]["content"])
        assert static_problems(to_bundle(example, language=language, requirement="x")) == []
        assert (
            messages[-1]["content"]
            == f"Write a {language.value} tool for this requirement: reverse words"
        )


def test_requirement_and_model_output_are_data_not_template_source() -> None:
    tricky = "echo {{ 7 * 7 }} and {% raw %}"
    messages = prompts.repair_messages(
        tricky, Language.bash, '{"code": "{{ config }}"}', "- {{ 1 + 1 }}"
    )
    text = "\n".join(m["content"] for m in messages)
    assert tricky in text and '{"code": "{{ config }}"}' in text and "- {{ 1 + 1 }}" in text
    assert "49" not in text


def test_describe_report_shows_expected_got_and_traceback_tail() -> None:
    report = TestReport(
        tool="t",
        version=1,
        cases=[
            CaseResult(
                index=0, kind="expect", args={"celsius": 0}, passed=False, expected=32, got=0
            ),
            CaseResult(
                index=1,
                kind="expect",
                args={"celsius": 1},
                passed=False,
                error={
                    "type": "ZeroDivisionError",
                    "message": "division by zero",
                    "traceback": "Traceback (most recent call last):\n  File main.py, line 2\nZeroDivisionError: division by zero",
                },
            ),
            CaseResult(
                index=2, kind="expect", args={"celsius": 2}, passed=True, expected=35.6, got=35.6
            ),
        ],
    )
    text = describe_report(report)
    assert text.splitlines() == [
        '- test 0 with args {"celsius": 0}: expected 32, got 0',
        '- test 1 with args {"celsius": 1}: raised ZeroDivisionError: division by zero',
        "    Traceback (most recent call last):",
        "      File main.py, line 2",
        "    ZeroDivisionError: division by zero",
    ]


# -- the loop, with a scripted test runner ----------------------------------------------------
class ScriptedSandbox:
    """Reports by source: ``good`` sources pass, others fail test 0 with expected-vs-got.

    (The code is never executed here; the Docker tests below run the real sandbox.)"""

    def __init__(self, language: str, *, build_error: bool = False) -> None:
        from tests.synth_drafts import SOURCES

        self.good = SOURCES[language]["good"]
        self.build_error = build_error
        self.built: list[str] = []

    def build(self, bundle: ToolBundle, *, progress: Any = None) -> str:
        self.built.append(bundle.source)
        if self.build_error:
            self.build_error = False
            raise BuildError("image build failed", build_log="step 3: esbuild: unexpected token")
        return f"toolforge-tool-{bundle.name}:x"

    def run_tests(self, bundle: ToolBundle, *, progress: Any = None) -> TestReport:
        ok = bundle.source == self.good
        cases = [
            CaseResult(
                index=i,
                kind="expect",
                args=t.args,
                passed=ok or i > 0,
                expected=t.expect,
                got=t.expect if (ok or i > 0) else 0,
            )
            for i, t in enumerate(bundle.spec.tests)
        ]
        return TestReport(tool=bundle.name, version=1, cases=cases)


@pytest.fixture
def forge() -> Forge:
    with Forge() as f:
        yield f


def synth(
    forge: Forge, llm: ScriptedLLM, language: str, **kw: Any
) -> tuple[Synthesizer, ScriptedSandbox, list[SynthEvent]]:
    events: list[SynthEvent] = []
    sandbox = ScriptedSandbox(language, **kw)
    return (
        Synthesizer(llm, sandbox, forge.add_bundle, forge.settings, progress=events.append),
        sandbox,
        events,
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_loop_first_try_registers_with_meta(forge: Forge, language: str) -> None:
    llm = ScriptedLLM([draft_json(language)])
    s, _, events = synth(forge, llm, language)
    result = s.run(REQUIREMENT, language=language)
    assert (result.passed, result.name, result.version, result.attempts, result.candidates) == (
        True,
        "c-to-f",
        1,
        1,
        1,
    )
    assert result.first_try
    record = forge.tool("c-to-f")
    assert record.meta["requirement"] == REQUIREMENT and record.meta["model"] == "scripted"
    assert record.meta["attempts"] == 1 and record.meta["tokens"]["prompt"] > 0
    assert record.report is not None and record.report.passed
    assert llm.requests[0].temperature == 0.2
    assert [e.stage for e in events] == [
        "draft",
        "check",
        "build",
        "test",
        "test",
        "register",
        "done",
    ]
    assert set(result.to_json()["seconds"]) == {"draft", "check", "build", "test", "register"}


def test_loop_repairs_from_the_exact_failures(forge: Forge) -> None:
    llm = ScriptedLLM([draft_json("python", "buggy"), draft_json("python")])
    s, sandbox, _ = synth(forge, llm, "python")
    result = s.run(REQUIREMENT, language="python", candidates=1)
    assert result.passed and result.attempts == 2 and result.candidates == 2
    repair = llm.requests[1]
    assert '- test 0 with args {"celsius": 0}: expected 32, got 0' in repair.messages[-1]["content"]
    assert json.loads(repair.messages[-2]["content"])["code"] == draft("python", "buggy")["code"]
    assert repair.temperature == 0.5
    assert forge.tool("c-to-f").meta["winning_kind"] == "repair"


def test_loop_garbage_json_then_valid_is_one_draft(forge: Forge) -> None:
    llm = ScriptedLLM(['{"name": "c-to-f", "code": """def run', draft_json("bash")])
    s, _, _ = synth(forge, llm, "bash")
    result = s.run(REQUIREMENT, language="bash")
    assert result.passed and result.candidates == 1
    assert "not valid JSON" in llm.requests[1].messages[-1]["content"]


def test_loop_static_failure_goes_to_repair_without_a_build(forge: Forge) -> None:
    llm = ScriptedLLM([draft_json("python", "broken"), draft_json("python")])
    s, sandbox, _ = synth(forge, llm, "python")
    assert s.run(REQUIREMENT, language="python", candidates=1).passed
    assert sandbox.built == [draft("python")["code"]]
    assert "SyntaxError" in llm.requests[1].messages[-1]["content"]


def test_loop_build_error_goes_to_repair(forge: Forge) -> None:
    llm = ScriptedLLM([draft_json("typescript"), draft_json("typescript")])
    s, _, _ = synth(forge, llm, "typescript", build_error=True)
    assert s.run(REQUIREMENT, language="typescript", candidates=1).passed
    assert "esbuild: unexpected token" in llm.requests[1].messages[-1]["content"]


def test_loop_samples_diverse_candidates_and_never_registers_a_failure(forge: Forge) -> None:
    llm = ScriptedLLM([draft_json("python", "buggy", name=f"n{i}") for i in range(6)])
    s, _, events = synth(forge, llm, "python")
    result = s.run(REQUIREMENT, language="python", attempts=2, candidates=3)
    assert not result.passed and result.candidates == 6 and llm.remaining == 0
    kinds = [c.plan.kind for c in result.history]
    assert kinds == ["draft", "fresh", "fresh", "repair", "fresh", "fresh"]
    assert [r.temperature for r in llm.requests] == [0.2, 0.7, 0.9, 0.5, 0.6, 1.0]
    assert len({r.seed for r in llm.requests}) == 6
    examples = [r.messages[1]["content"] for r in llm.requests]
    assert len(set(examples)) == 2  # both worked examples were used
    assert forge.list_tools() == []
    assert result.name == "n0"  # the first valid draft's name is kept for every candidate
    folder = result.draft_dir
    assert folder is not None and folder.parent == forge.settings.home / "drafts"
    assert (folder / "tool" / "main.py").read_text() == draft("python", "buggy")["code"]
    assert json.loads((folder / "report.json").read_text())["cases"][0]["passed"] is False
    assert len(json.loads((folder / "history.json").read_text())["candidates"]) == 6
    assert events[-1].stage == "failed"


def test_loop_unusable_model_output_everywhere_fails_cleanly(forge: Forge) -> None:
    llm = ScriptedLLM(["nonsense"] * 4)
    s, sandbox, _ = synth(forge, llm, "python")
    result = s.run(REQUIREMENT, language="python", attempts=2, candidates=1)
    assert not result.passed and sandbox.built == []
    assert (result.draft_dir / "last_output.json").read_text() == "nonsense"  # type: ignore[operator]
    assert "unusable" in (result.draft_dir / "failures.txt").read_text()  # type: ignore[operator]


def test_regenerating_a_name_makes_the_next_version(forge: Forge) -> None:
    for expected_version in (1, 2):
        llm = ScriptedLLM([draft_json("python", name="whatever")])
        s, _, _ = synth(forge, llm, "python")
        result = s.run(
            REQUIREMENT + f" v{expected_version}", language="python", name="Temp Convert"
        )
        assert (result.name, result.version) == ("temp-convert", expected_version)


# -- CLI errors (no sandbox reached) ----------------------------------------------------------
def test_cli_auth_error_exits_3_without_a_traceback(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def refuse(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise litellm.AuthenticationError(
            "Incorrect API key provided: sk-bad", llm_provider="openai", model="gpt-4o-mini"
        )

    monkeypatch.setattr(litellm, "completion", refuse)
    r = cli("generate", REQUIREMENT, "--model", "openai/gpt-4o-mini")
    assert r.code == 3 and len(calls) == 1
    assert r.err.startswith("Error: The model provider refused the API key for openai/gpt-4o-mini")
    assert "Traceback" not in r.err


def test_cli_rejects_an_unknown_language(cli) -> None:
    r = cli("generate", REQUIREMENT, "--lang", "cobol")
    assert r.code == 2 and r.err.startswith("Error: Unknown language 'cobol'")


# -- the whole pipeline against the real sandbox ---------------------------------------------
def generate(forge: Forge, language: str, **kw: Any):  # noqa: ANN201
    return forge.generate(REQUIREMENT, language=language, **kw)


@pytest.mark.docker
@pytest.mark.parametrize("language", LANGUAGES)
def test_docker_first_try(language: str) -> None:
    with Forge(llm=ScriptedLLM([draft_json(language)])) as forge:
        result = generate(forge, language)
        assert result.passed and result.first_try
        assert result.report.passed and len(result.report.cases) == 3
        assert forge.run("c-to-f", celsius=100) == 212


@pytest.mark.docker
@pytest.mark.parametrize("language", LANGUAGES)
def test_docker_repair_after_a_failing_test(language: str) -> None:
    llm = ScriptedLLM([draft_json(language, "buggy"), draft_json(language)])
    with Forge(llm=llm) as forge:
        result = generate(forge, language, candidates=1)
        assert result.passed and result.attempts == 2
        failures = llm.requests[1].messages[-1]["content"]
        assert '- test 0 with args {"celsius": 0}: expected 32, got 0' in failures
        assert forge.tool("c-to-f").version == 1


@pytest.mark.docker
@pytest.mark.parametrize("language", LANGUAGES)
def test_docker_garbage_json_then_valid(language: str) -> None:
    llm = ScriptedLLM(["I think the tool should be:\n def run(): ...", draft_json(language)])
    with Forge(llm=llm) as forge:
        result = generate(forge, language)
        assert result.passed and result.candidates == 1 and len(llm.requests) == 2


@pytest.mark.docker
@pytest.mark.parametrize("language", LANGUAGES)
def test_docker_never_passes_registers_nothing_and_exits_1(
    language: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = ScriptedLLM([draft_json(language, "buggy")] * 2)
    with Forge(llm=llm) as forge:
        with pytest.raises(SynthesisFailed) as info:
            generate(forge, language, attempts=2, candidates=1)
        assert info.value.exit_code == 1
        assert forge.list_tools() == []
        folder = Path(info.value.draft_dir or "")
        assert (folder / "tool" / "tool.yaml").is_file() and (folder / "report.json").is_file()
        assert str(folder) in str(info.value)


@pytest.mark.docker
@pytest.mark.parametrize("language", LANGUAGES)
def test_docker_transient_error_is_retried(language: str) -> None:
    outcomes: list[Any] = [
        litellm.RateLimitError("429 slow down", llm_provider="openai", model="m"),
        litellm.APIConnectionError("Connection refused", llm_provider="openai", model="m"),
        {
            "model": "m",
            "choices": [{"message": {"content": draft_json(language)}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50},
        },
    ]

    def completion(**kwargs: Any) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    llm = LiteLLM("openai/m", completion=completion, backoff_s=0.01)
    with Forge(llm=llm) as forge:
        result = generate(forge, language)
        assert result.passed and outcomes == []
        assert result.usage.prompt_tokens == 100 and result.usage.completion_tokens == 50


@pytest.mark.docker
def test_docker_cli_json_and_exit_1(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI end to end, with litellm.completion replaced (no network): --json on failure."""
    replies = [draft_json("python", "buggy")]

    def completion(**kwargs: Any) -> Any:
        return {
            "model": "m",
            "choices": [{"message": {"content": replies[0]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }

    monkeypatch.setattr(litellm, "completion", completion)
    r = cli(
        "generate",
        REQUIREMENT,
        "--model",
        "openai/m",
        "--attempts",
        "1",
        "--candidates",
        "1",
        "--json",
    )
    assert r.code == 1
    data = json.loads(r.out)
    assert (data["passed"], data["name"], data["version"], data["attempts"]) == (
        False,
        "c-to-f",
        None,
        1,
    )
    assert Path(data["draft_dir"]).is_dir()
    replies[0] = draft_json("python")
    r = cli("generate", REQUIREMENT, "--model", "openai/m", "--json")
    data = json.loads(r.out)
    assert r.code == 0 and (data["passed"], data["version"], data["tokens"]["total"]) == (
        True,
        1,
        15,
    )
    r = cli("generate", REQUIREMENT, "--model", "openai/m")
    assert r.code == 0 and r.out.startswith(
        "✓ c-to-f@2 registered: 1 attempt(s), 1 draft(s), tests 3/3 passed"
    )
