"""The scripted mode, for models that cannot plan tool calls: the orchestrator calls the tools
itself in the agent's order and forces the model's one tool per step (`comprehension_check`,
then `submit_verdicts` for each chunk) with `tool_choice`, on the same tool loop, so a small local
model only fills in tool inputs, which the worker can constrain to the tool's schema."""

from __future__ import annotations

import json

from agents.client import CallResult
from agents.evaluator.assignment import Assignment
from agents.evaluator.comprehension import COMPREHENSION_CHECK, comprehension_tool
from agents.evaluator.get_batch import get_batch_tool
from agents.evaluator.read_protocol import read_protocol_tool
from agents.evaluator.schema import SUBMIT_VERDICTS
from agents.evaluator.submit_verdicts import submit_verdicts_tool
from agents.loop import Chat, Content, Hooks, Message, retried, tool_loop, user
from agents.prompts import say
from agents.tools import Tool, ToolInputError

TURNS = "evaluator_turns.j2"


async def run_scripted(chat: Chat, work: Assignment, session: int, max_turns: int) -> None:
    """Read the protocol, pass the check, then judge chunk after chunk; every call is forced."""
    read_protocol_tool(work).handler({})
    turn = 0
    if not work.passed:
        turn = await _check(chat, work, session, max_turns)
    while work.remaining:
        batch = get_batch_tool(work).handler({})
        if isinstance(batch, str):
            break
        turn = await _judge(chat, work, session, turn, batch["items"], max_turns)


async def _check(chat: Chat, work: Assignment, session: int, max_turns: int) -> int:
    """The forced comprehension check; a failed one is asked again from the task and the
    explanations (a second failure raises `Replaced`). Returns the next turn number."""
    check = comprehension_tool(work)
    task = say(TURNS, "check_task", name=work.name, questions=work.brief.questions)

    def reprime(error: str) -> list[Message]:
        return [user(say(TURNS, "reprime", task=task, error=error))]

    def unanswered(result: CallResult, messages: list[Message]) -> list[Message] | None:
        """No answers (a failed call, a reply without the tool) count as a failed check."""
        error = _refusal(check, {"answers": {}})
        return None if error is None else reprime(error)

    def after_refusal(
        messages: list[Message], result: CallResult, answer: Content
    ) -> list[Message]:
        return reprime(answer[0]["content"]) if not work.passed else messages

    hooks = Hooks(
        key=lambda turn: {"session": session, "turn": turn},
        on_text=unanswered,
        on_error=unanswered,
        done=lambda result: work.passed,
        history=after_refusal,
    )
    opening = [user(task)]
    transcript = await tool_loop(
        chat, opening, [check], max_turns=max_turns, force=COMPREHENSION_CHECK, hooks=hooks
    )
    return len(transcript.results)


async def _judge(
    chat: Chat, work: Assignment, session: int, turn: int, items: list, max_turns: int
) -> int:
    """The forced submit_verdicts for one chunk, asked again for exactly the refs still owed
    (one verdict each, none twice, none missing, under constrained decoding) until none is.
    Returns the next turn number."""
    listing = json.dumps(items, indent=1, ensure_ascii=False)
    opening = [user(say(TURNS, "judge_task", name=work.name, listing=listing))]

    def failed_call(result: CallResult, messages: list[Message]) -> list[Message] | None:
        for ref in work.owed:
            work.fail(ref, f"judge call failed: {result.error}")
        return messages if work.owed else None

    def no_call(result: CallResult, messages: list[Message]) -> list[Message] | None:
        if result.stop_reason == "max_tokens":
            # A reply cut off is not a refusal the judge can fix from our answer: asked again
            # with it, a greedy judge writes the same. As for a failed call, each owed item
            # counts a try (ending unscored after max_attempts), and the same prompt goes again.
            owed, limit = list(work.owed), chat.params.get("max_tokens")
            for ref in owed:
                work.fail(
                    ref,
                    f"the judge's verdicts for {len(owed)} items were cut off at "
                    f"max_tokens={limit}: raise evaluation.judge.params.max_tokens or lower "
                    "evaluation.chunk_size",
                )
            return messages if work.owed else None
        error = _refusal(submit_verdicts_tool(work, work.owed), {})
        return retried(messages, result, error or "")

    hooks = Hooks(
        key=lambda turn: {"session": session, "turn": turn},
        on_text=no_call,
        on_error=failed_call,
        done=lambda result: not work.owed,
        history=retried,
    )
    transcript = await tool_loop(
        chat,
        opening,
        lambda: [submit_verdicts_tool(work, work.owed)],
        max_turns=max_turns,
        first_turn=turn,
        force=SUBMIT_VERDICTS,
        hooks=hooks,
    )
    return turn + len(transcript.results)


def _refusal(tool: Tool, tool_input: dict) -> str | None:
    """Run the tool on `tool_input`: the error it answers, or None when it accepts."""
    try:
        tool.handler(tool_input)
    except ToolInputError as e:
        return str(e)
    return None
