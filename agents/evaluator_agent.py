"""Evaluator sub-agents: read the protocol, pass a comprehension check, judge blinded items with
tools, flag what looks wrong, and keep going across context compactions and restarts.

An `EvaluatorAgent` owns one evaluator's work (its assignment). Its tools:

- `read_protocol` unlocks the others; it returns the verdict fields, the comprehension
  questions and the assignment (the protocol text itself sits in the system prompt, the static
  prefix every evaluator shares and the API caches).
- `comprehension_check` scores answers against the protocol's expected ones; a failed check is
  re-primed once with the explanations; a second failure ends the agent (`Replaced`), and the
  orchestrator hands the work to a fresh one.
- `get_batch` hands out up to `chunk_size` blinded items (opaque refs, no condition labels or
  framing, shuffled with a seed per evaluator) and refuses more while some are unjudged.
- `truesight` reads a response with the local worker's probes; verdicts may cite the ids.
- `flag_issue` sends a data_quality / rubric_ambiguity / parsing / other flag to the researcher.
- `submit_verdicts` validates each verdict with pydantic; errors go back as a tool error to fix;
  after `max_attempts` failed tries an item is recorded *unscored* with the reason.

Everything the agent decides goes to a `Sink` as it happens (verdicts, flags, check answers), so
a killed run loses at most one turn. When the conversation nears `context_budget` tokens the agent
writes notes (`write_notes`) to its memory file and continues in a fresh conversation started from
the protocol, the notes and the remaining items; a restarted run starts evaluators the same way.

`mode="scripted"` is for models that cannot plan tool calls: the orchestrator calls the same tools
itself in the same order and forces the model's one tool per step (`comprehension_check`, then
`submit_verdicts` for each chunk) with `tool_choice`, so a small local model only fills in tool
inputs, which the worker can constrain to the tool's schema.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from agents.client import CallResult, CallSpec, LLMClient
from agents.evaluator import FieldSpec, _prompts, tool_definition, verdict_model
from agents.truesight import TOOL as TRUESIGHT_TOOL
from agents.truesight import ToolInputError, TruesightTool

FLAG_KINDS = ("data_quality", "rubric_ambiguity", "parsing", "other")
NUDGES = 3
"""Replies without a tool call, while items remain, before the conversation is given up."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: str
    explanation: str = ""


@dataclass(frozen=True)
class Brief:
    """What an evaluator may know about the experiment: nothing that names a condition."""

    title: str
    question: str
    rubric: str
    fields: list[FieldSpec]
    questions: list[Question] = field(default_factory=list)
    pass_mark: float = 1.0
    chunk_size: int = 10
    truesight: bool = False

    def system_prompt(self) -> str:
        return _prompts.get_template("evaluator_agent_system.j2").render(brief=self)


@dataclass(frozen=True)
class WorkItem:
    """One entry of the assignment; `prompt` is the blinded input the subject saw."""

    item_id: str
    copy: int
    role: str
    prompt: str
    response: str


@dataclass(frozen=True)
class AgentVerdict:
    item_id: str
    copy: int
    role: str
    fields: dict[str, Any] | None
    reason: str | None = None
    cites: tuple[int, ...] = ()


class Sink(Protocol):
    """Where an evaluator's decisions go as they happen; the orchestrator implements it."""

    def verdicts(self, evaluator: str, verdicts: list[AgentVerdict]) -> None: ...

    def flag(self, evaluator: str, kind: str, item_ids: list[str], text: str) -> bool: ...

    def comprehension(
        self, evaluator: str, answers: dict[str, str], wrong: list[str], passed: bool
    ) -> int: ...

    def session(self, evaluator: str, reason: str) -> int: ...

    def unknown_probe_ids(self, ids: list[int]) -> list[int]: ...

    def notes(self, evaluator: str) -> str: ...

    def write_notes(self, evaluator: str, text: str) -> None: ...

    def log(self, evaluator: str, kind: str, text: str) -> None: ...


class Replaced(Exception):
    """The evaluator failed its comprehension check twice: a fresh one takes over its work."""


