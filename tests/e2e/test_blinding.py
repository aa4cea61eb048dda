"""Blinding of the reader study as a curious reader's browser sees it.

A reader can open the inspector (every element, class, id, ``data-*`` and ARIA attribute,
text) and the network panel (every image's bytes).  For a single-mode study the first test
goes through every item in headless Chromium, collects all of that from the page's main
block, and only afterwards reads the truth of each item from the store.  Then
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

Three more ways a reader could unblind a study, one test each:

1. *the results*: a reader who answers every item (under any name) must get no truth, no
   statistics, no answers file and no way to close the study; only the owner key opens them;
   and the image addresses one reader sees must not be another reader's (Streamlit serves an
   image under a hash of its bytes, so one reader's addresses would map everyone's images);
2. *the real images*: Side by side must not offer a subject the open study draws its real
   images from, nor show one of those images;
3. *the samples*: Side by side's sample tiles, the samples grid PNG and the NIfTI download
   must show none of the study's synthetic images.

Routes 2 and 3 plant the old behaviour in the store (a study without reserved subjects; a
study sampled with seed 0, as every study was) and require the same checks to see the leak.
"""

from __future__ import annotations

import base64
import io
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from e2e.support import screenshot, wait_idle

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
    """A tiny finished VAE run inside the server's runs folder; its test split has two subjects (S008, S009)
    of 8 slices, so a study reserves one and Side by side still shows the other."""
    from helpers import make_tiny_dataset

    from core.training import runs, trainer

    dataset = make_tiny_dataset(tmp_path_factory.mktemp("blinding_ds") / "ds", per_split=(48, 8, 16))
    run_dir = runs.prepare_run(Path(app_env["LATENTBRAIN_RUNS"]) / "e2e-blinding-vae", dataset, "vae", "demo",
                               TINY_VAE)
    trainer.train_run(run_dir)
    return run_dir


@pytest.fixture
def store(app_env, blinding_run):
    """The server's study store; every study a test opens (:func:`_study`) is closed after it, so the
    subjects it reserves show again for the next test and the other browser tests (test_review's Side
    by side shows the same tiny dataset's test subject)."""
    from core.evaluation.study import StudyStore

    store = StudyStore(app_env["LATENTBRAIN_RUNS"])
    store.opened = []
    yield store
    for study in store.opened:
        store.close_study(study["study_id"], study["owner_key"])


def _study(store, *args, **kwargs) -> dict:
    study = store.create_study(*args, **kwargs)
    store.opened.append(study)
    return study


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


def test_nothing_on_the_page_separates_real_from_synthetic(browser, app_url, store, blinding_run):
    from core.evaluation.study_stats import find_separating_features

    sid = _study(store, blinding_run, "single", n_items=N_ITEMS, real_share=0.5)["study_id"]
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


# ---------------------------------------------------------------------------- the three routes
#: JS: the address of every image in the page's main block.
IMAGE_SOURCES = """() => [...document.querySelectorAll('[data-testid="stMain"] img')].map(i => i.currentSrc || i.src)"""
RUN = "e2e-blinding-vae"


def _context(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 1500})
    page = context.new_page()
    page.set_default_timeout(240_000)  # a loaded 2-core CI machine reruns slowly
    return context, page


def _main(page):
    return page.locator('[data-testid="stMain"]')


def _view(page, name: str) -> None:
    """Pick a view of the Review page (its radio is in the main area; the sidebar has its own)."""
    _main(page).locator('[data-testid="stRadio"] label').filter(has_text=name).first.click()
    wait_idle(page)


def _open_review(page, url: str, view: str | None = None) -> None:
    page.goto(f"{url}/review")
    wait_idle(page)
    if view:
        _view(page, view)


def _choose_run(page) -> None:
    box = _main(page).locator('[data-testid="stSelectbox"]').filter(has_text="Run").first
    if RUN not in box.inner_text():
        box.click()
        page.get_by_role("option", name=RUN, exact=True).click()
        wait_idle(page)


def _options(page, label: str) -> list[str]:
    """The options of the main block's selectbox ``label`` (opened, read, closed)."""
    box = _main(page).locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.click()
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return options


def _grey_images(page) -> list[np.ndarray]:
    """Every greyscale image of the main block, decoded (colour ones, the residual maps, are left out)."""
    from PIL import Image

    out = []
    for src in page.evaluate(IMAGE_SOURCES):
        with Image.open(io.BytesIO(_image_bytes(page, src))) as image:
            if image.mode == "L":
                out.append(np.asarray(image))
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Two 8-bit renderings of one image: off by at most one level (rounding), in under 5 % of pixels.

    The tiny model's samples look alike (unrelated ones differ by ~3 levels in half their pixels),
    so a copy has to be this close."""
    d = np.abs(a.astype(int) - b.astype(int))
    return d.max() <= 1 and (d > 0).mean() < 0.05


def _copies(shown, study_images) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(shown) for j, b in enumerate(study_images) if _same(a, b)]


def _windowed(images) -> np.ndarray:
    """The study images as the Review page's windowed PNGs hold them (level 0.5, width 1)."""
    from core.viz.images import apply_window

    return np.stack([apply_window(x, 0.5, 1.0) for x in images])


