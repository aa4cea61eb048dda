"""Reader-study statistics against values computed by hand."""

import math

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.study_stats import (
    agreement, answers_needed, binomial_test, cohen_kappa, confusion_matrix, fleiss_kappa,
    roc_from_confidence, summarise_answers, verdict, wilson_interval,
)


def test_wilson_interval_by_hand():
    # k = 8, n = 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71679,
    # half 1.96 * sqrt(0.016 + 0.0096040) / 1.38416 = 0.22662
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-4) and hi == pytest.approx(0.94331, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(UserError):
        wilson_interval(11, 10)


def test_exact_binomial_by_hand():
    # P(X >= 8 or X <= 2 | n = 10, p = 0.5) = 2 * (45 + 10 + 1) / 1024
    assert binomial_test(8, 10) == pytest.approx(112 / 1024)
    assert binomial_test(5, 10) == pytest.approx(1.0)


def test_confusion_and_kappa_by_hand():
    truth = ["synthetic", "synthetic", "real", "real", "synthetic"]
    answer = ["synthetic", "real", "real", "synthetic", "synthetic"]
    assert confusion_matrix(truth, answer) == {"tp": 2, "fn": 1, "fp": 1, "tn": 1}
    # po = 0.75; pe = 0.5*0.25 + 0.5*0.75 = 0.5 -> kappa = 0.5
    assert cohen_kappa(list("rrss"), list("rsss")) == pytest.approx(0.5)
    assert cohen_kappa(list("rs"), list("rs")) == pytest.approx(1.0)


def test_fleiss_kappa_wikipedia_example():
    # The worked example of Fleiss' kappa (10 items, 14 raters, 5 categories): kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-4)
    with pytest.raises(UserError, match="same number"):
        fleiss_kappa([[1, 1], [2, 1]])


def test_roc_from_confidence_by_hand():
    truth = ["synthetic", "synthetic", "real", "real"]
    answer = ["synthetic", "real", "real", "synthetic"]
    roc = roc_from_confidence(truth, answer, [4, 1, 3, 1])
    # scores: syn 4, -1; real -3, 1 -> pairs (syn > real): 4>-3, 4>1, -1>-3, -1<1 -> 3/4
    assert roc["auc"] == pytest.approx(0.75)
    assert roc_from_confidence(["real"], ["real"], [2])["auc"] is None


def test_answers_needed():
    assert answers_needed(0.10) == 97  # "±10 % needs about 100 answers at 50 %"
    assert answers_needed(0.05) == 385
    assert answers_needed(0.10, p=0.8) == math.ceil(1.959963984540054**2 * 0.16 / 0.01)
    with pytest.raises(UserError):
        answers_needed(0)


def test_planted_answer_set():
    """20 answers of one reader: 14 correct; 10 synthetic of which 8 called synthetic."""
    rows = ([{"truth": "synthetic", "answer": "synthetic", "confidence": 3}] * 8
            + [{"truth": "synthetic", "answer": "real", "confidence": 2}] * 2
            + [{"truth": "real", "answer": "real", "confidence": 4}] * 6
            + [{"truth": "real", "answer": "synthetic", "confidence": 1}] * 4)
    out = summarise_answers(rows)
    assert out["accuracy"] == pytest.approx(0.7) and out["n"] == 20
    assert out["sensitivity"] == pytest.approx(0.8) and out["specificity"] == pytest.approx(0.6)
    lo, hi = out["accuracy_ci95"]
    assert (lo, hi) == pytest.approx(wilson_interval(14, 20)) and lo == pytest.approx(0.48102, abs=1e-4)
    assert out["p_value"] == pytest.approx(binomial_test(14, 20)) and out["p_value"] == pytest.approx(0.11532, abs=1e-4)
    assert out["confusion"] == {"tp": 8, "fn": 2, "fp": 4, "tn": 6}
    assert "could not tell" in out["verdict"] and "includes 50 %" in out["verdict"]


def test_verdicts_in_words():
    assert "better than chance" in verdict(90, 100) and "above 50 %" in verdict(90, 100)
    assert "wrong more often than chance" in verdict(20, 100)
    assert "could not tell" in verdict(52, 100)
    assert verdict(0, 0) == "No answers yet."


def test_two_afc_accuracy():
    rows = [{"truth": "left", "answer": "left"}, {"truth": "right", "answer": "left"},
            {"truth": "right", "answer": "right"}, {"truth": "left", "answer": "left"}]
    out = summarise_answers(rows, mode="2afc")
    assert out["accuracy"] == 0.75 and "sensitivity" not in out


def test_agreement_two_and_three_readers():
    def rows(reader, answers):
        return [{"reviewer": reader, "item_id": i, "answer": a} for i, a in enumerate(answers)]

    two = rows("a", ["real", "real", "synthetic", "synthetic"]) + rows("b", ["real", "synthetic", "synthetic", "synthetic"])
    assert agreement(two)["cohen_kappa"] == pytest.approx(0.5)
    three = two + rows("c", ["real", "real", "synthetic", "real"])
    # items: [3,0], [2,1], [0,3], [1,2] of (real, synthetic): P_i = 1, 1/3, 1, 1/3 -> P = 2/3; pe = 0.5
    out = agreement(three)
    assert out["readers"] == 3 and out["cohen_kappa"] is None
    assert out["fleiss_kappa"] == pytest.approx((2 / 3 - 0.5) / 0.5)
