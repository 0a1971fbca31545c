"""Synthesis: a requirement in plain words → a tested, registered tool.

``draft`` (the model's answer shape), ``prompts`` (package data), ``checks`` (static checks,
no execution), ``failures`` (report → repair text), ``pipeline`` (the loop).
"""

from toolforge.synth.draft import ToolDraft, normalize_name, to_bundle
from toolforge.synth.pipeline import Candidate, SynthesisResult, Synthesizer, SynthEvent

__all__ = [
    "Candidate",
    "SynthEvent",
    "SynthesisResult",
    "Synthesizer",
    "ToolDraft",
    "normalize_name",
    "to_bundle",
]
