"""Statistics of a reader study: accuracy with Wilson intervals, exact binomial test,
confusion matrix, Cohen's and Fleiss' kappa, ROC from confidence, answers needed, a crossed
(readers × images) bootstrap for pooled accuracy, and a blinding audit
(:func:`find_separating_features`: does anything a reader's browser receives give the truth away?).

"Positive" is *synthetic*: sensitivity is the share of synthetic images called synthetic,
specificity the share of real images called real.  All functions are pure.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from core.errors import UserError

__all__ = [
    "Z95", "wilson_interval", "binomial_test", "confusion_matrix", "cohen_kappa", "fleiss_kappa",
    "roc_from_confidence", "answers_needed", "verdict", "summarise_answers", "agreement",
    "crossed_bootstrap_interval", "find_separating_features",
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


def verdict(k: int, n: int, interval: tuple[float, float] | None = None, interval_name: str = "95 % CI") -> str:
    """A plain-language reading of ``k`` correct of ``n``, judged on ``interval`` (default Wilson)."""
    if n == 0:
        return "No answers yet."
    lo, hi = interval if interval is not None else wilson_interval(k, n)
    acc = f"accuracy {k / n:.0%} ({interval_name} {lo:.0%}–{hi:.0%}, {n} answers)"
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


def crossed_bootstrap_interval(rows: list[dict], n_resamples: int = 2000, seed: int = 0,
                               level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of pooled accuracy, resampling readers and items independently.

    Several readers judge the *same* images, so their answers are not independent: an easy
    image is easy for everyone, and a sharp reader is sharp on every image.  A Wilson interval
    over all answers counts ``readers × images`` independent trials and comes out too narrow.
    This two-way (crossed) bootstrap draws readers with replacement and, independently, items
    with replacement, and recomputes the pooled share correct over the answers that the drawn
    readers gave on the drawn items (a reader or item drawn twice counts twice).  ``rows`` need
    ``reviewer``, ``item_id``, ``truth`` and ``answer``; missing answers are allowed.

    Three readers who answer the same 20 images identically (14 right) are, for the bootstrap,
    20 images' worth of evidence, not 60 answers' worth:

    >>> rows = [{"reviewer": r, "item_id": i, "truth": "real", "answer": "real" if i < 14 else "synthetic"}
    ...         for r in ("A", "B", "C") for i in range(20)]
    >>> lo, hi = crossed_bootstrap_interval(rows)
    >>> w_lo, w_hi = wilson_interval(42, 60)
    >>> hi - lo > w_hi - w_lo
    True
    """
    if not rows:
        return (0.0, 1.0)
    readers = sorted({r["reviewer"] for r in rows})
    items = sorted({r["item_id"] for r in rows})
    reader_at = {name: k for k, name in enumerate(readers)}
    item_at = {item: k for k, item in enumerate(items)}
    correct = np.zeros((len(readers), len(items)))
    answered = np.zeros((len(readers), len(items)))
    for r in rows:
        at = reader_at[r["reviewer"]], item_at[r["item_id"]]
        correct[at] += r["truth"] == r["answer"]
        answered[at] += 1
    rng = np.random.default_rng(seed)
    # A resample with replacement is a vector of how often each reader (item) was drawn; the
    # pooled count of a resample is then reader_counts @ table @ item_counts.
    reader_counts = rng.multinomial(len(readers), np.full(len(readers), 1 / len(readers)), size=n_resamples)
    item_counts = rng.multinomial(len(items), np.full(len(items), 1 / len(items)), size=n_resamples)
    hits = ((reader_counts @ correct) * item_counts).sum(1)
    total = ((reader_counts @ answered) * item_counts).sum(1)
    accuracy = hits[total > 0] / total[total > 0]
    if accuracy.size == 0:
        return (0.0, 1.0)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(accuracy, [tail, 100 - tail])
    return (float(lo), float(hi))


# ---------------------------------------------------------------------------- blinding audit
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[A-Za-z0-9]+")


def _separates(values, first, labels) -> str | None:
    """``"'a' items ≤ t < 'b' items"`` when a threshold puts each class on its own side, else None."""
    x, y = np.asarray(values, dtype=np.float64), np.asarray(first, dtype=bool)
    if x[y].max() < x[~y].min():
        return f"{labels[0]!r} items ≤ {x[y].max():g} < {labels[1]!r} items"
    if x[~y].max() < x[y].min():
        return f"{labels[1]!r} items ≤ {x[~y].max():g} < {labels[0]!r} items"
    return None


