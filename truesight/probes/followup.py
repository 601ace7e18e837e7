"""Follow-up: ask the model a yes/no question about the text and read its leaning.

Each question is appended as "\n\nQuestion: {q}\nAnswer:"; the readout is the logit of " Yes"
minus that of " No" (first tokens) at the answer position, which equals their log-odds.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from truesight.model import LoadedModel
from truesight.probes.batch import ProbeStats
from truesight.probes.fused import Needs, TextPass
from truesight.probes.inputs import (
    ProbeInput,
    encode_with_tail,
    first_token,
    tokens,
)
from truesight.probes.prefill import prefix_suffix_logprobs
from truesight.wire import InvalidRequest

TEMPLATE = "\n\nQuestion: {q}\nAnswer:"


class FollowupParams(BaseModel):
    """Parameters of the follow-up probe."""

    model_config = ConfigDict(extra="forbid")
    questions: list[str] = Field(
        default=["Was the text above written sincerely?"],
        min_length=1,
        description='Yes/no questions, each asked as "\\n\\nQuestion: {q}\\nAnswer:".',
    )
    yes: str = Field(default=" Yes", min_length=1, description="The affirmative answer.")
    no: str = Field(default=" No", min_length=1, description="The negative answer.")


class FollowupResult(BaseModel):
    """Per-text yes-minus-no logit difference by question."""

    questions: dict[str, float] = Field(description="question -> logit(yes) - logit(no)")


def prepare(loaded: LoadedModel, items: list[ProbeInput], params: FollowupParams):
    tok = loaded.tokenizer
    if first_token(tok, params.yes) == first_token(tok, params.no):
        raise InvalidRequest(f"yes {params.yes!r} and no {params.no!r} start with the same token")
    questions = [TEMPLATE.format(q=q) for q in params.questions]
    return encode_with_tail(tok, items, questions, loaded.context_length, "question")


def _tails(loaded: LoadedModel, params: FollowupParams) -> tuple[list[list[int]], list[int]]:
    """The questions' token ids and the query [yes, no]."""
    tok = loaded.tokenizer
    query = [first_token(tok, params.yes), first_token(tok, params.no)]
    return [tokens(tok, TEMPLATE.format(q=q)) for q in params.questions], query


def _result(params: FollowupParams, lp) -> FollowupResult:  # noqa: ANN001
    """From (questions, [yes, no]) log-probs."""
    diff = lp[..., 0] - lp[..., 1]
    return FollowupResult(
        questions={q: float(v) for q, v in zip(params.questions, diff, strict=True)}
    )


def compute(
    loaded: LoadedModel, prepared: list, params: FollowupParams, stats: ProbeStats
) -> list[FollowupResult]:
    suffixes, query = _tails(loaded, params)
    lp = prefix_suffix_logprobs(loaded, prepared, suffixes, query, stats)
    return [_result(params, row) for row in lp]


def plan(loaded: LoadedModel, item: list[int], params: FollowupParams) -> tuple[list[int], Needs]:
    suffixes, query = _tails(loaded, params)
    return item, Needs(suffixes=tuple(map(tuple, suffixes)), query=tuple(query))


def read(
    loaded: LoadedModel, item: list[int], seen: TextPass, params: FollowupParams, calibration
) -> FollowupResult:
    suffixes, query = _tails(loaded, params)
    return _result(params, seen.after([tuple(s) for s in suffixes], query))
