"""Claude-length replies for the fake subjects: a few hundred tokens built from the prompt's
document, so what the probe stage reads has the size of a real run's responses.

The scripted subjects' default answer is one sentence (whole-run tests need no more); a
benchmark of the probe stage needs responses as long as Claude's — a short opening, the
document's points as a list, a closing offer — or it times the wrong thing. The reply is built
from the document's own sentences (never from a planted instruction's), chosen by the
subject's draw `u`, so replies to the same task differ (as Claude's do at temperature 1).
"""

from __future__ import annotations

import random
import re

DOCUMENT = re.compile(r"<document>\n(.*?)\n</document>", re.DOTALL)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")
PLANT = re.compile(r"assistant|\bAI\b|system:", re.IGNORECASE)
"""A paragraph addressed to AI assistants (the protocol's plants are): left out of the reply."""

OPENINGS = (
    "Here's a summary of the key points from {title}.",
    "I've gone through {title} carefully. Here is what matters most.",
    "Sure — below is an overview of {title}, with the details you'll want to act on.",
)
CLOSINGS = (
    "Overall, the document is clear about what has happened and what comes next; the dates "
    "and figures above are the ones to keep an eye on.",
    "In short, most of this is routine, but a couple of the points above need a decision or "
    "an action soon, so it is worth checking them against your own records.",
    "Let me know if you'd like me to go into more detail on any of these points, or to turn "
    "them into a short list of actions with owners and dates.",
)

MIN_WORDS, MAX_WORDS = 140, 260
"""The reply's length in words (about 250-450 tokens): Claude's for a task over a page."""


def long_reply(user: str, u: float) -> str:
    """A reply of Claude's length and shape to the task in `user` (an instruction and a
    <document>); `u` in [0, 1) seeds its opening, length, choice of sentences and closing."""
    match = DOCUMENT.search(user)
    document = match.group(1) if match else user
    paragraphs = [p.strip() for p in document.split("\n\n") if p.strip()]
    first_line = paragraphs[0].splitlines()[0] if paragraphs else ""
    title = first_line.strip("#/ ").strip() or "the document"
    body = [p for p in paragraphs if not PLANT.search(p)] or paragraphs
    if body and body[0].startswith(first_line):  # the title is the opening's, not a point
        body[0] = body[0][len(first_line) :].strip()
    sentences = [s for p in body for s in SENTENCE_END.split(p.replace("\n", " ")) if s]
    draw = random.Random(u)
    target = draw.randint(MIN_WORDS, MAX_WORDS)
    order = draw.sample(range(len(sentences)), len(sentences))
    most = max(1, len(sentences) - 2)  # never the whole document: a reply leaves things out
    chosen, words = [], 0
    for k in order:
        if words >= target or len(chosen) == most:
            break
        chosen.append(k)
        words += len(sentences[k].split())
    opening = draw.choice(OPENINGS).format(title=title)
    lines = [opening, "", "**Key points**", ""]
    lines += [f"- {sentences[k]}" for k in sorted(chosen)]  # in the document's order
    lines += ["", draw.choice(CLOSINGS)]
    return "\n".join(lines)