def _items(store, study) -> list[tuple[str, str]]:
    """(truth, source) per item id: the test's own look at the store, never the page's."""
    with sqlite3.connect(store.path) as con:
        return con.execute("SELECT truth, source FROM items WHERE study_id = ? ORDER BY item_id",
                           (study["study_id"],)).fetchall()


def test_a_reader_gets_no_results_and_no_other_readers_image_addresses(browser, app_url, store, blinding_run):
    # Route 1: answer every item under a throwaway name, then read the truth off the results, the CSV
    # or (through the shared image addresses) another reader's screen.  Only the owner key opens results.
    study = _study(store, blinding_run, "single", n_items=3, real_share=0.5)
    sid, n = study["study_id"], 3
    addresses, sessions = {}, []
    try:
        for name in ("x", "Other Reader"):
            context, page = _context(browser)
            sessions.append(page)
            _open_review(page, app_url, "Reader study")
            box = page.get_by_role("textbox", name="Your name (reviewer)")
            box.fill(name)
            box.press("Enter")
            wait_idle(page)
            addresses[name] = {}
            for step in range(n):  # the newest study, ours, is preselected
                page.get_by_text(f"Item {step + 1} of {n}").wait_for()
                [src] = page.evaluate(IMAGE_SOURCES)
                addresses[name][store.next_item(sid, name)["item_id"]] = src
                _answer(page, ("Real", "Synthetic")[step % 2])
            page.get_by_text(f"Done: you answered all {n}").wait_for()
        # x has answered everything: the old gate opened the truth to any name that had.
        page = sessions[0]
        _view(page, "Study results")
        main = _main(page)
        # Once the view is drawn: the reader's progress (now), or the answers file (the old gate).
        main.get_by_text("images answered").or_(main.locator('[data-testid="stDownloadButton"]')).first.wait_for()
        shown = {"verdict": main.get_by_text("Verdict.").count(),
                 "results table": main.locator('[data-testid="stDataFrame"]').count(),
                 "answers download": main.locator('[data-testid="stDownloadButton"]').count(),
                 "close control": main.locator('[data-testid="stExpander"]').filter(has_text="Close this study").count()}
        assert shown == dict.fromkeys(shown, 0), f"a reader who finished sees {shown}"
        main.get_by_text(f"{n} of {n} images answered").wait_for()  # their own progress, nothing more
        screenshot(page, "study_results_reader.png")
        page.get_by_label("Owner key", exact=True).fill("x")  # a name is no key
        main.get_by_role("button", name="Open results").click()
        wait_idle(page)
        main.get_by_text("not the owner key").wait_for()
        assert main.get_by_text("Verdict.").count() == 0
        # Each reader's copy of an item has its own address, and the addresses carry nothing.
        mine, theirs = addresses["x"], addresses["Other Reader"]
        assert sorted(mine) == sorted(theirs) == list(range(n))
        assert not set(mine.values()) & set(theirs.values()), (mine, theirs)
        for src in [*mine.values(), *theirs.values()]:
            assert re.fullmatch(r"https?://[^/]+/media/[0-9a-f]+\.png", src), src
        # The owner key, in a tab of its own, opens the results and the answers file.
        context, page = _context(browser)
        sessions.append(page)
        _open_review(page, app_url, "Study results")
        page.get_by_label("Owner key", exact=True).fill(study["owner_key"])
        _main(page).get_by_role("button", name="Open results").click()
        wait_idle(page)
        _main(page).get_by_text("Verdict.").wait_for()
        with page.expect_download() as download:
            _main(page).get_by_role("button", name="Download answers (CSV)").click()
        rows = Path(download.value.path()).read_text().strip().splitlines()
        assert rows[0].startswith("study_id,reviewer,item_id,truth") and len(rows) == 1 + 2 * n
    finally:
        for page in sessions:
            page.context.close()


def _real_subjects(store, study, split) -> set[str]:
    return {split.subjects[int(i)] for _, source in _items(store, study) for i in re.findall(r"test:(\d+)", source)}


