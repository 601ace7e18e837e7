"""Text with quoted passages marked: a response with each evaluator's evidence quote, a prompt
with its planted instruction.

Everything is HTML-escaped first (responses are model output); only the `<mark>` tags are ours.
A quote is found whitespace-tolerantly (any run of whitespace in the quote matches any run in the
text, as `agents.analyst.normalise` compares quotes), and otherwise exactly: case, punctuation
and wording must match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Span:
    """Where one quote sits in a text, and who quoted it (shown as the mark's title)."""

    start: int
    end: int
    by: str


def find_quote(text: str, quote: str) -> tuple[int, int] | None:
    """The first place `quote` occurs in `text`, whitespace-tolerantly; None when it does not
    (or when the quote is blank)."""
    words = quote.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    m = re.search(pattern, text)
    return (m.start(), m.end()) if m else None


def marked(text: str, spans: list[Span], css: str) -> Markup:
    """`text` escaped, each stretch covered by a span wrapped in `<mark class="{css}">`; where
    spans overlap, the stretch is one mark titled with everyone who quoted it."""
    cuts = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        piece = escape(text[a:b])
        by = sorted({s.by for s in spans if s.start <= a and b <= s.end})
        if by:
            title = escape(", ".join(by))
            piece = Markup(f'<mark class="{css}" title="{title}">{piece}</mark>')
        out.append(piece)
    return Markup("").join(out)
