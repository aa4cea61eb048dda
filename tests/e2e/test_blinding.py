"""Blinding of the reader study as a curious reader's browser sees it.

A reader can open the inspector (every element, class, id, ``data-*`` and ARIA attribute,
text) and the network panel (every image's bytes).  For a single-mode study this test goes
through every item in headless Chromium, collects all of that from the page's main block,
and only afterwards reads the truth of each item from the store.  Then
:func:`core.evaluation.study_stats.find_separating_features` looks for anything that sorts
real from synthetic items: a string, word or template found on one class only, a number
inside a repeated template (an id numbered reals first), a count of elements, an image's byte
size or dimensions, an aligned attribute value.  There must be none.

Image bytes get the strict check too, because the app serves study images as uncompressed
PNGs (``ui.review.blind_png``): every image of a study has the same byte size.  With
compressed PNGs a blurry synthetic slice is genuinely smaller than a sharp real one, and the
size in the network panel would give it away; the pixels themselves are what readers judge,
so their content is not a feature here.

The same analysis must see the leak of the first version: on each item's real page the test
adds the class ``st-key-review_answer_{id}`` that the old code wrote (ids numbered every real
image first), collects again, and the audit has to flag it.
"""

from __future__ import annotations

import base64
import io
import re
import sqlite3
from pathlib import Path

import pytest

from e2e.support import wait_idle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TINY_VAE = {"filters": [8, 16], "latent_dim": 8, "batch_size": 16, "epochs": 2, "warmup_epochs": 2}
N_ITEMS = 12  # 6 real, 6 synthetic: a chance split of a random feature has p = 2 / C(12, 6) = 0.2 %
REVIEWER = "Curious Reader"

#: JS: everything the main block of the page shows or carries, as strings, per element and whole.
COLLECT = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const elements = [main, ...main.querySelectorAll('*')];
  const strings = [], aligned = [];
  elements.forEach((el) => {
    const tag = el.tagName.toLowerCase();
    const attrs = {};
    for (const a of el.attributes) { attrs[a.name] = a.value; strings.push(`${tag} ${a.name}=${a.value}`); }
    for (const c of el.classList) strings.push(`class ${c}`);
    aligned.push([tag, attrs]);
  });
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.nodeValue.trim();
    if (text) strings.push(`text ${text}`);
  }
  strings.push(main.innerText, main.outerHTML);
  const images = [...main.querySelectorAll('img')].map(
    (img) => ({src: img.currentSrc || img.src, width: img.naturalWidth, height: img.naturalHeight}));
  return {strings, aligned, images};
}"""

#: JS: add to the answer radio's container the class the first version gave it (its key with the item id).
PLANT = """(oldId) => {
  const el = document.querySelector('[data-testid="stMain"] [class*="st-key-review_answer_"]');
  el.classList.add(`st-key-review_answer_${oldId}`);
  return el.className;
}"""
UNPLANT = """(oldId) => {
  document.querySelector('[data-testid="stMain"] [class*="st-key-review_answer_"]')
    .classList.remove(`st-key-review_answer_${oldId}`);
}"""


@pytest.fixture(scope="module")
def blinding_run(app_env, tmp_path_factory):
    """A tiny finished VAE run inside the server's runs folder."""
    from helpers import make_tiny_dataset

    from core.training import runs, trainer

    dataset = make_tiny_dataset(tmp_path_factory.mktemp("blinding_ds") / "ds")
    run_dir = runs.prepare_run(Path(app_env["LATENTBRAIN_RUNS"]) / "e2e-blinding-vae", dataset, "vae", "demo",
                               TINY_VAE)
    trainer.train_run(run_dir)
    return run_dir


def _image_bytes(page, src: str) -> bytes:
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    response = page.request.get(src)
    assert response.ok, f"{src}: {response.status}"
    return response.body()


def page_features(page, collected: dict) -> dict:
    """The audit's view of one item: strings, aligned attribute values, image sizes (bytes, pixels)."""
    from PIL import Image

    item = {"strings": list(collected["strings"]), "numbers": {}, "values": {}}
    # The element structure itself, so an element drawn for one class only is a string of its own.
    item["strings"].append("structure " + " ".join(tag for tag, _ in collected["aligned"]))
    for k, (tag, attrs) in enumerate(collected["aligned"]):
        for name, value in attrs.items():
            item["values"][f"element {k} <{tag}> {name}"] = value
    for k, image in enumerate(collected["images"]):
        data = _image_bytes(page, image["src"])
        with Image.open(io.BytesIO(data)) as decoded:
            width, height = decoded.size
        item["numbers"].update({f"image {k} bytes": len(data), f"image {k} width": width,
                                f"image {k} height": height, f"image {k} shown width": image["width"],
                                f"image {k} shown height": image["height"]})
    return item


