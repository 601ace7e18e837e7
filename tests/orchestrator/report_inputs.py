"""Inputs the report can show beyond a plain pilot's (a forecast, a qualitative analysis, extra
regression models, the analysis fields a newer producer writes), as their producers write them:
test_report.py adds them to a copy of a real run and checks every one is rendered.
"""

from __future__ import annotations

from orchestrator.analysis.levels import distribution, mean
from orchestrator.protocol.schema import VerdictField

CONFIDENCE = VerdictField(type="ordinal", levels=["none", "low", "medium", "high"])


def forecast() -> dict:
    return {
        "cells": [
            {
                "cell": "claude-haiku.deu.planted",
                "subject": "claude-haiku",
                "levels": {"framing": "deu", "planted": "planted"},
                "n": 3,
                "assumed_rate": 0.55,
                "half_width": 0.27,
            },
        ],
        "contrasts": [
            {
                "name": "deu_effect_on_detection",
                "subject": "claude-haiku",
                "outcome": "detected",
                "n_treatment": 3,
                "n_control": 3,
                "assumed_treatment": 0.55,
                "assumed_control": 0.4,
                "half_width": 0.4321,
            },
        ],
        "cost": {
            "input_tokens": 123456,
            "output_tokens": 7890,
            "online_usd": 1.5,
            "batch_usd": 0.75,
            "lines": ["collect: 24 calls to claude-sonnet-4-6"],
        },
        "created": "2026-01-01T00:00:00Z",
    }


def qualitative(item: str) -> dict:
    return {
        "model": "claude-sonnet-4-6",
        "focus": "How did the framing change reasoning?",
        "overview": "DEU responses checked the document against the request.",
        "sections": [
            {
                "title": "Checklists under DEU",
                "text": "Several responses listed anomalies.",
                "quotes": [
                    {
                        "item_id": item,
                        "quote": "This paragraph <b>asks</b> me to",
                        "cell": "claude-haiku.deu.planted",
                    }
                ],
            },
        ],
        "limitations": "Four responses per cell were read.",
        "removed": [{"item_id": "x-1", "quote": "never said this", "reason": "not verbatim"}],
        "sampled": {"claude-haiku.deu.planted": [item]},
        "error": None,
    }


def extra_models() -> list[dict]:
    """A fitted model with an interaction, an ordinal one, and one that failed."""
    interaction = "framing[T.deu]:subject[T.claude-haiku]"
    return [
        {
            "name": "framing_by_model",
            "outcome": "detected",
            "formula": "detected ~ framing * subject",
            "terms": ["framing", "subject"],
            "within": {"planted": "planted"},
            "n": 12,
            "clusters": 6,
            "cluster": "task",
            "coefficients": [
                {
                    "term": "Intercept",
                    "coef": -0.7,
                    "se": 0.5,
                    "z": -1.4,
                    "p": 0.16,
                    "lo": -1.68,
                    "hi": 0.28,
                    "odds_ratio": 0.5,
                },
                {
                    "term": interaction,
                    "coef": 1.9,
                    "se": 0.8,
                    "z": 2.37,
                    "p": 0.018,
                    "lo": 0.33,
                    "hi": 3.47,
                    "odds_ratio": 6.69,
                },
            ],
            "interaction": interaction,
            "interaction_term": "framing:subject",
            "tests": [
                joint("framing", 1, 0.81, 0.368, 0.83, 0.362),
                joint("subject", 1, 0.04, 0.841, 0.04, 0.84),
                joint("framing:subject", 1, 5.64, 0.0176, 6.1, 0.0135),
            ],
            "reference": {"framing": "control", "subject": "claude-sonnet"},
            "error": None,
        },
        ordinal_model(),
        {
            "name": "broken",
            "outcome": "complied",
            "formula": "complied ~ framing",
            "terms": ["framing"],
            "within": {},
            "n": 12,
            "clusters": 6,
            "cluster": "task",
            "coefficients": [],
            "interaction": None,
            "reference": {},
            "error": "PerfectSeparationError: no variation in complied",
        },
    ]


def joint(
    term: str, df: int, wald: float, wald_p: float, lr: float | None, lr_p: float | None
) -> dict:
    error = None if lr is not None else "refit without framing failed: the fit did not converge"
    return {
        "term": term,
        "df": df,
        "wald_chi2": wald,
        "wald_p": wald_p,
        "lr_chi2": lr,
        "lr_p": lr_p,
        "error": error,
    }


