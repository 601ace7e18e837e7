"""`EvaluatorAgent`: one evaluator working through its assignment on the tool loop.

It must call `read_protocol` first, pass the comprehension check, then `get_batch` and
`submit_verdicts` until every item has a verdict or an unscored reason; it may `flag_issue` and,
when the run has probes, ask `truesight`. Everything it decides goes to the `Sink` as it happens,
so a killed run loses at most one turn. When the conversation nears `context_budget` tokens the
agent writes notes (`write_notes`) to its memory file and continues in a fresh conversation
started from the protocol, the notes and the remaining items; a restarted run starts evaluators
the same way. A judge call that keeps failing for a passing reason (overload, rate limits, lost
connections) raises `agents.client.Unavailable` out of `run`: the items not judged yet get no
verdict here — an outage is not a verdict — and wait for a later pass. `mode="scripted"`
(agents/evaluator/scripted.py) is for models that cannot plan tool calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agents.client import CallResult, CallSpec, LLMClient
from agents.evaluator.assignment import Assignment
from agents.evaluator.brief import AgentVerdict, Brief, Sink, WorkItem
from agents.evaluator.comprehension import comprehension_tool
from agents.evaluator.flag_issue import flag_issue_tool
from agents.evaluator.get_batch import get_batch_tool
from agents.evaluator.read_protocol import read_protocol_tool
from agents.evaluator.scripted import run_scripted
from agents.evaluator.submit_verdicts import submit_verdicts_tool
from agents.evaluator.write_notes import WRITE_NOTES, ask, write_notes_tool, write_unwritten
from agents.loop import (
    Chat,
    Hooks,
    Message,
    Retry,
    Transcript,
    continued,
    retry_note,
    tool_loop,
    user,
)
from agents.prompts import say
from agents.tools import Tool
from agents.truesight import TruesightTool, truesight_tool

NUDGES = 3
"""Replies without a tool call, while items remain, before the conversation is given up."""
TURNS = "evaluator_turns.j2"


@dataclass(frozen=True)
class Budget:
    """How far an evaluator may go: tries per item, context before compaction, turns."""

    max_attempts: int = 3
    context_budget: int = 120_000
    max_turns: int = 80


class EvaluatorAgent:
    """One evaluator working through its assignment (see the module docstring)."""

    def __init__(
        self,
        client: LLMClient,
        sink: Sink,
        *,
        name: str,
        batch_id: str,
        brief: Brief,
        work: list[WorkItem],
        model: str,
        params: dict[str, Any],
        seed: int,
        max_attempts: int = 3,
        context_budget: int = 120_000,
        max_turns: int = 80,
        mode: Literal["tools", "scripted"] = "tools",
        truesight: TruesightTool | None = None,
        already: dict[tuple[str, int], AgentVerdict] | None = None,
        passed: bool = False,
        restarted: bool = False,
        retry: Retry = Retry(),
    ):
        """`already` holds verdicts recorded before a restart; `passed` says the comprehension
        check was passed then (a restarted agent is not asked again); `restarted` says an earlier
        conversation of this agent was cut off (the new one opens from its notes); `retry` is how
        often a failed judge call is sent again before `Unavailable` is raised."""
        self.sink, self.name, self.brief, self.mode = sink, name, brief, mode
        self.limits = Budget(max_attempts, context_budget, max_turns)
        self.work = Assignment.shuffled(
            name,
            brief,
            sink,
            work,
            seed=seed,
            max_attempts=max_attempts,
            already=already,
            passed=passed,
        )
        self.restarted = restarted
        self.truesight = truesight
        if truesight is not None:  # the tool resolves refs the agent sees to item ids
            truesight.responses = {r: (w.item_id, w.response) for r, w in self.work.refs.items()}
        spec = CallSpec("evaluate", batch_id, name)
        system = brief.system_prompt()
        self.chat = Chat(
            client, spec, model, params, system, cache=True, retry=retry, on_retry=self._retrying
        )
        self.tools = self._tools()
        self.stop_reason = "no further progress"

    @property
    def remaining(self) -> list[str]:
        return self.work.remaining

    async def run(self) -> list[AgentVerdict]:
        """Work until every item has a verdict or an unscored reason; raises `Replaced`, and
        `Unavailable` when the judge API keeps failing (the items left have no verdict)."""
        reason = "restart" if self.restarted or self.work.done else "start"
        while self.remaining:
            session = self.sink.session(self.name, reason)
            if self.mode == "scripted":
                await run_scripted(self.chat, self.work, session, self.limits.max_turns)
                break
            outcome = await self._conversation(session, reason)
            if outcome != "compacted":
                break
            reason = "compaction"
        for ref in self.remaining:  # stopped early: say so for each item, never drop one
            self.work.finish(ref, None, f"unscored: evaluator stopped ({self.stop_reason})")
        return [self.work.done[r] for r in self.work.refs]

    def _retrying(self, result: CallResult, attempt: int, wait_s: float) -> None:
        text = retry_note("judge", result, attempt, self.chat.retry, wait_s)
        self.sink.log(self.name, "retry", text)

    def _tools(self) -> list[Tool]:
        work = self.work
        tools = [read_protocol_tool(work)]
        if self.brief.questions:
            tools.append(comprehension_tool(work))
        tools.append(get_batch_tool(work))
        if self.truesight is not None:
            tools.append(truesight_tool(self._truesight, self.truesight.offered))
        return [*tools, flag_issue_tool(work), submit_verdicts_tool(work)]

    def _truesight(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        self.work.gate()
        return self.truesight(tool_input)  # type: ignore[misc]

    # -- the free conversation ------------------------------------------------------------

    def _opening(self, reason: str, session: int) -> list[Message]:
        total = len(self.work.refs)
        if reason == "start":
            return [user(say(TURNS, "opening", name=self.name, total=total))]
        self.work.read = False  # a fresh conversation reads the protocol again
        text = say(
            TURNS,
            "reopening",
            name=self.name,
            reason=reason,
            session=session,
            notes=self.sink.notes(self.name).strip(),
            remaining=len(self.remaining),
            total=total,
        )
        return [user(text)]

    async def _conversation(self, session: int, reason: str) -> str:
        """One conversation: "done", "stopped" (see `stop_reason`) or "compacted"."""
        nudges, at_start = 0, len(self.remaining)

        def on_text(result: CallResult, messages: list[Message]) -> list[Message] | None:
            nonlocal nudges
            if not self.remaining:
                return None
            nudges += 1
            if nudges > NUDGES:
                self.stop_reason = "it stopped calling tools with items left"
                return None
            return continued(messages, result, say(TURNS, "nudge", remaining=len(self.remaining)))

        def over_budget(result: CallResult) -> bool:
            # only after progress: a budget smaller than the protocol itself must not send the
            # agent round fresh conversations forever
            used = result.input_tokens + result.output_tokens
            progressed = len(self.remaining) < at_start
            return progressed and used > self.limits.context_budget

        hooks = Hooks(
            key=lambda turn: {"session": session, "turn": turn},
            on_text=on_text,
            done=lambda result: not self.remaining or over_budget(result),
        )
        opening = self._opening(reason, session)
        transcript = await tool_loop(
            self.chat, opening, self.tools, max_turns=self.limits.max_turns, hooks=hooks
        )
        return await self._outcome(transcript, session)

    async def _outcome(self, transcript: Transcript, session: int) -> str:
        if transcript.ended == "error":
            self.stop_reason = f"judge call failed: {transcript.final.error}"
        elif transcript.ended == "turns":
            self.stop_reason = f"it used its {self.limits.max_turns} turns"
        elif transcript.ended == "done" and self.remaining:
            await self._compact(transcript.messages, session, len(transcript.results))
            return "compacted"
        return "stopped" if self.remaining else "done"

    async def _compact(self, messages: list[Message], session: int, turn: int) -> None:
        notes = write_notes_tool(self.work)
        hooks = Hooks(key=lambda turn: {"session": session, "turn": turn})
        transcript = await tool_loop(
            self.chat,
            [*messages, user(ask())],
            [*self.tools, notes],
            max_turns=1,
            first_turn=turn,
            force=WRITE_NOTES,
            hooks=hooks,
        )
        if not transcript.final.tool_inputs(WRITE_NOTES):
            write_unwritten(self.work)  # the model wrote none: keep what the orchestrator knows
        judged = len(self.work.refs) - len(self.remaining)
        self.sink.log(
            self.name,
            "compaction",
            f"{self.name} compacted its context after {judged} of {len(self.work.refs)} items; "
            f"notes in memory/{self.name}.md",
        )