# --- tool definitions -----------------------------------------------------------------------

READ_PROTOCOL = {
    "name": "read_protocol",
    "description": "Confirm you have read the experiment's design and rubric (in your "
    "instructions); returns the verdict fields, your comprehension questions and your "
    "assignment. Call this first: every other tool refuses until you have.",
    "input_schema": {"type": "object", "properties": {}},
}


def comprehension_tool(questions: list[Question]) -> dict[str, Any]:
    props = {
        q.id: {"type": "string", "enum": list(q.choices), "description": q.question}
        for q in questions
    }
    return {
        "name": "comprehension_check",
        "description": "Answer every comprehension question by its id, with one of its choices. "
        "Required before your first item.",
        "input_schema": {
            "type": "object",
            "properties": {
                "answers": {
                    "type": "object",
                    "properties": props,
                    "required": list(props),
                    "additionalProperties": False,
                }
            },
            "required": ["answers"],
        },
    }


GET_BATCH = {
    "name": "get_batch",
    "description": "Get your next items to judge (refs, the input each model saw, its "
    "response). Submit verdicts for all of them before asking for more.",
    "input_schema": {"type": "object", "properties": {}},
}

FLAG_ISSUE = {
    "name": "flag_issue",
    "description": "Tell the researcher something looks wrong: with the data (data_quality: "
    "truncated, garbled, missing or duplicated content, a pattern suggesting a bug), with the "
    "rubric (rubric_ambiguity: a case it does not settle), with parsing (parsing), or other.",
    "input_schema": {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": list(FLAG_KINDS)},
            "refs": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Refs of example items (may be empty).",
            },
            "text": {"type": "string", "description": "What you saw and why it matters."},
        },
        "required": ["kind", "refs", "text"],
    },
}

WRITE_NOTES = {
    "name": "write_notes",
    "description": "Your conversation is about to be restarted to free context. Write what you "
    "will need to continue: what you have done, running observations (patterns, how you have "
    "been calling borderline cases) and open doubts.",
    "input_schema": {
        "type": "object",
        "properties": {
            "done": {"type": "string"},
            "observations": {"type": "string"},
            "doubts": {"type": "string"},
        },
        "required": ["done", "observations", "doubts"],
    },
}


CITES = {
    "truesight_ids": {
        "type": "array",
        "items": {"type": "integer"},
        "maxItems": 8,
        "description": "probe_result_ids of truesight readouts this verdict relied on.",
    }
}


def submit_tool(fields: list[FieldSpec], refs: list[str] | None = None) -> dict[str, Any]:
    """submit_verdicts as agents see it; with `refs`, keyed by exactly those refs and without
    citations (the scripted mode, which calls no truesight tool)."""
    tool = tool_definition(fields, refs, extra=None if refs else CITES)
    tool["description"] = (
        "Submit verdicts for items you got from get_batch, one per ref. Invalid verdicts come "
        "back as an error to fix; valid ones are kept."
    )
    return tool


# --- the agent ------------------------------------------------------------------------------


