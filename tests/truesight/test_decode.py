"""Cutting a generated row at its own limit, EOS and stop sequences."""

from __future__ import annotations

from truesight.decode import cut_at_stop, finish_sequence

EOS = 0


def decode(ids: list[int]) -> str:
    """One character per token: 1 -> "a", 2 -> "b", ...; EOS never reaches here."""
    return "".join(chr(ord("a") + i - 1) for i in ids)


def test_cut_at_stop_picks_the_earliest_match() -> None:
    assert cut_at_stop("hello world. bye", ["bye", "."]) == ("hello world", ".")
    assert cut_at_stop("hello", ["x", ""]) == ("hello", None)
    assert cut_at_stop("", ["x"]) == ("", None)


def test_cut_at_stop_prefers_the_longer_of_two_at_the_same_place() -> None:
    assert cut_at_stop("say END now", ["EN", "END"]) == ("say ", "END")


def test_finish_cuts_at_own_max_tokens() -> None:
    done = finish_sequence(
        [1, 2, 3, 4, 5], max_tokens=3, eos_ids={EOS}, stop_sequences=[], decode=decode
    )
    assert (done.text, done.output_tokens, done.stop_reason) == ("abc", 3, "max_tokens")


def test_finish_cuts_at_eos_and_counts_it() -> None:
    # After EOS a batch row holds padding; none of it belongs to the reply.
    done = finish_sequence(
        [1, 2, EOS, 7, 7], max_tokens=5, eos_ids={EOS}, stop_sequences=[], decode=decode
    )
    assert (done.text, done.output_tokens, done.stop_reason) == ("ab", 3, "end_turn")
    assert done.stop_sequence is None


def test_finish_cuts_at_stop_sequence_and_counts_tokens_through_it() -> None:
    tokens = [1, 2, 3, 4, 5, 6, 7, 8]  # "abcdefgh"
    done = finish_sequence(
        tokens, max_tokens=8, eos_ids={EOS}, stop_sequences=["zz", "de"], decode=decode
    )
    assert (done.text, done.stop_reason, done.stop_sequence) == ("abc", "stop_sequence", "de")
    assert done.output_tokens == 5  # through the "e" that completed the stop sequence


def test_finish_ignores_stop_sequences_beyond_eos_or_the_limit() -> None:
    done = finish_sequence(
        [1, EOS, 4, 5], max_tokens=4, eos_ids={EOS}, stop_sequences=["de"], decode=decode
    )
    assert done.stop_reason == "end_turn"
    done = finish_sequence(
        [1, 2, 4, 5], max_tokens=3, eos_ids={EOS}, stop_sequences=["de"], decode=decode
    )
    assert (done.text, done.stop_reason) == ("abd", "max_tokens")
