"""Evaluators: judge a batch of responses against the protocol's rubric and verdict schema.

The orchestrator sees only the `Evaluator` interface. `BatchJudge` is the first implementation:
one forced `submit_verdicts` tool call per batch; invalid or missing verdicts go back to the model
as a tool error, and an item still without a valid verdict after `max_attempts` is *unscored* with
the reason — never dropped, never counted as a negative. Tool-using sub-agents come later behind
the same interface.

Blinding: the judge sees opaque refs (R01, R02, ...) instead of item ids, which name conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    create_model,
)

from agents.client import CallSpec, LLMClient

TOOL = "submit_verdicts"
_prompts = SandboxedEnvironment(
    loader=FileSystemLoader(Path(__file__).parent / "prompts"),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: Literal["bool", "enum", "str", "int", "float"]
    values: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class JudgeItem:
    item_id: str
    prompt: str
    """The input the subject saw, blinded (no condition text)."""
    response: str


@dataclass(frozen=True)
class ItemVerdict:
    item_id: str
    fields: dict[str, Any] | None
    reason: str | None = None
    """Why the item is unscored (when `fields` is None)."""


class Evaluator(Protocol):
    name: str

    async def judge(self, batch_id: str, items: list[JudgeItem]) -> list[ItemVerdict]: ...


def verdict_model(fields: list[FieldSpec]) -> type[BaseModel]:
    types: dict[str, Any] = {
        "bool": StrictBool,
        "str": str,
        "int": StrictInt,
        "float": StrictFloat | StrictInt,
    }
    spec: dict[str, Any] = {"ref": (str, ...)}
    for f in fields:
        kind = Literal[f.values] if f.type == "enum" else types[f.type]  # type: ignore[valid-type]
        spec[f.name] = (kind, ...)
    return create_model("Verdict", __config__=ConfigDict(extra="forbid"), **spec)


def tool_definition(fields: list[FieldSpec]) -> dict[str, Any]:
    json_types = {"bool": "boolean", "str": "string", "int": "integer", "float": "number"}
    props: dict[str, Any] = {"ref": {"type": "string", "description": "The item's ref, e.g. R01."}}
    for f in fields:
        prop: dict[str, Any] = {"description": f.description}
        if f.type == "enum":
            prop.update(type="string", enum=list(f.values))
        else:
            prop["type"] = json_types[f.type]
        props[f.name] = prop
    verdict = {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }
    return {
        "name": TOOL,
        "description": "Submit one verdict per item of the batch.",
        "input_schema": {
            "type": "object",
            "properties": {"verdicts": {"type": "array", "items": verdict}},
            "required": ["verdicts"],
        },
    }


class BatchJudge:
    """One structured-output call per batch, with retries for invalid verdicts."""

    def __init__(
        self,
        client: LLMClient,
        *,
        name: str,
        model: str,
        params: dict[str, Any],
        title: str,
        question: str,
        rubric: str,
        fields: list[FieldSpec],
        max_attempts: int,
    ):
        self.client, self.name, self.model, self.params = client, name, model, params
        self.fields, self.max_attempts = fields, max_attempts
        self.schema = verdict_model(fields)
        self.tool = tool_definition(fields)
        self.system = _prompts.get_template("evaluator_system.j2").render(
            title=title, question=question, rubric=rubric, fields=fields, tool=TOOL
        )

    async def judge(self, batch_id: str, items: list[JudgeItem]) -> list[ItemVerdict]:
        refs = {f"R{i + 1:02d}": item for i, item in enumerate(items)}
        prompt = _prompts.get_template("evaluator_batch.j2").render(refs=refs, tool=TOOL)
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        scored: dict[str, dict[str, Any]] = {}
        reasons = {ref: "no verdict was submitted" for ref in refs}
        for attempt in range(1, self.max_attempts + 1):
            result = await self.client.call(
                CallSpec("evaluate", batch_id, self.name),
                model=self.model,
                params=self.params,
                system=self.system,
                messages=messages,
                tools=[self.tool],
                tool_choice={"type": "tool", "name": TOOL},
                key_extra={"attempt": attempt},
            )
            if result.error:
                reasons = {r: f"judge call failed: {result.error}" for r in refs if r not in scored}
                continue
            submitted = result.tool_inputs(TOOL)
            errors = self._accept(submitted[0] if submitted else None, refs, scored)
            pending = [r for r in refs if r not in scored]
            if not pending:
                break
            reasons = {r: errors.get(r, "no verdict was submitted for this ref") for r in pending}
            feedback = "\n".join(f"- {r}: {reasons[r]}" for r in pending)
            messages = messages + [{"role": "assistant", "content": result.content}]
            retry = (
                f"Some verdicts were missing or invalid:\n{feedback}\n"
                f"Call {TOOL} again with verdicts for these refs only."
            )
            tool_use = next((b for b in result.content if b.get("type") == "tool_use"), None)
            if tool_use is not None:
                block = {"type": "tool_result", "tool_use_id": tool_use["id"], "is_error": True}
                messages.append({"role": "user", "content": [{**block, "content": retry}]})
            else:
                messages.append({"role": "user", "content": retry})
        return [
            ItemVerdict(item.item_id, scored[ref])
            if ref in scored
            else ItemVerdict(item.item_id, None, f"unscored after {self.max_attempts} attempts: "
                             f"{reasons.get(ref, 'no verdict')}")
            for ref, item in refs.items()
        ]  # fmt: skip

    def _accept(
        self, submitted: dict[str, Any] | None, refs: dict[str, JudgeItem], scored: dict
    ) -> dict[str, str]:
        """Validate submitted verdicts; keep the valid ones; return an error per bad ref."""
        if submitted is None:
            return {r: f"no {TOOL} call in the reply" for r in refs}
        verdicts = submitted.get("verdicts")
        if not isinstance(verdicts, list):
            return {r: "`verdicts` must be a list of objects" for r in refs}
        errors: dict[str, str] = {}
        for raw in verdicts:
            ref = raw.get("ref") if isinstance(raw, dict) else None
            if ref not in refs or ref in scored:
                continue
            try:
                fields = self.schema.model_validate(raw).model_dump()
            except ValidationError as e:
                errors[ref] = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'verdict'}: {err['msg']}"
                    for err in e.errors()
                )
                continue
            fields.pop("ref")
            scored[ref] = fields
        return errors
