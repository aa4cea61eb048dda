"""An evaluation as rows a reader can check: each sample figure beside its real-vs-real baseline.

One table for the Review page and the HTML report (and anything else that shows
``evaluation.json``): every row is ``{figure, value, real baseline, verdict, detail}`` so that
a figure is never shown without what real people score on it, and a figure that could not be
computed says why.
"""

from __future__ import annotations

__all__ = ["judge_rows", "verdict_line"]


def _num(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


def _ci(entry):
    ci = entry.get("ci95")
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _missing(entry) -> str | None:
    if not isinstance(entry, dict):
        return "not measured" if entry is None else None
    if entry.get("available") is False:
        return entry.get("reason") or "not available"
    return None


def _spread_text(spread: dict | None) -> str:
    if not spread or spread.get("median") is None:
        return "–"
    return f"{spread['median']:.3g} (5–95 %: {spread['p05']:.3g}–{spread['p95']:.3g})"


def _within(flag) -> str:
    return "–" if flag is None else ("within real" if flag else "outside real")


def judge_rows(evaluation: dict) -> list[dict]:
    """Rows ``{figure, value, real, verdict, detail}`` (all strings but ``value``) of an evaluation.

    >>> rows = judge_rows({"c2st": {"available": False, "reason": "no prior"}})
    >>> [r["detail"] for r in rows if r["figure"].startswith("Two-sample")][0]
    'no prior'
    """
    ev = evaluation or {}
    rows: list[dict] = []

    def add(figure, value, real="–", verdict="–", detail=""):
        rows.append({"figure": figure, "value": value, "real": real, "verdict": verdict, "detail": detail})

    for key, label in (("ssim", "SSIM, test reconstructions"), ("psnr", "PSNR dB, test reconstructions")):
        entry = ev.get(key) or {}
        missing = _missing(entry)
        add(label, None if missing else entry.get("mean"), "1 = identical" if key == "ssim" else "–",
            detail=missing or f"{entry.get('n', '')} test slices")

    c2st = ev.get("c2st") or {}
    missing = _missing(c2st) or (None if c2st.get("accuracy") is not None else c2st.get("reason", "not measured"))
    base = c2st.get("real_baseline") or {}
    base_missing = _missing(base)
    if missing:
        add("Two-sample accuracy, held-out subjects", None, detail=missing)
    else:
        from core.evaluation.c2st import beyond_real

        within = None if base_missing else not beyond_real(c2st, base)
        add("Two-sample accuracy, held-out subjects", c2st["accuracy"],
            base_missing or f"{base['accuracy']:.3f}{_ci(base)}", _within(within),
            f"{_ci(c2st).strip()} · {c2st.get('n_scored')} images · best of CNN "
            f"{c2st['classifiers']['cnn']['accuracy']:.3f} / statistics {c2st['classifiers']['statistics']['accuracy']:.3f}"
            if "classifiers" in c2st else _ci(c2st).strip())
        training = c2st.get("against_training") or {}
        t_missing = _missing(training)
        gap = c2st.get("memorisation_gap") or {}
        add("Two-sample accuracy, training slices", None if t_missing else training.get("accuracy"),
            "–", "–" if t_missing else ("copy signal" if gap.get("signal") else "no copy signal"),
            t_missing or f"{_ci(training).strip()} · gap held-out − training {gap.get('gap', 0):+.3f}")

    anatomy = ev.get("c2st_anatomy") or {}
    label = "Two-sample accuracy, anatomy-aware space"
    missing = _missing(anatomy) or (None if anatomy.get("accuracy") is not None else "not measured (evaluate again)")
    if missing:
        add(label, None, detail=missing)
    else:
        base = anatomy.get("real_baseline") or {}
        base_missing = _missing(base)
        within = None if base_missing or anatomy.get("beyond_real") is None else not anatomy["beyond_real"]
        add(label, anatomy["accuracy"], base_missing or f"{base['accuracy']:.3f}{_ci(base)}", _within(within),
            f"{_ci(anatomy).strip()} (subjects resampled) · learned level, orientation and tampering"
            + (" · judged at the requested level" if anatomy.get("conditioned_on_level") else ""))
    for key, label, meaning in (
            ("precision", "Precision, anatomy space (realism)", "samples inside the real slices' neighbourhoods"),
            ("recall", "Recall, anatomy space (variety)", "real slices inside the samples' neighbourhoods"),
            ("density", "Density, anatomy space", "1 ≈ as crowded around real slices as real people are"),
            ("coverage", "Coverage, anatomy space", "real slices with a sample nearby")):
        entry = ev.get(key) or {}
        missing = _missing(entry)
        if missing or "value" not in entry:
            add(label, None, detail=missing or "not measured (evaluate again)")
            continue
        add(label, entry["value"], _spread_text(entry.get("real_spread")), _within(entry.get("within_real_spread")),
            f"{meaning}; real: by-subject halves of the held-out people" + (
                f" ({entry['position']} the real range)" if entry.get("position") not in (None, "within") else ""))

    memo = ev.get("memorisation") or {}
    missing = _missing(memo) or (None if "near_copy_fraction" in memo else "not measured")
    if missing:
        add("Near-copies of training slices", None, detail=missing)
    else:
        real = memo.get("real_baseline") or {}
        fraction = memo["near_copy_fraction"]
        ok = None if "near_copy_fraction" not in real else fraction <= real["near_copy_fraction"]
        add("Near-copies of training slices", fraction,
            f"{real.get('near_copy_fraction', 0):.3f} of real strangers" if real else "–", _within(ok),
            f"{memo['near_copies']} of {ev.get('n_samples')} samples{_ci(memo)} · threshold {memo['threshold']:.3f}")

    for key, label in (("fd_slice_position_net", "FD, slice-position net (lower is better)"),
                       ("fd_own_encoder", "FD, own encoder (lower is better)"),
                       ("mmd_handcrafted", "MMD², handcrafted features (lower is better)"),
                       ("ms_ssim_synthetic", "MS-SSIM among samples (alike-ness)")):
        entry = ev.get(key) or {}
        missing = _missing(entry)
        if key == "ms_ssim_synthetic":
            value = None if missing else entry.get("mean")
            real = (ev.get("ms_ssim_real") or {}) if missing else entry.get("real_spread")
        else:
            value, real = None if missing else entry.get("value"), entry.get("real_spread")
        if missing and not real:
            add(label, None, detail=missing)
            continue
        add(label, value, _spread_text(real), _within(None if missing else entry.get("within_real_spread")),
            missing or "real: two sets of different held-out people, same sizes")

    sharp = ev.get("sharpness_ratio")
    add("Sharpness of samples ÷ held-out real", None if isinstance(sharp, dict) else sharp, "1 = as sharp",
        detail=_missing(sharp) or "")
    board = ev.get("checkerboard") or {}
    if board:
        missing = _missing(board)
        worst = (lambda d: max(d.values()) if d else None)
        real = None if missing else worst(board.get("real") or {})
        add("Checkerboard index of samples (worst period)", None if missing else worst(board.get("samples") or {}),
            "–" if real is None else f"{real:.2f} for held-out real", detail=missing or "1 = no periodic pattern")
    anomaly = ev.get("anomaly") or {}
    add("Anomaly pixel AUROC (synthetic lesions)", None if _missing(anomaly) else anomaly.get("auroc"),
        detail=_missing(anomaly) or anomaly.get("label", ""))
    return rows


def verdict_line(evaluation: dict) -> str:
    """One sentence: indistinguishable or not, and why (or why it cannot be said).

    >>> verdict_line({})
    'No verdict: the run was evaluated before the strict judge; evaluate it again.'
    >>> verdict_line({"quick": True, "verdict": {"indistinguishable": False, "reasons": ["told apart"]}})
    'Quick look (2 folds, 15 epochs; evaluate in full before quoting it). Distinguishable from real people: told apart.'
    """
    verdict = (evaluation or {}).get("verdict")
    if not verdict:
        return "No verdict: the run was evaluated before the strict judge; evaluate it again."
    if verdict.get("available") is False:
        return f"No verdict: {verdict['reason']}."
    head = ("Indistinguishable from real people by this judge" if verdict["indistinguishable"]
            else "Distinguishable from real people")
    if evaluation.get("quick"):
        head = f"Quick look (2 folds, 15 epochs; evaluate in full before quoting it). {head}"
    return f"{head}: " + "; ".join(verdict["reasons"]) + "."