def ordinal_model() -> dict:
    """An ordinal model of a 3-level factor × subject: thresholds, a 2-df interaction, a
    refit that failed."""
    coefficient = {
        "term": "framing[deu]",
        "coef": -0.42,
        "se": 0.3,
        "z": -1.4,
        "p": 0.16,
        "lo": -1.01,
        "hi": 0.17,
        "odds_ratio": 0.657,
    }
    return {
        "name": "confidence_by_model",
        "outcome": "confidence",
        "family": "ordinal",
        "levels": ["low", "medium", "high"],
        "formula": "confidence ~ framing * subject",
        "terms": ["framing", "subject"],
        "within": {},
        "n": 24,
        "clusters": None,
        "cluster": "none",
        "coefficients": [coefficient],
        "thresholds": [
            {"below": "low", "above": "medium", "value": -1.234},
            {"below": "medium", "above": "high", "value": 0.987},
        ],
        "interaction": None,
        "interaction_term": "framing:subject",
        "tests": [
            joint("framing", 2, 7.5, 0.0235, None, None),
            joint("subject", 1, 0.5, 0.48, 0.52, 0.471),
            joint("framing:subject", 2, 6.02, 0.0493, 6.3, 0.0429),
        ],
        "reference": {"framing": "control", "subject": "claude-sonnet"},
        "error": None,
    }


def analysis_extras(analysis: dict) -> None:
    """The keys the analysis gains in this release, as their producer writes them."""
    for c in analysis["contrasts"]:
        c.update(p_adjusted=0.5, rejected=False)
    analysis["contrasts"][0].update(p_adjusted=0.0123, rejected=True)
    correction = {"method": "holm", "alpha": 0.05, "family": "per outcome", "tests": 4}
    analysis["correction"] = correction
    analysis["models"] = extra_models()
    analysis["false_alarms"] = [
        {
            "cell": "claude-haiku.deu.none",
            "subject": "claude-haiku",
            "levels": {"framing": "deu", "planted": "none"},
            "n": 3,
            "k": 1,
            "rate": 1 / 3,
            "lo": 0.061,
            "hi": 0.792,
        },
    ]
    analysis["missing"] = [
        {
            "cell": "claude-haiku.deu.none",
            "subject": "claude-haiku",
            "levels": {"framing": "deu", "planted": "none"},
            "items": 3,
            "scored": 2,
            "unscored": 1,
            "reasons": {"verdict failed validation | twice": 1},
            "bounds": {"detected": {"observed": 0.5, "low": 0.3333, "high": 0.6667}},
        },
    ]
    analysis["probes"]["association"] = [
        {
            "metric": "linear.deception",
            "outcome": "detected",
            "n": 24,
            "n_pos": 3,
            "n_neg": 21,
            "auroc": 0.8765,
            "p": 0.0432,
            "mean_pos": 1.5,
            "mean_neg": -2.25,
        },
    ]
    analysis["decisions"] = decisions()
    analysis["pooled"] = pooled()
    analysis["pooled_correction"] = {
        "method": "holm",
        "alpha": 0.05,
        "family": "each outcome's 2 pooled contrasts",
        "tests": 1,
    }


def pooled() -> list[dict]:
    """A contrast pooled over both subjects, estimated, and one with too few tasks."""

    def arm(level: str, k: int, n: int, lo: float, hi: float) -> dict:
        return {"level": level, "n": n, "k": k, "rate": k / n, "lo": lo, "hi": hi}

    def subject(name: str, kt: int, nt: int, kc: int, nc: int, weight: float) -> dict:
        diff = kt / nt - kc / nc
        return {
            "subject": name,
            "k_treatment": kt,
            "n_treatment": nt,
            "k_control": kc,
            "n_control": nc,
            "diff": diff,
            "weight": weight,
        }

    subjects = [
        subject("claude-sonnet", 15, 30, 2, 10, 0.4286),
        subject("claude-haiku", 16, 20, 12, 20, 0.5714),
    ]
    estimated = {
        "name": "deu_effect_on_detection",
        "outcome": "detected",
        "named": True,
        "treatment": arm("deu", 31, 50, 0.4817, 0.7414),
        "control": arm("control", 14, 30, 0.3023, 0.6382),
        "estimate": 0.2429,
        "se": 0.0612,
        "df": 5,
        "lo": 0.0856,
        "hi": 0.4001,
        "p": 0.0107,
        "p_adjusted": 0.0107,
        "rejected": True,
        "n": 80,
        "tasks": 6,
        "subjects": subjects,
        "error": None,
    }
    unfit = {
        **estimated,
        "name": "deu_effect_on_false_alarms",
        "outcome": "complied",
        "named": False,
        **dict.fromkeys(("estimate", "se", "df", "lo", "hi", "p", "p_adjusted", "rejected")),
        "tasks": 2,
        "error": "only 2 tasks among the 80 items: errors clustered by task need at least 3",
    }
    return [estimated, unfit]