def find_separating_features(items: list[dict], truths: list[str]) -> list[str]:
    """What in the items' pages tells their truth apart: one sentence per leak, empty if none.

    Each item is what a reader's browser holds while it is on screen: ``strings`` (every text,
    attribute ``name=value``, class and outer HTML piece), ``numbers`` (named measurements such
    as an image's byte size or width) and ``values`` (named categorical attributes aligned
    across items).  ``truths`` holds two labels.  A feature leaks when it alone sorts the items:

    - **presence**: a string, a word in it, or its *template* (digits replaced by ``#``) found
      in every item of one class and in no item of the other;
    - **order**: a number inside strings of the same template (``review_answer_3``,
      ``item 7``) or a template's count, or a named number, that a threshold splits by class —
      ids numbered reals first leak this way even though each id is unique;
    - **category**: a named value whose values on the two classes never meet while some value
      is shared by several items (values unique to each item, like an opaque per-item key,
      cannot be learned and are not flagged).

    Chance can separate few items; every class needs at least 2 items, and with a handful of
    items a reviewer order that splits by chance is possible (use fixed seeds in tests).

    >>> items = [{"strings": [f"st-key-review_answer_{i}"]} for i in range(4)]
    >>> find_separating_features(items, ["real", "real", "synthetic", "synthetic"])
    ["number 1 in 'st-key-review_answer_#' splits the classes: 'real' items ≤ 1 < 'synthetic' items"]
    """
    truths = [str(t) for t in truths]
    labels = sorted(set(truths))
    if len(items) != len(truths):
        raise UserError(f"{len(items)} items but {len(truths)} truths")
    if len(labels) != 2 or min(truths.count(label) for label in labels) < 2:
        raise UserError(f"a blinding audit needs two classes of at least 2 items each, got {Counter(truths)}")
    first_label, other_label = labels
    first = [t == first_label for t in truths]
    found: list[str] = []

    # presence of strings, words and templates; ordered occurrences of each template
    presence: list[set] = []
    occurrences: list[dict] = []
    for item in items:
        seen, by_template = set(), {}
        for text in item.get("strings", ()):
            text = str(text)
            template = _DIGITS.sub("#", text)
            seen.update((f"string {text!r}", f"template {template!r}"))
            seen.update(f"word {w!r}" for w in _WORD.findall(text))
            by_template.setdefault(template, []).append([int(d) for d in _DIGITS.findall(text)])
        seen.update(f"number {name!r}" for name in item.get("numbers", {}))
        seen.update(f"value {name!r}" for name in item.get("values", {}))
        presence.append(seen)
        occurrences.append(by_template)
    every = set().union(*presence)
    for feature in sorted(every):
        has = [feature in seen for seen in presence]
        if has == first or has == [not f for f in first]:
            owner = first_label if has == first else other_label
            found.append(f"{feature} is in every {owner!r} item and in no other")

    templates = set().union(*(set(o) for o in occurrences))
    for template in sorted(templates):
        counts = [len(o.get(template, ())) for o in occurrences]
        if min(counts) > 0 and len(set(counts)) > 1 and (cut := _separates(counts, first, labels)):
            found.append(f"the count of {template!r} splits the classes: {cut}")
        if min(counts) == 0 or len(set(counts)) > 1 or "#" not in template:
            continue
        for j in range(counts[0]):
            for slot in range(len(occurrences[0][template][j])):
                values = [o[template][j][slot] for o in occurrences]
                if (cut := _separates(values, first, labels)):
                    found.append(f"number {slot + 1} in {template!r} splits the classes: {cut}")

    for name in sorted(set().union(*(set(item.get("numbers", {})) for item in items))):
        values = [item.get("numbers", {}).get(name) for item in items]
        if all(v is not None for v in values) and (cut := _separates(values, first, labels)):
            found.append(f"{name!r} splits the classes: {cut}")

    for name in sorted(set().union(*(set(item.get("values", {})) for item in items))):
        values = [item.get("values", {}).get(name) for item in items]
        if any(v is None for v in values):
            continue
        on_first = {v for v, f in zip(values, first) if f}
        on_other = {v for v, f in zip(values, first) if not f}
        if not on_first & on_other and len(set(values)) < len(values):
            found.append(f"value {name!r} takes different values on {first_label!r} and {other_label!r} items")
    return found
