"""Statistics of a reader study: accuracy with Wilson intervals, exact binomial test,
confusion matrix, Cohen's and Fleiss' kappa, ROC from confidence, answers needed.

"Positive" is *synthetic*: sensitivity is the share of synthetic images called synthetic,
specificity the share of real images called real.  All functions are pure.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import UserError

__all__ = [
    "Z95", "wilson_interval", "binomial_test", "confusion_matrix", "cohen_kappa", "fleiss_kappa",
    "roc_from_confidence", "answers_needed", "verdict", "summarise_answers", "agreement",
]

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes of ``n``.

    >>> [round(v, 4) for v in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise UserError(f"successes must lie in [0, {n}], got {k}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def binomial_test(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value of ``k`` successes in ``n`` against ``p``."""
    from scipy.stats import binomtest

    if n <= 0:
        return 1.0
    return float(binomtest(int(k), int(n), p, alternative="two-sided").pvalue)


def confusion_matrix(truth, answer) -> dict:
    """Counts ``{tp, fn, fp, tn}`` with synthetic as positive; ``truth``/``answer`` hold 'real'/'synthetic'."""
    truth, answer = np.asarray(truth), np.asarray(answer)
    syn_t, syn_a = truth == "synthetic", answer == "synthetic"
    return {"tp": int((syn_t & syn_a).sum()), "fn": int((syn_t & ~syn_a).sum()),
            "fp": int((~syn_t & syn_a).sum()), "tn": int((~syn_t & ~syn_a).sum())}


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two readers' labels on the same items (NaN when undefined).

    >>> cohen_kappa(["r", "r", "s", "s"], ["r", "s", "s", "s"])
    0.5
    """
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b) or len(a) == 0:
        raise UserError(f"Cohen's kappa needs two equal, non-empty label lists, got {len(a)} and {len(b)}")
    labels = sorted(set(a.tolist()) | set(b.tolist()))
    po = float((a == b).mean())
    pe = sum(float((a == c).mean()) * float((b == c).mean()) for c in labels)
    return float("nan") if pe >= 1 else (po - pe) / (1 - pe)


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa from an ``(items, categories)`` table of how many readers chose each category.

    Every item must have the same number of ratings (>= 2).
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or len(table) == 0:
        raise UserError(f"Fleiss' kappa needs an (items, categories) table, got shape {table.shape}")
    n = table.sum(1)
    if np.any(n != n[0]) or n[0] < 2:
        raise UserError("Fleiss' kappa needs the same number (>= 2) of ratings on every item")
    n = n[0]
    p_j = table.sum(0) / table.sum()
    p_i = ((table**2).sum(1) - n) / (n * (n - 1))
    p_bar, pe = p_i.mean(), (p_j**2).sum()
    return float("nan") if pe >= 1 else float((p_bar - pe) / (1 - pe))


def roc_from_confidence(truth, answer, confidence) -> dict:
    """ROC of the readers' belief "synthetic" on an 8-step scale (answer side x confidence 1–4).

    Returns ``{fpr, tpr, auc}`` (lists, AUC None when only one class is present).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    truth, answer = np.asarray(truth), np.asarray(answer)
    conf = np.asarray(confidence, dtype=np.float64)
    score = np.where(answer == "synthetic", conf, -conf)
    y = truth == "synthetic"
    if y.all() or (~y).all():
        return {"fpr": [], "tpr": [], "auc": None}
    fpr, tpr, _ = roc_curve(y, score)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(roc_auc_score(y, score))}


def answers_needed(half_width: float, p: float = 0.5, z: float = Z95) -> int:
    """Answers for a 95 % interval of ``± half_width`` around an accuracy ``p`` (normal approximation).

    >>> answers_needed(0.10)
    97
    """
    if not 0 < half_width < 1:
        raise UserError(f"interval half-width must lie in (0, 1), got {half_width}")
    return int(math.ceil(z * z * p * (1 - p) / half_width**2))


def verdict(k: int, n: int) -> str:
    """A plain-language reading of ``k`` correct of ``n``."""
    if n == 0:
        return "No answers yet."
    lo, hi = wilson_interval(k, n)
    acc = f"accuracy {k / n:.0%} (95 % CI {lo:.0%}–{hi:.0%}, {n} answers)"
    if lo <= 0.5 <= hi:
        return (f"The readers could not tell synthetic from real better than chance: {acc} includes 50 %. "
                "The synthetic images fool them" + (" (few answers: the interval is still wide)." if hi - lo > 0.2 else "."))
    if lo > 0.5:
        return f"The readers told synthetic from real better than chance: {acc} lies above 50 %."
    return (f"The readers were wrong more often than chance: {acc} lies below 50 % — they took "
            "synthetic images for real and real for synthetic.")


def summarise_answers(rows: list[dict], mode: str = "single") -> dict:
    """Accuracy, intervals, test and (single mode) sensitivity, specificity, confusion, ROC.

    ``rows`` hold ``truth`` and ``answer`` ('real'/'synthetic' in single mode; in 2AFC the
    side picked as real, 'left'/'right', and the truth is the real image's side) and
    ``confidence`` (1–4, optional).
    """
    n = len(rows)
    truth = [r["truth"] for r in rows]
    answer = [r["answer"] for r in rows]
    k = int(sum(t == a for t, a in zip(truth, answer)))
    lo, hi = wilson_interval(k, n)
    out = {"n": n, "correct": k, "accuracy": k / n if n else None, "accuracy_ci95": [lo, hi],
           "p_value": binomial_test(k, n), "verdict": verdict(k, n)}
    if mode == "single" and n:
        cm = confusion_matrix(truth, answer)
        pos, neg = cm["tp"] + cm["fn"], cm["tn"] + cm["fp"]
        out["confusion"] = cm
        out["sensitivity"] = cm["tp"] / pos if pos else None
        out["sensitivity_ci95"] = list(wilson_interval(cm["tp"], pos))
        out["specificity"] = cm["tn"] / neg if neg else None
        out["specificity_ci95"] = list(wilson_interval(cm["tn"], neg))
        conf = [r.get("confidence") or 1 for r in rows]
        out["roc"] = roc_from_confidence(truth, answer, conf)
    return out


def agreement(rows: list[dict]) -> dict:
    """Inter-reader agreement on items answered by every reader: Cohen's κ (2 readers) or Fleiss' κ (more)."""
    readers = sorted({r["reviewer"] for r in rows})
    by_item: dict = {}
    for r in rows:
        by_item.setdefault(r["item_id"], {})[r["reviewer"]] = r["answer"]
    common = [item for item, answers in by_item.items() if len(answers) == len(readers)]
    out = {"readers": len(readers), "common_items": len(common), "cohen_kappa": None, "fleiss_kappa": None}
    if len(readers) < 2 or not common:
        return out
    if len(readers) == 2:
        a = [by_item[i][readers[0]] for i in common]
        b = [by_item[i][readers[1]] for i in common]
        out["cohen_kappa"] = cohen_kappa(a, b)
    categories = sorted({ans for i in common for ans in by_item[i].values()})
    table = [[sum(1 for ans in by_item[i].values() if ans == c) for c in categories] for i in common]
    if len(categories) > 1 or len(readers) > 2:
        out["fleiss_kappa"] = fleiss_kappa(table)
    return out