@dataclass
class _State:
    """What the agent has done; rebuilt from the sink's records when a run restarts."""

    read: bool = False
    passed: bool = False
    check_attempts: int = 0
    served: list[str] = field(default_factory=list)
    done: dict[str, AgentVerdict] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)


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
    ):
        """`already` holds verdicts recorded before a restart; `passed` says the comprehension
        check was passed then (a restarted agent is not asked again); `restarted` says an earlier
        conversation of this agent was cut off (the new one opens from its notes)."""
        self.client, self.sink, self.name, self.batch_id = client, sink, name, batch_id
        self.brief, self.model, self.params = brief, model, params
        self.max_attempts, self.context_budget, self.max_turns = (
            max_attempts,
            context_budget,
            max_turns,
        )
        self.mode = mode
        order = list(work)
        random.Random(f"{seed}:{name}").shuffle(order)
        self.refs = {f"R{n + 1:02d}": w for n, w in enumerate(order)}
        self.schema = verdict_model(brief.fields)
        self.state = _State(passed=passed or not brief.questions)
        for ref, w in self.refs.items():
            if already and (w.item_id, w.copy) in already:
                self.state.done[ref] = already[(w.item_id, w.copy)]
        self.restarted = restarted
        self.truesight = truesight
        if truesight is not None:  # the tool resolves refs the agent sees to item ids
            truesight.responses = {r: (w.item_id, w.response) for r, w in self.refs.items()}
        self.tools = self._tools()
        self.system = brief.system_prompt()

    # -- public ---------------------------------------------------------------------------

    @property
    def remaining(self) -> list[str]:
        return [r for r in self.refs if r not in self.state.done]

    async def run(self) -> list[AgentVerdict]:
        """Work until every item has a verdict or an unscored reason; raises `Replaced`."""
        reason = "restart" if self.restarted or self.state.done else "start"
        while self.remaining:
            session = self.sink.session(self.name, reason)
            if self.mode == "scripted":
                await self._scripted(session)
                break
            outcome = await self._conversation(session, reason)
            if outcome != "compacted":
                break
            reason = "compaction"
        for ref in self.remaining:  # stopped early: say so for each item, never drop one
            self._finish(ref, None, f"unscored: evaluator stopped ({self._stop_reason})")
        return [self.state.done[r] for r in self.refs]

    _stop_reason = "no further progress"

    # -- the free agent loop --------------------------------------------------------------

    def _opening(self, reason: str, session: int) -> list[dict[str, Any]]:
        if reason == "start":
            text = (
                f"You are {self.name}. You have {len(self.refs)} items to judge. "
                "Begin by calling read_protocol."
            )
        else:
            notes = self.sink.notes(self.name).strip() or "(no notes were written)"
            text = (
                f"You are {self.name}, continuing work you began in an earlier conversation, "
                f"which was restarted ({reason}; this is conversation {session}). Your notes "
                f"so far:\n\n{notes}\n\n"
                f"{len(self.remaining)} of {len(self.refs)} items remain. Call read_protocol, "
                "then get_batch to continue."
            )
            self.state.read = False  # a fresh conversation reads the protocol again
        return [{"role": "user", "content": text}]

    async def _conversation(self, session: int, reason: str) -> str:
        messages = self._opening(reason, session)
        nudges, remaining_at_start = 0, len(self.remaining)
        for turn in range(self.max_turns):
            result = await self._call(messages, session, turn)
            if result.error:
                self._stop_reason = f"judge call failed: {result.error}"
                return "stopped"
            uses = [b for b in result.content if b.get("type") == "tool_use"]
            messages = messages + [{"role": "assistant", "content": result.content}]
            if not uses:
                if not self.remaining:
                    return "done"
                nudges += 1
                if nudges > NUDGES:
                    self._stop_reason = "it stopped calling tools with items left"
                    return "stopped"
                messages.append({
                    "role": "user",
                    "content": f"{len(self.remaining)} items still need verdicts. Use your "
                    "tools: get_batch, then submit_verdicts.",
                })  # fmt: skip
                continue
            answers = [self._answer(use) for use in uses]
            messages.append({"role": "user", "content": answers})
            if not self.remaining:
                return "done"
            progressed = len(self.remaining) < remaining_at_start
            if progressed and result.input_tokens + result.output_tokens > self.context_budget:
                # only after progress: a budget smaller than the protocol itself must not send
                # the agent round fresh conversations forever
                await self._compact(messages, session, turn + 1)
                return "compacted"
        self._stop_reason = f"it used its {self.max_turns} turns"
        return "stopped"

    async def _call(
        self,
        messages: list[dict[str, Any]],
        session: int,
        turn: int,
        tool_choice: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> CallResult:
        return await self.client.call(
            CallSpec("evaluate", self.batch_id, self.name),
            model=self.model,
            params=self.params,
            system=self.system,
            messages=messages,
            tools=tools if tools is not None else [t for t, _ in self.tools.values()],
            tool_choice=tool_choice,
            key_extra={"session": session, "turn": turn},
            cache=True,
        )

    def _answer(self, use: dict[str, Any]) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": use["id"]}
        tool = self.tools.get(use["name"])
        try:
            if tool is None:
                raise ToolInputError(f"there is no tool named {use['name']!r}")
            output = tool[1](use.get("input") or {})
        except ToolInputError as e:
            return {**block, "content": str(e), "is_error": True}
        return {**block, "content": output if isinstance(output, str) else json.dumps(output)}

    async def _compact(self, messages: list[dict[str, Any]], session: int, turn: int) -> None:
        ask = {
            "role": "user",
            "content": "Your context is nearly full. Call write_notes now; you will continue "
            "in a fresh conversation from the protocol, your notes and the remaining items.",
        }
        result = await self._call(
            [*messages, ask],
            session,
            turn,
            tool_choice={"type": "tool", "name": "write_notes"},
            tools=[*[t for t, _ in self.tools.values()], WRITE_NOTES],
        )
        notes = result.tool_inputs("write_notes")
        judged = len(self.refs) - len(self.remaining)
        if notes:
            n = notes[0]
            text = "\n\n".join(
                f"**{k}**: {str(n.get(k, '')).strip()}" for k in ("done", "observations", "doubts")
            )
        else:  # the model did not write: keep the facts the orchestrator knows
            text = f"**done**: {judged} of {len(self.refs)} items judged (notes not written)."
        self.sink.write_notes(self.name, text)
        self.sink.log(
            self.name,
            "compaction",
            f"{self.name} compacted its context after {judged} of {len(self.refs)} items; "
            f"notes in memory/{self.name}.md",
        )

    # -- the scripted loop ----------------------------------------------------------------

    async def _scripted(self, session: int) -> None:
        self._read_protocol({})
        turn = 0
        if not self.state.passed:
            check = self.tools["comprehension_check"][0]
            prompt = self._script_prompt(
                "Answer the comprehension questions below with comprehension_check.\n\n"
                + "\n".join(
                    f"- {q.id}: {q.question} Choices: {' | '.join(q.choices)}"
                    for q in self.brief.questions
                )
            )
            messages = [{"role": "user", "content": prompt}]
            while not self.state.passed:
                result = await self._call(
                    messages, session, turn, {"type": "tool", "name": check["name"]}, [check]
                )
                turn += 1
                answers = result.tool_inputs(check["name"])
                try:
                    self._comprehension(answers[0] if answers else {"answers": {}})
                except ToolInputError as e:  # the one re-priming, with the explanations
                    messages = [{"role": "user", "content": f"{prompt}\n\n{e}"}]
        while self.remaining:
            batch = self._get_batch({})
            if isinstance(batch, str):
                break
            listing = json.dumps(batch["items"], indent=1, ensure_ascii=False)
            messages = [
                {
                    "role": "user",
                    "content": self._script_prompt(
                        f"Judge these items and call submit_verdicts with one verdict per "
                        f"ref:\n\n{listing}"
                    ),
                }
            ]
            while self._unjudged_served():
                # forced, for exactly the refs still owed: a model that cannot plan still
                # answers each of them once, and nothing else
                submit = submit_tool(self.brief.fields, self._unjudged_served())
                result = await self._call(
                    messages, session, turn, {"type": "tool", "name": submit["name"]}, [submit]
                )
                turn += 1
                if result.error:
                    for ref in self._unjudged_served():
                        self._fail(ref, f"judge call failed: {result.error}")
                    continue
                submitted = result.tool_inputs(submit["name"])
                keyed = submitted[0].get("verdicts") if submitted else None
                if isinstance(keyed, dict):  # {ref: verdict}, as the per-call tool asks
                    verdicts = [
                        {"ref": r, **v} if isinstance(v, dict) else v for r, v in keyed.items()
                    ]
                    submitted = [{**submitted[0], "verdicts": verdicts}]
                try:
                    self._submit(submitted[0] if submitted else {})
                except ToolInputError as e:
                    messages = messages[:1] + [
                        {"role": "assistant", "content": result.content or [{"type": "text",
                                                                             "text": "(empty)"}]},
                        {"role": "user", "content": self._retry_text(result, str(e))},
                    ]  # fmt: skip

    def _unjudged_served(self) -> list[str]:
        return [r for r in self.state.served if r not in self.state.done]

    def _script_prompt(self, task: str) -> str:
        return f"You are {self.name}.\n\n{task}"

    @staticmethod
    def _retry_text(result: CallResult, error: str) -> Any:
        use = next((b for b in result.content if b.get("type") == "tool_use"), None)
        if use is None:
            return error
        return [{"type": "tool_result", "tool_use_id": use["id"], "content": error,
                 "is_error": True}]  # fmt: skip

    # -- tools ----------------------------------------------------------------------------

    def _tools(self) -> dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]]:
        tools: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]] = {
            "read_protocol": (READ_PROTOCOL, self._read_protocol),
        }
        if self.brief.questions:
            tools["comprehension_check"] = (
                comprehension_tool(self.brief.questions),
                self._comprehension,
            )
        tools["get_batch"] = (GET_BATCH, self._get_batch)
        if self.truesight is not None:
            tools["truesight"] = (TRUESIGHT_TOOL, self._truesight)
        tools["flag_issue"] = (FLAG_ISSUE, self._flag)
        tools["submit_verdicts"] = (submit_tool(self.brief.fields), self._submit)
        return tools

    def _gate(self, *, check: bool = True) -> None:
        if not self.state.read:
            raise ToolInputError("call read_protocol first")
        if check and not self.state.passed:
            raise ToolInputError("answer the comprehension questions (comprehension_check) first")

    def _read_protocol(self, _: dict[str, Any]) -> dict[str, Any]:
        self.state.read = True
        out: dict[str, Any] = {
            "design_and_rubric": "as in your instructions",
            "verdict_fields": {
                f.name: {"type": f.type, **({"values": list(f.values)} if f.values else {})}
                for f in self.brief.fields
            },
            "items_assigned": len(self.refs),
            "items_remaining": len(self.remaining),
            "chunk_size": self.brief.chunk_size,
        }
        if not self.state.passed:
            out["comprehension_questions"] = [
                {"id": q.id, "question": q.question, "choices": list(q.choices)}
                for q in self.brief.questions
            ]
            out["next"] = "answer them with comprehension_check"
        else:
            out["next"] = "call get_batch"
        return out

    def _comprehension(self, tool_input: dict[str, Any]) -> str:
        self._gate(check=False)
        if self.state.passed:
            return "You have already passed. Call get_batch."
        raw = tool_input.get("answers")
        answers = {k: str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        wrong = [q for q in self.brief.questions if answers.get(q.id) != q.answer]
        right = len(self.brief.questions) - len(wrong)
        passed = right >= self.brief.pass_mark * len(self.brief.questions) - 1e-9
        self.state.check_attempts += 1
        attempt = self.sink.comprehension(self.name, answers, [q.id for q in wrong], passed)
        self.sink.log(
            self.name,
            "comprehension",
            f"{self.name} comprehension check attempt {attempt}: {right}/"
            f"{len(self.brief.questions)} right, {'passed' if passed else 'failed'}"
            + (f" (wrong: {', '.join(q.id for q in wrong)})" if wrong else ""),
        )
        if passed:
            self.state.passed = True
            return f"Passed ({right}/{len(self.brief.questions)}). Call get_batch."
        if self.state.check_attempts >= 2:
            raise Replaced(f"{self.name} failed the comprehension check twice")
        lines = "\n".join(
            f"- {q.id}: your answer {answers.get(q.id, '(none)')!r} is wrong. {q.explanation}"
            for q in wrong
        )
        raise ToolInputError(
            f"Not passed ({right}/{len(self.brief.questions)}). Re-read the rubric with these "
            f"explanations, then call comprehension_check again:\n{lines}"
        )

    def _get_batch(self, _: dict[str, Any]) -> dict[str, Any] | str:
        self._gate()
        pending = [r for r in self.state.served if r not in self.state.done]
        if pending:
            raise ToolInputError(f"submit verdicts for {', '.join(pending)} first")
        todo = self.remaining[: self.brief.chunk_size]
        if not todo:
            return "All your items are judged. You are done: reply with a one-line summary."
        self.state.served = todo
        return {
            "items": [
                {"ref": r, "input": self.refs[r].prompt, "response": self.refs[r].response}
                for r in todo
            ],
            "remaining_after_these": len(self.remaining) - len(todo),
        }

    def _truesight(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        self._gate()
        return self.truesight(tool_input)  # type: ignore[misc]

    def _flag(self, tool_input: dict[str, Any]) -> str:
        self._gate(check=False)
        kind, text = tool_input.get("kind"), str(tool_input.get("text", "")).strip()
        refs = tool_input.get("refs") or []
        if kind not in FLAG_KINDS:
            raise ToolInputError(f"kind must be one of {', '.join(FLAG_KINDS)}")
        if not text:
            raise ToolInputError("say what you saw in `text`")
        unknown = [r for r in refs if r not in self.refs]
        if unknown:
            raise ToolInputError(f"unknown refs {unknown}")
        items = sorted({self.refs[r].item_id for r in refs})
        self.sink.flag(self.name, kind, items, text)
        return "Flag recorded; the researcher will see it before the analysis. Carry on."

    def _submit(self, tool_input: dict[str, Any]) -> str:
        self._gate()
        verdicts = tool_input.get("verdicts")
        if not isinstance(verdicts, list):
            raise ToolInputError("`verdicts` must be a list of objects, one per ref")
        accepted, errors = [], {}
        for raw in verdicts:
            ref = raw.get("ref") if isinstance(raw, dict) else None
            if ref not in self.state.served or ref in self.state.done:
                if ref is not None and ref not in self.state.done:
                    errors[str(ref)] = "not one of the items get_batch gave you now"
                continue
            cites = raw.pop("truesight_ids", None) or []
            try:
                fields = self.schema.model_validate(raw).model_dump()
                bad = [c for c in cites if not isinstance(c, int)]
                if bad or (unknown := self.sink.unknown_probe_ids(list(cites))):
                    raise ValueError(f"truesight_ids {bad or unknown} are not readouts you got")
            except (ValidationError, ValueError) as e:
                message = (
                    "; ".join(
                        f"{'.'.join(str(p) for p in err['loc']) or 'verdict'}: {err['msg']}"
                        for err in e.errors()
                    )
                    if isinstance(e, ValidationError)
                    else str(e)
                )
                self._fail(ref, message)
                if ref not in self.state.done:
                    errors[ref] = message
                continue
            fields.pop("ref")
            self._finish(ref, fields, None, tuple(cites))
            accepted.append(ref)
        missing = [r for r in self.state.served if r not in self.state.done and r not in errors]
        unscored = [r for r in self.state.served if r in self.state.done
                    and self.state.done[r].fields is None]  # fmt: skip
        if errors or missing:
            lines = [f"- {r}: {m}" for r, m in errors.items()]
            lines += [f"- {r}: no verdict submitted" for r in missing]
            raise ToolInputError(
                (f"Accepted {', '.join(accepted)}. " if accepted else "")
                + "Fix these and call submit_verdicts again for them only:\n"
                + "\n".join(lines)
            )
        self.state.served = []
        left = len(self.remaining)
        note = f" ({len(unscored)} recorded unscored after {self.max_attempts} tries)" * bool(
            unscored
        )
        return f"Accepted {len(accepted)}{note}. " + (
            f"{left} items left: call get_batch." if left else "All done: reply with one line."
        )

    def _fail(self, ref: str, message: str) -> None:
        self.state.tries[ref] = self.state.tries.get(ref, 0) + 1
        if self.state.tries[ref] >= self.max_attempts:
            self._finish(ref, None, f"unscored after {self.max_attempts} attempts: {message}")

    def _finish(
        self, ref: str, fields: dict[str, Any] | None, reason: str | None, cites: tuple = ()
    ) -> None:
        w = self.refs[ref]
        verdict = AgentVerdict(w.item_id, w.copy, w.role, fields, reason, cites)
        self.state.done[ref] = verdict
        self.sink.verdicts(self.name, [verdict])