def _side_by_side(page, url: str, store, study) -> tuple[set[str], list]:
    """(test subjects Side by side offers, its images that are one of the study's real images),
    looking at every offered subject's default slices."""
    reals = _windowed([image for image, (truth, _) in zip(store.study_images(study["study_id"])["images"],
                                                          _items(store, study)) if truth == "real"])
    _open_review(page, url)
    _choose_run(page)
    if _main(page).locator('[data-testid="stSelectbox"]').filter(has_text="Test subject").count() == 0:
        return set(), []
    options = _options(page, "Test subject")
    copies = []
    for option in options:
        if option not in _main(page).locator('[data-testid="stSelectbox"]').filter(has_text="Test subject").inner_text():
            _main(page).locator('[data-testid="stSelectbox"]').filter(has_text="Test subject").click()
            page.get_by_role("option", name=option, exact=True).click()
            wait_idle(page)
        size = reals.shape[1]
        shown = [x[:: x.shape[0] // size, :: x.shape[0] // size] for x in _grey_images(page)
                 if x.shape[0] == x.shape[1] and x.shape[0] % size == 0]
        copies += _copies(shown, reals)
    return {o.split(" (")[0].strip() for o in options}, copies


def test_side_by_side_shows_no_subject_an_open_study_draws_real_images_from(browser, app_url, store, blinding_run,
                                                                             monkeypatch):
    # Route 2: the study's real images are test slices, and Side by side showed every test subject's
    # slices pixel for pixel.  An open study reserves its subjects; Side by side leaves them out.
    from core.evaluation import study as study_module
    from core.training.runs import RunData

    split = RunData.open(blinding_run).split("test")
    study = _study(store, blinding_run, "single", n_items=8, real_share=1.0)
    context, page = _context(browser)
    try:
        offered, copies = _side_by_side(page, app_url, store, study)
        drawn_from = _real_subjects(store, study, split)
        assert not offered & drawn_from, f"Side by side offers {offered}, the study's reals come from {drawn_from}"
        assert copies == [], f"Side by side shows study images {copies}"
        assert len(offered) == 1 and len(set(split.subjects)) == 2  # the other subject is still there
        _main(page).get_by_text("1 of 2 test subjects is hidden").wait_for()
        screenshot(page, "side_by_side_reserved.png")
        # Planted: the old behaviour, a study that draws from any test subject and reserves none.
        store.close_study(study["study_id"], study["owner_key"])
        monkeypatch.setattr(study_module, "_reserve_subjects", lambda subjects, n_real, rng: set(subjects))
        planted = _study(store, blinding_run, "single", n_items=16, real_share=1.0)
        with sqlite3.connect(store.path) as con:
            con.execute("DELETE FROM reserved WHERE study_id = ?", (planted["study_id"],))
        offered, copies = _side_by_side(page, app_url, store, planted)
        assert offered & _real_subjects(store, planted, split) and copies, "the planted leak went unseen"
    finally:
        context.close()


def test_no_view_or_export_shows_a_study_sample(browser, app_url, store, blinding_run, monkeypatch, tmp_path):
    # Route 3: a study sampled with seed 0, as Side by side's tiles, the samples grid and the NIfTI
    # download do, showed its synthetic images there first.  A study's seed is secret, never a view's.
    import nibabel as nib
    from PIL import Image

    from core.evaluation import study as study_module

    study = _study(store, blinding_run, "single", n_items=6, real_share=0.0)  # all synthetic, nothing reserved
    context, page = _context(browser)
    try:
        _open_review(page, app_url)
        _choose_run(page)
        page.get_by_text("Synthetic samples beside their nearest training slice").wait_for()
        # Side by side's tiles: sample | 2 px gap | nearest training slice, at half the zoom.
        tiles = [x[:: x.shape[0] // 32, :: x.shape[0] // 32][:, :32] for x in _grey_images(page)
                 if x.shape[0] % 32 == 0 and x.shape[1] == 66 * (x.shape[0] // 32)]
        _view(page, "Metrics & export")
        downloads = {}
        for label, name in (("Samples grid (PNG)", "grid.png"), ("Samples stack (NIfTI)", "stack.nii.gz")):
            with page.expect_download() as download:
                _main(page).get_by_role("button", name=label).click()
            download.value.save_as(tmp_path / name)
            downloads[name] = tmp_path / name
    finally:
        context.close()
    grid = np.asarray(Image.open(downloads["grid.png"]))  # 4 columns, 2x, 2 px apart
    grid_tiles = [grid[r * 66 : r * 66 + 64 : 2, c * 66 : c * 66 + 64 : 2] for r in range(4) for c in range(4)]
    stack = np.asarray(nib.load(downloads["stack.nii.gz"]).get_fdata(), np.float32)
    stack = stack.transpose(2, 1, 0)[:, ::-1, :]  # back to (n, rows, columns): core.evaluation.export
    assert len(tiles) == 8 and len(grid_tiles) == 16 and stack.shape == (16, 32, 32)

    def found(images) -> dict[str, int]:
        rounded = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)  # how the grid PNG rounds
        return {"side by side": len({j for _, j in _copies(tiles, _windowed(images))}),
                "grid PNG": len({j for _, j in _copies(grid_tiles, rounded)}),
                "NIfTI": int((np.abs(images[:, None] - stack[None]).max(axis=(2, 3)) < 1e-4).any(axis=1).sum())}

    shown = found(store.study_images(study["study_id"])["images"])
    assert shown == dict.fromkeys(shown, 0), f"study samples shown by {shown}"
    # Planted: the old behaviour, every study sampled with seed 0.  The same checks find all 6.
    monkeypatch.setattr(study_module, "_secret_seed", lambda: 0)
    planted = _study(store, blinding_run, "single", n_items=6, real_share=0.0)
    assert found(store.study_images(planted["study_id"])["images"]) == dict.fromkeys(shown, 6)
