"""How calls are made and screened: refusal patterns compile, and each model's provider can do
what it is asked (batches, the agents' tool use)."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.protocol.checks.base import Checker
from orchestrator.protocol.schema import ModelRef, Protocol
from orchestrator.protocol.yamlmap import Path_


def check_calls(protocol: Protocol, path: Path, lines: dict[Path_, int]) -> None:
    """Each rule in turn; the first broken one raises."""
    _Calls(protocol, path, lines).run()


class _Calls(Checker):
    def run(self) -> None:
        self.screen_patterns()
        self.providers()

    def screen_patterns(self) -> None:
        """Each refusal pattern of the screen stage compiles."""
        for i, pattern in enumerate(self.p.screen.refusals):
            try:
                re.compile(pattern)
            except re.error as e:
                raise self.fail(
                    ("screen", "refusals", i),
                    f"not a regular expression: {e}; write a Python regex, e.g. "
                    "'^I (can.t|won.t) help', and escape literal ( [ . * + ? with a backslash",
                ) from None

    def providers(self) -> None:
        """`provider: openai` serves subjects called one at a time: the Message Batches API and
        the agents' tool use are the Anthropic API's."""
        for i, s in enumerate(self.p.subjects):
            if s.provider == "openai" and s.batch:
                raise self.fail(
                    ("subjects", i, "batch"),
                    "batch: true sends calls through Anthropic's Message Batches API, which "
                    "openai subjects cannot use: remove `batch: true` to call this subject "
                    "online, or use provider: anthropic",
                )
            turns = self.p.materials.templates
            prefill = isinstance(turns, list) and turns and turns[-1].role == "assistant"
            if s.provider == "openai" and prefill and turns[-1].source is not None:
                raise self.fail(
                    ("subjects", i, "provider"),
                    "the conversation ends with a fixed assistant turn (a prefill), which "
                    "openai's chat completions cannot continue: end the templates with a user "
                    "or tool_result turn, or use provider: anthropic for this subject",
                )
        agents: list[tuple[Path_, str, ModelRef]] = [
            (("evaluation", "judge"), "the evaluator agents use", self.p.evaluation.judge)
        ]
        if (q := self.p.analysis.qualitative) is not None and q.model is not None:
            agents.append((("analysis", "qualitative", "model"), "the analyst agent uses", q.model))
        for where, who, ref in agents:
            if ref.provider == "openai":
                raise self.fail(
                    (*where, "provider"),
                    f"{who} Anthropic's tool use, which the openai provider does not "
                    "map yet: use provider: anthropic (or local) here; openai models can be "
                    "subjects",
                )