def decisions() -> dict:
    """A model-term hypothesis at its own alpha, decided, and one without a test."""
    component = {
        "label": "framing[deu]:subject[claude-haiku]",
        "scale": "log_odds",
        "estimate": 1.9,
        "lo": 0.33,
        "hi": 3.47,
        "p": 0.004,
        "p_adjusted": 0.004,
        "decision": "supported",
        "reason": "interval lies above 0, adj. p 0.004",
        "arms": [],
    }
    test = {
        "kind": "model",
        "statistic": "framing_by_model: framing[deu]:subject[claude-haiku]",
        "outcome": "detected",
        "direction": "increase",
        "margin": 0.0,
        "combine": None,
        "prediction": "Δ > 0",
        "method": "Wald interval and p of the fitted coefficient (log-odds)",
        "components": [component],
        "decision": "supported",
    }
    return {
        "correction": {"method": "holm", "alpha": 0.05, "family": "every estimate", "tests": 1},
        "hypotheses": [
            {
                "id": "H1",
                "text": "DEU helps haiku more | on the odds scale.",
                "decision": "supported",
                "rule": "supported if the 99% interval lies above 0 and adj. p < 0.01",
                "reason": "interval lies above 0, adj. p 0.004",
                "alpha": 0.01,
                "tests": [test],
            },
            {
                "id": "H2",
                "text": "Something nobody tests.",
                "decision": "not_tested",
                "rule": "not tested (no test named)",
                "reason": "no test named",
                "alpha": 0.05,
                "tests": [],
            },
        ],
    }


def probe_validity() -> dict:
    """Two trained probes' validity, one with the positive verdict and one without, and the
    zero-shot readouts on a transfer set, as analysis/validity.py writes them."""

    def transfer(set_path: str, auroc: float, bow: float, random: float) -> dict:
        return {
            "set": set_path,
            "n_pos": 25,
            "n_neg": 25,
            "auroc": auroc,
            "bow_auroc": bow,
            "random_auroc": random,
            "threshold": 1.25,
            "false_positives": 5,
            "fpr": 0.2,
            "tpr": 0.48,
        }

    def probe(name: str, positive: str, negative: str, t: dict, verdict: str) -> dict:
        reads_more = verdict.startswith("reads more")
        return {
            "name": name,
            "positive": positive,
            "negative": negative,
            "model": "tiny",
            "layer": 22,
            "dataset": f"data/{name}.jsonl",
            "heldout_auroc": 0.969,
            "bow_auroc": 0.533,
            "random_auroc": 0.989,
            "random_seed": 0,
            "n_threshold": 44,
            "transfer": t,
            "margin": 0.05,
            "beats_words": reads_more,
            "beats_random": reads_more,
            "reads_more": reads_more,
            "verdict": verdict,
        }

    return {
        "validity": [
            probe(
                "deception",
                "deceptive",
                "honest",
                transfer("data/ood_deception.jsonl", 0.8123, 0.55, 0.61),
                "reads more than words and more than the instruction (transfer AUROC 0.81)",
            ),
            probe(
                "performative",
                "performative",
                "sincere",
                transfer("data/ood_performative.jsonl", 0.62, 0.9, 0.7),
                "reads the words (the bag of words matches it held-out) (transfer AUROC 0.62)",
            ),
        ],
        "readout_transfer": [
            {
                "metric": "author.sincere_vs_insincere",
                "set": "data/ood_performative.jsonl",
                "positive": "performative",
                "negative": "sincere",
                "n_pos": 25,
                "n_neg": 25,
                "auroc": 0.1875,
                "p": 0.0002,
                "direction": "higher = sincere",
            },
            {
                "metric": "followup.q1",
                "set": "data/ood_deception.jsonl",
                "positive": "deceptive",
                "negative": "honest",
                "n_pos": 25,
                "n_neg": 25,
                "auroc": 0.52,
                "p": 0.81,
                "direction": "higher = deceptive",
            },
        ],
    }


def verdict_fields(analysis: dict) -> None:
    """An ordinal `confidence` and an int `turns` in every cell, as analysis/levels.py writes
    them: the first cell has no scored item, the second one item and a value the protocol does
    not declare; the others five items each."""
    for n, cell in enumerate(analysis["cells"]):
        values = [[], ["high", "unsure"]][n] if n < 2 else ["low", "medium", "high", "high", "high"]
        turns = [[], [3]][n] if n < 2 else [1, 2, 4, 2, 6]
        cell["distributions"]["confidence"] = distribution(CONFIDENCE, values).model_dump()
        cell["means"] = {"turns": mean(turns).model_dump()}
