"""How a call can fail, for every client: refused credentials (`AuthenticationFailed`), an API
that kept failing (`Unavailable`), and which ledger errors may pass on their own (`retryable`)."""

from __future__ import annotations

import re


class AuthenticationFailed(Exception):
    """The endpoint refused our credentials: no point in making the remaining calls."""


class Unavailable(Exception):
    """Calls kept failing for a reason that may pass (rate limits, overload, server errors,
    lost connections), after every retry: the work they were for is not done, and must not be
    recorded as done (a verdict, a response) — it waits for a later pass or `research resume`."""


RETRYABLE_STATUS = frozenset({408, 409, 429})
"""HTTP statuses below 500 that may pass on their own (timeouts, conflicts, rate limits)."""
RETRYABLE_BATCH_ERRORS = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
)
"""Error types of an `errored` batch result that a new request may not meet again."""


def retryable(error: str) -> bool:
    """Whether a failed call's ledger error may pass on its own, so the call is worth making
    again: 408/409/429 and 5xx, a lost connection or a timeout, a batch result that errored
    for the API's own reasons, expired, was canceled or never came. A request the API refused
    (400, 403, 404, 413, an invalid batch request) fails the same way every time."""
    if m := re.match(r"HTTP (\d{3})\b", error):
        status = int(m.group(1))
        return status >= 500 or status in RETRYABLE_STATUS
    if error.startswith(("APIConnectionError", "APITimeoutError")):
        return True
    if m := re.match(r"batch errored: (\w+)", error):
        return m.group(1) in RETRYABLE_BATCH_ERRORS
    return error.startswith("batch ")  # expired, canceled, result missing, batch lost
