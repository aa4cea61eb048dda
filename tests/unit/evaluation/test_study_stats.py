"""Reader-study statistics against values computed by hand."""

import math

import numpy as np
import pytest

from core.errors import UserError
from core.evaluation.study_stats import (
    agreement, answers_needed, binomial_test, cohen_kappa, confusion_matrix, crossed_bootstrap_interval,
    find_separating_features, fleiss_kappa, roc_from_confidence, summarise_answers, verdict, wilson_interval,
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


# ---------------------------------------------------------------------------- crossed bootstrap
def _reader_rows(readers, correct_items, n_items, truth="real"):
    """Every reader answers the same ``n_items`` items, right exactly on ``correct_items``."""
    wrong = "synthetic" if truth == "real" else "real"
    return [{"reviewer": name, "item_id": i, "truth": truth, "answer": truth if i in correct_items else wrong}
            for name in readers for i in range(n_items)]


def test_bootstrap_is_wider_than_wilson_when_readers_share_the_items():
    # 4 readers, the same 20 images, the same answers (perfectly correlated): 56 of 80 right.
    # Wilson counts 80 independent answers; the information is that of 20 images.
    rows = _reader_rows("ABCD", set(range(14)), 20)
    lo, hi = crossed_bootstrap_interval(rows, seed=0)
    w_lo, w_hi = wilson_interval(56, 80)
    assert hi - lo > 1.5 * (w_hi - w_lo)
    assert lo < 0.7 < hi
    assert crossed_bootstrap_interval(rows, seed=0) == (lo, hi)  # seeded: the same interval every time
    # One reader on 20 items: an item bootstrap, about as wide as Wilson on 20 answers.
    one = _reader_rows("A", set(range(14)), 20)
    o_lo, o_hi = crossed_bootstrap_interval(one)
    assert (o_hi - o_lo) == pytest.approx(wilson_interval(14, 20)[1] - wilson_interval(14, 20)[0], abs=0.08)


def test_bootstrap_sees_reader_differences():
    # Two readers on the same 30 items: one always right, one right on a third. Readers differ,
    # so resampling readers adds width that an item-only bootstrap would miss.
    rows = _reader_rows("A", set(range(30)), 30) + _reader_rows("B", set(range(10)), 30)
    lo, hi = crossed_bootstrap_interval(rows)
    assert lo < 0.45 and hi > 0.9
    assert crossed_bootstrap_interval([]) == (0.0, 1.0)


def test_verdict_reads_the_interval_it_is_given():
    assert "better than chance" in verdict(70, 100)
    assert "could not tell" in verdict(70, 100, interval=(0.45, 0.9), interval_name="bootstrap CI")
    assert "bootstrap CI 45%–90%" in verdict(70, 100, interval=(0.45, 0.9), interval_name="bootstrap CI")


# ---------------------------------------------------------------------------- blinding audit
def _streamlit_like_item(key: str, position: int, total: int, rng) -> dict:
    """The DOM strings of one study item as Streamlit draws them: the widget key as an ``st-key-…``
    class, a progress caption, an image served under a content hash, neutral labels."""
    media = rng.bytes(14).hex()
    return {"strings": [
        "div class=stElementContainer element-container st-emotion-cache-1vo6xi6",
        f"div class=stProgress aria-valuenow={round(100 * position / total)}", f"Item {position + 1} of {total}",
        f"img src=/media/{media}.png alt=0", "Image",
        f"div class=stForm st-key-{key.replace('answer', 'form')}",
        f"div class=stRadio st-key-{key}", "This image is", "Real", "Synthetic", "Confidence", "Submit answer"],
        "numbers": {"image bytes": 25_731, "image width": 160}}


def _study_pages(key_for, n_real=6, n_syn=6, seed=3):
    """One reviewer's pages of a single-mode study; ``key_for(item_id)`` makes the answer widget key."""
    rng = np.random.default_rng(seed)
    truth = ["real"] * n_real + ["synthetic"] * n_syn  # the old numbering: every real image first
    order = rng.permutation(n_real + n_syn)           # the reviewer's own random order
    items = [_streamlit_like_item(key_for(int(i)), k, len(order), rng) for k, i in enumerate(order)]
    return items, [truth[i] for i in order]


def test_old_item_id_keys_are_caught():
    # The leak of the first version: review_answer_{item_id} with reals numbered first. Each key is
    # unique, but its number splits the classes at n_real.
    items, truths = _study_pages(lambda i: f"review_answer_{i}")
    found = find_separating_features(items, truths)
    assert any("st-key-review_answer_#" in f and "splits the classes" in f for f in found), found
    assert any("st-key-review_form_#" in f for f in found), found


def test_opaque_keys_pass():
    import hashlib
    import hmac

    def opaque(i):
        return "review_answer_" + hmac.new(b"secret", f"Ann\x1f{i}".encode(), hashlib.sha256).hexdigest()[:16]

    items, truths = _study_pages(opaque)
    assert find_separating_features(items, truths) == []


def test_truth_words_structure_and_sizes_are_caught():
    items, truths = _study_pages(lambda i: "review_answer_" + "%016x" % (i * 7919 + 11))
    assert find_separating_features(items, truths) == []
    # a caption or alt text naming the truth
    named = [{**item, "strings": item["strings"] + [f"alt={t}"]} for item, t in zip(items, truths)]
    assert any("alt=real" in f for f in find_separating_features(named, truths))
    # an extra element on synthetic pages only (e.g. a warning drawn for samples)
    extra = [{**item, "strings": item["strings"] + (["div class=stAlert"] if t == "synthetic" else [])}
             for item, t in zip(items, truths)]
    assert any("stAlert" in f for f in find_separating_features(extra, truths))
    # compressed PNG sizes: blurry synthetic images compress better
    sized = [{**item, "numbers": {**item["numbers"], "image bytes": (9000 if t == "real" else 6000) + k}}
             for k, (item, t) in enumerate(zip(items, truths))]
    assert any("'image bytes' splits the classes" in f for f in find_separating_features(sized, truths))
    # a categorical attribute that groups items by truth
    grouped = [{**item, "values": {"img class": "a" if t == "real" else "b"}} for item, t in zip(items, truths)]
    assert any("'img class'" in f for f in find_separating_features(grouped, truths))
    with pytest.raises(UserError, match="two classes"):
        find_separating_features(items[:3], ["real", "synthetic", "synthetic"])