def _aligned_only(items: list[dict]) -> list[dict]:
    """Keep aligned values only when every item has the same element structure (else they do not align;
    a structure that differs is then caught as a string)."""
    structures = {next(s for s in item["strings"] if s.startswith("structure ")) for item in items}
    return items if len(structures) == 1 else [{**item, "values": {}} for item in items]


def _answer(page, answer: str) -> None:
    page.locator('[data-testid="stRadio"]').filter(has_text="This image is").locator("label").filter(
        has_text=answer).first.click()
    page.locator('[data-testid="stRadio"]').filter(has_text="Confidence").locator("label").filter(
        has_text=re.compile(r"^2$")).first.click()
    page.get_by_role("button", name="Submit answer").click()
    wait_idle(page)


def test_nothing_on_the_page_separates_real_from_synthetic(browser, app_url, app_env, blinding_run):
    from core.evaluation.study import StudyStore
    from core.evaluation.study_stats import find_separating_features

    store = StudyStore(app_env["LATENTBRAIN_RUNS"])
    sid = store.create_study(blinding_run, "single", n_items=N_ITEMS, real_share=0.5, seed=11)["study_id"]
    # The first version's numbering, for the planted leak only: every real item first.  The clean
    # pages are collected without looking at the truth.
    with sqlite3.connect(store.path) as con:
        truth_of = dict(con.execute("SELECT item_id, truth FROM items WHERE study_id = ?", (sid,)).fetchall())
    old_ids = {item: k for k, item in enumerate(sorted(truth_of, key=lambda i: (truth_of[i] != "real", i)))}

    context = browser.new_context(viewport={"width": 1300, "height": 1500})
    page = context.new_page()
    page.set_default_timeout(240_000)
    clean, planted = [], []
    try:
        page.goto(f"{app_url}/review")
        wait_idle(page)
        page.locator('[data-testid="stMain"] [data-testid="stRadio"] label').filter(
            has_text="Reader study").first.click()
        wait_idle(page)
        box = page.get_by_role("textbox", name="Your name (reviewer)")
        box.fill(REVIEWER)
        box.press("Enter")
        wait_idle(page)
        # The newest study is preselected: ours.
        for step in range(N_ITEMS):
            page.get_by_text(f"Item {step + 1} of {N_ITEMS}").wait_for()
            clean.append(page_features(page, page.evaluate(COLLECT)))
            on_screen = store.next_item(sid, REVIEWER)["item_id"]  # for the planted leak only
            assert f"st-key-review_answer_{old_ids[on_screen]}" in page.evaluate(PLANT, old_ids[on_screen])
            planted.append(page_features(page, page.evaluate(COLLECT)))
            page.evaluate(UNPLANT, old_ids[on_screen])
            _answer(page, ("Real", "Synthetic")[step % 2])
        page.get_by_text(f"Done: you answered all {N_ITEMS}").wait_for()
    finally:
        context.close()

    # Only now the truth, in the order the items were shown.
    rows = store.answers(sid, REVIEWER)
    assert [r["item_id"] for r in rows] == store.order(sid, REVIEWER)
    truths = [r["truth"] for r in rows]
    assert sorted(truths) == ["real"] * (N_ITEMS // 2) + ["synthetic"] * (N_ITEMS // 2)

    # Nothing that names an item's source or truth reaches the page at all.
    for item in clean:
        page_text = "\n".join(item["strings"])
        assert not re.search(r"\b(test|sample):\d", page_text)
        assert "review_answer_" in page_text and not re.search(r"review_(answer|confidence|form)_\d+\b", page_text)
    # Every study image has the same byte size (uncompressed PNG) and the same pixel size.
    for name in clean[0]["numbers"]:
        assert len({item["numbers"][name] for item in clean}) == 1, name

    assert find_separating_features(_aligned_only(clean), truths) == []
    leaks = find_separating_features(_aligned_only(planted), truths)
    assert any("st-key-review_answer_#" in leak and "splits the classes" in leak for leak in leaks), leaks
