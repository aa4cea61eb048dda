"""Write ``docs/results.md`` from ``bench/results/*.json``: every figure beside the JSON key it comes from.

Each ``bench/results/<name>.json`` holds one JSON object, the last line a benchmark script
printed (``<name>.log`` beside it, when kept, is that script's whole output; its ``# command``,
``# started`` and ``# machine`` lines are quoted as the file's provenance).  The page has one
section per benchmark family (``quality_*``, ``judge_power``, ``anatomy_judge``, ``near_copies``,
``prior_compare_*``, ``vq_ablation``, ``checkerboard_*``, ``browser*``, ``latent_tsne*``; any
other file goes under *Other results*), each file's date (the git date of its last commit, or its
modification time when it is new or changed), and tables whose column headers name the key
suffix each number comes from, so a reader can find it in the JSON.  A family whose file does
not exist yet says *not measured yet*.

Usage: ``python bench/report.py [--check] [--out docs/results.md]``.  ``--check`` writes nothing
and exits 1 when the page differs from what this script would write now (``tests/unit/test_docs.py``
runs it), 0 when it is up to date.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "results.md"
sys.path.insert(0, str(ROOT))

#: Per file: (title, what it is).  A file not listed here still gets a section, titled by its name.
FILES = {
    "quality_demo_final": ("Demo cohort, 64 px: today's default models",
                           "The `demo` VAE (`ours`) and VQ-VAE + PixelCNN prior (`vqvae_prior`), 60 + 30 epochs."),
    "quality_real_dev_final": ("real_dev (12 real heads), 64 px: today's default models",
                               "The `demo` VAE (`ours`) and VQ-VAE + PixelCNN prior (`vqvae_prior`), 60 + 30 epochs."),
    "quality_demo": ("Demo cohort, 64 px: the VQ-VAE variants judged on samples",
                     "`ours` is the `demo` VAE with the adversary on (as the preset stood then)."),
    "quality_real_dev": ("real_dev, 64 px: the VQ-VAE variants judged on samples",
                         "`vq_before`: the earlier codebook and squared error; `vq_l1`: 8-d codes, restarts, L1; "
                         "`vqvae_prior`: + adversary (today's); `ours`: the VAE with the adversary; `vae_before`: "
                         "without it (today's VAE)."),
    "quality_real_dev_augment": ("real_dev, 64 px: augmentation on and off", ""),
    "quality_real_dev_preprocessed": ("real_dev, 64 px: raw heads against preprocessed ones",
                                      "Keys `real_dev_<row>_*` are raw heads, `real_dev_preprocessed_<row>_*` the same "
                                      "slices after skull stripping, N4, registration and crop. A short budget "
                                      "(30 + 8 epochs)."),
    "quality_real_dev_cpu128": ("real_dev, 128 px: the `cpu128` preset without augmentation", ""),
    "quality_real_dev_cpu128_augment": ("real_dev, 128 px: the `cpu128` preset with augmentation (today's)", ""),
    "quality_real_dev_cpu128_resize": ("real_dev, 128 px: resize-convolution decoder (`upsample: resize`)", ""),
    "quality_demo_cpu128": ("Demo cohort, 128 px: the `cpu128` preset", ""),
    "quality_demo_issue17": ("Demo cohort, 64 px: earlier models, 150 s of training each",
                             "Before the codebook, L1 and adversary work; includes the thesis loss (`thesis_loss`), "
                             "a Gaussian decoder (`sigma01`), the aggregate posterior (`ours_aggregate`) and the "
                             "conditional models (`cvae`, `cvqvae`)."),
    "quality_real_dev_issue17": ("real_dev, 64 px: earlier models, 150 s of training each", ""),
    "quality_demo_quick": ("Demo cohort: a `--quick` code-path check", "20 s a model: not figures of quality."),
    "quality_real_dev_quick": ("real_dev: a `--quick` code-path check", "20 s a model: not figures of quality."),
    "quality_demo_quick_stop23": ("Demo cohort: a `--quick` code-path check", "20 s a model: not figures of quality."),
    "quality_real_dev_quick_stop23": ("real_dev: a `--quick` code-path check", "20 s a model: not figures of quality."),
    "prior_compare_real_dev": ("real_dev, 64 px: three priors on one VQ-VAE",
                               "PixelCNN and transformer train the same epochs, diffusion the same seconds."),
    "prior_compare_demo": ("Demo cohort, 64 px: three priors on one VQ-VAE",
                           "PixelCNN and transformer train the same epochs, diffusion the same seconds."),
    "prior_compare_real_dev_diffusion600": ("real_dev, 64 px: the diffusion prior given 600 s", ""),
    "judge_power": ("Both cohorts", "Measured with the earlier Wilson intervals (every slice counted as an "
                                    "independent trial), before the intervals became subject bootstraps."),
    "browser_idle": ("idle machine", ""),
    "browser": ("2 cores shared with other jobs", ""),
    "browser_quick": ("`--quick`, 2 cores shared with other jobs", ""),
    "browser_latent": ("`--latent-only`, 2 cores shared with other jobs", ""),
    "latent_tsne_idle": ("idle machine", ""),
    "latent_tsne": ("2 cores shared with other jobs", "Wall times swing with the load; compare CPU seconds."),
    "checkerboard_real_dev_128": ("real_dev, 128 px: transposed convolutions against resize + convolution",
                                  "128 samples of each run, and the real test slices."),
}
#: Files kept as history: superseded by a later run of the same comparison, or code-path checks.
HISTORY = {"quality_demo_issue17", "quality_real_dev_issue17", "quality_demo_quick", "quality_real_dev_quick",
           "quality_demo_quick_stop23", "quality_real_dev_quick_stop23"}

#: Bench rows of bench/quality.py, as its docstring names them.
QUALITY_ROWS = {
    "ours": "VAE, samples from N(0, I)",
    "ours_aggregate": "the same VAE, samples from its aggregate posterior",
    "sigma01": "VAE with a Gaussian decoder, sigma 0.1",
    "thesis_loss": "VAE with the 2023 thesis' loss (1000 x mean MSE + KL)",
    "vqvae_prior": "VQ-VAE + PixelCNN prior",
    "vqvae_prior_t085": "the same, prior sampled at temperature 0.85",
    "cvae": "conditional VAE (age, sex, slice)",
    "cvqvae": "VQ-VAE with a conditional PixelCNN prior",
    "vq_before": "VQ-VAE: earlier codebook, squared error",
    "vq_codebook": "VQ-VAE: 8-d codes, restarts below half a code's share",
    "vq_l1": "VQ-VAE: + L1 pixel loss",
    "vq_adversarial": "VQ-VAE: + patch discriminator and feature matching",
    "vq_adversarial_augment": "VQ-VAE: + augmentation",
    "vq_resize": "VQ-VAE: + resize-convolution decoder",
    "vae_before": "VAE without the adversary",
    "vae_adversarial": "VAE with the adversary",
}

ANATOMY_CASES = ("none", "chimera", "tiles8", "tiles16", "flip_front_back", "turn_90", "wrong_level")
#: Goals of bench/browser.py and bench/latent.py: key -> (bound, text).
BROWSER_GOALS = {"cold_start_cached_s": (3.0, "< 3 s"), "browse_slider_p95_ms": (50.0, "< 50 ms"),
                 "latent_client_p95_ms": (100.0, "< 100 ms")}
BROWSER_KEYS = (
    ("cold_start_cached_s", "cold start → Browse's planes drawn, demo cohort cached (s)"),
    ("cold_start_cached_server_s", "of which the server's start (s)"),
    ("cold_start_no_cache_s", "cold start with an empty cache: builds the demo cohort (s)"),
    ("browse_slider_p50_ms", "Browse slider → slice drawn in the browser, p50 (ms)"),
    ("browse_slider_p95_ms", "Browse slider → slice drawn in the browser, p95 (ms)"),
    ("browse_slider_in_page_p50_ms", "of which inside the page, p50 (ms)"),
    ("browse_slider_in_page_p95_ms", "of which inside the page, p95 (ms)"),
    ("browse_server_slider_p50_ms", "Browse slider, server fallback, p50 (ms)"),
    ("browse_server_slider_p95_ms", "Browse slider, server fallback, p95 (ms)"),
    ("browse_volume_payload_mib", "a demo head's volume, compressed (MiB)"),
    ("browse_volume_fetch_ms", "its fetch (ms)"),
    ("browse_volume_inflate_ms", "its unpacking (ms)"),
    ("latent_client_p50_ms", "Latent PC 1 slider → decoded in the browser, p50 (ms)"),
    ("latent_client_p95_ms", "Latent PC 1 slider → decoded in the browser, p95 (ms)"),
    ("latent_client_in_page_p50_ms", "of which inside the page, p50 (ms)"),
    ("latent_client_in_page_p95_ms", "of which inside the page, p95 (ms)"),
    ("latent_client_decode_p50_ms", "of which the ONNX decode, p50 (ms)"),
    ("latent_client_ws_frames_per_move_ratio", "websocket frames sent per move"),
    ("latent_server_p50_ms", "Latent slider, server fallback, p50 (ms)"),
    ("latent_server_p95_ms", "Latent slider, server fallback, p95 (ms)"),
    ("latent_server_over_client_p50_ratio", "server ÷ browser, p50"),
    ("latent_trace_key_to_send_p50_ms", "server path: key → websocket frame sent, p50 (ms)"),
    ("latent_trace_send_to_reply_p50_ms", "server path: sent → first reply, p50 (ms)"),
    ("latent_trace_reply_to_swap_p50_ms", "server path: first reply → image swapped, p50 (ms)"),
    ("latent_trace_server_decode_p50_ms", "server path: the decode itself, p50 (ms)"),
    ("latent_trace_server_png_p50_ms", "server path: the PNG, p50 (ms)"),
    ("latent_client_decoder_load_ms", "decoder loaded into the page, once per model (ms)"),
    ("latent_client_export_s", "decoder exported to ONNX, once per model file (s)"),
    ("latent_client_onnx_mib", "the ONNX decoder (MiB)"),
    ("server_rss_start_mib", "server memory at start (MiB)"),
    ("server_rss_after_browse_mib", "server memory after the 24 demo subjects (MiB)"),
    ("server_rss_after_second_pass_mib", "server memory after a second pass (MiB)"),
    ("latent_slider_failed", "Latent step failed"),
)
TSNE_GOALS = {1200: 3.0, 16000: 20.0}


# --------------------------------------------------------------------------------------------- reading


def load(path: Path) -> dict | None:
    """The JSON object on the last non-empty line of ``path``, or None when there is none."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def file_date(path: Path) -> str:
    """``YYYY-MM-DD``: the date of the file's last commit, or its mtime when it is new or changed."""
    path = path.resolve()
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None
    changed = None if rel is None else _git("status", "--porcelain", "--", rel)
    if changed == "":
        date = _git("log", "-1", "--format=%ad", "--date=short", "--", rel)
        if date:
            return date
    return _dt.date.fromtimestamp(path.stat().st_mtime).isoformat()


def git_dates_reliable() -> bool:
    """False where git cannot date files (no git, or a shallow clone that lacks the history)."""
    return _git("rev-parse", "--is-shallow-repository") == "false"


def provenance(path: Path) -> list[str]:
    """The ``# command`` / ``# started`` / ``# machine`` lines of the log beside ``path``."""
    log = path.with_suffix(".log")
    if not log.is_file():
        return []
    found = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.match(r"#\s*(command|started|machine):\s*(.*)", line)
        if match and match.group(1) not in found:
            found[match.group(1)] = match.group(2).strip()
    out = []
    if "command" in found:
        out.append(f"`{found['command']}`")
    out += [f"{name} {found[name]}" for name in ("started", "machine") if name in found]
    return out


# --------------------------------------------------------------------------------------------- formatting


def fmt(value, digits: int = 3) -> str:
    """A number as written in a table: ``–`` for missing, yes/no for booleans."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}f}"
    if isinstance(value, list):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value).replace("|", "\\|")


def ci(d: dict, base: str, digits: int = 3) -> str:
    """``accuracy [low, high]`` of ``base_accuracy``, ``base_ci95_low`` and ``base_ci95_high``."""
    acc = d.get(f"{base}_accuracy")
    if acc is None:
        return "–"
    low, high = _float(d.get(f"{base}_ci95_low")), _float(d.get(f"{base}_ci95_high"))
    return f"{fmt(_float(acc), digits)} [{fmt(low, digits)}, {fmt(high, digits)}]" if low is not None \
        else fmt(_float(acc), digits)


def _float(value):
    """Numbers as floats (a JSON ``1`` next to ``0.984`` is an accuracy, not a count)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def beside(value: str, real: str) -> str:
    return value if real in ("–", "") else f"{value} ({real})"


def span(d: dict, low: str, high: str) -> str:
    return "–" if d.get(low) is None else f"{fmt(d.get(low))}–{fmt(d.get(high))}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
            *["| " + " | ".join(row) + " |" for row in rows], ""]


def met(flag: bool | None) -> str:
    return "–" if flag is None else ("met" if flag else "**not met**")


def file_intro(path: Path, heading: str | None = "###", dated_title: bool = False) -> list[str]:
    """The file's heading (its title; None: no heading), name, date, log provenance and note."""
    stem = path.stem
    title, note = FILES.get(stem, (stem.replace("_", " "), ""))
    date = file_date(path)
    lines = [] if heading is None else [f"{heading} {date}: {title}" if dated_title else f"{heading} {title}", ""]
    lines.append(f"`bench/results/{path.name}`, dated {date}.")
    prov = provenance(path)
    if prov:
        lines[-1] += f" Log `{path.with_suffix('.log').name}`: " + "; ".join(prov) + "."
    if note:
        lines += ["", note]
    return lines + [""]


def not_measured(name: str, command: str) -> list[str]:
    return [f"Not measured yet: `{command}` prints the JSON line; keep it as `bench/results/{name}.json` "
            "(and its output as the `.log` beside it), then run `python bench/report.py`.", ""]


# --------------------------------------------------------------------------------------------- families


def _prefixes(d: dict, marker: str) -> list[str]:
    """Key prefixes (``""``, ``"real_dev_"``...) of the objects merged in ``d``, found by ``marker``."""
    out = []
    for key in d:
        if key == marker or (key.endswith("_" + marker) and not key.startswith("_")):
            out.append(key[: len(key) - len(marker)])
    return out


def sample_rows(d: dict, bases: list[tuple[str, str]]) -> tuple[list[list[str]], list[list[str]]]:
    """Pixel-judge and anatomy-judge table rows of each ``(label, key base)``."""
    pixel, anatomy = [], []
    d = {k: _float(v) for k, v in d.items()}
    for label, b in bases:
        if d.get(f"{b}_c2st_heldout_accuracy") is None and d.get(f"{b}_near_copy_fraction") is None:
            continue
        pixel.append([label, ci(d, f"{b}_c2st_heldout"), ci(d, f"{b}_c2st_real_baseline"),
                      fmt(d.get(f"{b}_c2st_training_accuracy")),
                      beside(fmt(d.get(f"{b}_near_copy_fraction")), fmt(d.get(f"{b}_real_near_copy_fraction"))),
                      beside(fmt(d.get(f"{b}_ms_ssim")), span(d, f"{b}_ms_ssim_real_p05", f"{b}_ms_ssim_real_p95")),
                      fmt(d.get(f"{b}_sharpness_ratio"), 2),
                      beside(fmt(d.get(f"{b}_fd_posnet"), 2), fmt(d.get(f"{b}_fd_posnet_real_p95"), 2)),
                      fmt(d.get(f"{b}_indistinguishable"))])
        if any(k.startswith(f"{b}_c2st_anatomy_") for k in d):
            anatomy.append([label, ci(d, f"{b}_c2st_anatomy"), ci(d, f"{b}_c2st_anatomy_real_baseline"),
                            *[beside(fmt(d.get(f"{b}_{name}")), span(d, f"{b}_{name}_real_p05", f"{b}_{name}_real_p95"))
                              for name in ("precision", "recall", "density", "coverage")]])
    return pixel, anatomy


PIXEL_HEADER = ["sampler", "two-sample, held-out [95 % CI] `_c2st_heldout_accuracy`",
                "real vs real [95 % CI] `_c2st_real_baseline_accuracy`", "two-sample, training slices "
                "`_c2st_training_accuracy`", "near-copies (real strangers) `_near_copy_fraction` "
                "(`_real_near_copy_fraction`)", "MS-SSIM (real 5–95 %) `_ms_ssim`", "sharpness ÷ real "
                "`_sharpness_ratio`", "FD slice-position net (real p95) `_fd_posnet`", "indistinguishable "
                "`_indistinguishable`"]
ANATOMY_HEADER = ["sampler", "anatomy two-sample [95 % CI] `_c2st_anatomy_accuracy`",
                  "real vs real [95 % CI] `_c2st_anatomy_real_baseline_accuracy`",
                  "precision (real 5–95 %) `_precision`", "recall `_recall`", "density `_density`",
                  "coverage `_coverage`"]


def quality_file(path: Path, d: dict) -> list[str]:
    lines = file_intro(path, "####" if path.stem in HISTORY else "###", dated_title=path.stem in HISTORY)
    for prefix in _prefixes(d, "rows"):
        rows = [r for r in str(d[f"{prefix}rows"]).split(",") if r]
        size = d.get(f"{prefix}image_size")
        epochs, prior_epochs = d.get(f"{prefix}budget_epochs"), d.get(f"{prefix}budget_prior_epochs")
        facts = [f"cohort {d.get(f'{prefix}cohort', '?')}"]
        if d.get(f"{prefix}preset"):
            facts.append(f"preset `{d[f'{prefix}preset']}`")
        if size:
            facts.append(f"{size} px")
        facts.append(f"{fmt(d.get(f'{prefix}n_train_images'))} training / {fmt(d.get(f'{prefix}n_test_images'))} "
                     f"test slices, {fmt(d.get(f'{prefix}n_samples'))} samples")
        facts.append(f"{epochs} + {prior_epochs} epochs" if epochs else f"{fmt(d.get(f'{prefix}budget_s'))} s a model")
        lines += [f"Keys `{prefix}<row>_<figure>`: " + ", ".join(facts) + ".", ""]
        recon = []
        for row in rows:
            b = f"{prefix}{row}"
            if d.get(f"{b}_ssim") is None and d.get(f"{b}_epochs") is None:
                continue
            ep = fmt(d.get(f"{b}_epochs"))
            if d.get(f"{b}_prior_epochs") is not None:
                ep += f" + {fmt(d.get(f'{b}_prior_epochs'))}"
            code = "–" if d.get(f"{b}_perplexity") is None else \
                f"{fmt(d.get(f'{b}_perplexity'), 1)} / {fmt(d.get(f'{b}_codes_used'), 2)}"
            recon.append([f"`{row}`", QUALITY_ROWS.get(row, ""), ep, fmt(d.get(f"{b}_ssim")),
                          fmt(d.get(f"{b}_psnr_db"), 2), code, fmt(d.get(f"{b}_wall_s"), 1)])
        lines += table(["row", "model", "epochs (+ prior) `_epochs`", "test SSIM `_ssim`", "PSNR dB `_psnr_db`",
                        "codebook perplexity / used `_perplexity`, `_codes_used`", "training s `_wall_s`"], recon)
        pixel, anatomy = sample_rows(d, [(f"`{row}`", f"{prefix}{row}") for row in rows])
        lines += table(PIXEL_HEADER, pixel)
        if anatomy:
            lines += table(ANATOMY_HEADER, anatomy)
        elif pixel:
            lines += ["Judged before the anatomy-aware test (no `_c2st_anatomy_*` keys); two-sample intervals "
                      "are Wilson intervals.", ""]
        obey = [[f"`{row}`", fmt(d.get(f"{prefix}{row}_age_r"), 2), fmt(d.get(f"{prefix}{row}_slice_mae"), 2)]
                for row in rows if d.get(f"{prefix}{row}_age_r") is not None]
        lines += table(["conditional row", "age r `_age_r`", "slice MAE `_slice_mae`"], obey)
    return lines


def section_quality(files: dict[str, Path], data: dict) -> list[str]:
    lines = ["## Sample quality", "",
             "`python bench/quality.py --cohort demo|real_dev [--preset cpu128] --rows ... --epochs N "
             "--prior-epochs M`: each model trained into a real run folder and judged by `evaluate_run`, the "
             "code behind `python -m core evaluate` and the Review page. Keys are `<row>_<figure>` "
             "(`real_dev_` in front on real heads, `cpu128_` at 128 px); each header names the figure's "
             "suffix. Real baselines are in brackets or parentheses beside each figure; what they mean is in "
             "[evaluation.md](evaluation.md).", ""]
    quality = {k: v for k, v in files.items() if k.startswith("quality_")}
    if not quality:
        return lines + not_measured("quality_demo", "python bench/quality.py --cohort demo")
    current = [k for k in quality if k not in HISTORY]
    history = [k for k in quality if k in HISTORY]
    order = sorted(current, key=lambda k: (list(FILES).index(k) if k in FILES else -1, k))
    for stem in order:
        lines += quality_file(quality[stem], data[stem]) if data[stem] else unreadable(quality[stem])
    if history:
        lines += ["### History", "",
                  "Superseded runs and code-path checks, kept for comparison; newest first.", ""]
        for stem in sorted(history, key=lambda k: (file_date(quality[k]), k), reverse=True):
            lines += quality_file(quality[stem], data[stem]) if data[stem] else unreadable(quality[stem])
    return lines


def unreadable(path: Path) -> list[str]:
    return [f"### {path.stem}", "", f"`bench/results/{path.name}` holds no JSON object on its last line.", ""]


def _cases(d: dict, prefix: str, suffix: str, exclude=(), others=()) -> list[str]:
    """The ``X`` of every key ``<prefix>X<suffix>``, X not ending in one of ``exclude``; keys that start
    with a longer prefix of ``others`` (``real_dev_128_`` beside ``real_dev_``) belong to that one."""
    pattern = re.compile(rf"^{re.escape(prefix)}(.+){re.escape(suffix)}$")
    longer = [o for o in others if len(o) > len(prefix) and o.startswith(prefix)]
    out = []
    for key in d:
        match = pattern.match(key)
        if (match and not any(match.group(1).endswith(e) for e in exclude) and match.group(1) not in out
                and not any(key.startswith(o) for o in longer)):
            out.append(match.group(1))
    return out


def section_judge_power(files: dict[str, Path], data: dict) -> list[str]:
    from core.evaluation.planted import PLANTED

    lines = ["## Pixel judge power", "",
             "`python bench/judge_power.py`: the pixel two-sample test (CNN + per-slice statistics) with the "
             "evaluation's real side against other real people's slices, untouched (`none`) or with one planted "
             "change. A case is detected when its interval lies wholly above both the null's and 0.5. Keys "
             "`<cohort>_<case>_*`.", ""]
    if "judge_power" not in files:
        return lines + not_measured("judge_power", "python bench/judge_power.py")
    path, d = files["judge_power"], data["judge_power"]
    if d is None:
        return lines + unreadable(path)
    lines += file_intro(path, None)
    cohorts = [c[: -len("_none")] for c in _cases(d, "", "_accuracy") if c.endswith("_none")]
    for cohort in cohorts:
        rows = []
        for case in _cases(d, f"{cohort}_", "_accuracy", exclude=("_cnn", "_statistics"),
                           others=[f"{c}_" for c in cohorts]):
            b = f"{cohort}_{case}"
            rows.append([f"`{case}`", PLANTED.get(case, ("",))[0], ci(d, b), fmt(d.get(f"{b}_cnn_accuracy")),
                         fmt(d.get(f"{b}_statistics_accuracy")),
                         "null" if case == "none" else fmt(d.get(f"{b}_detected"))])
        lines += [f"**{cohort}**: {fmt(d.get(f'{cohort}_n_heldout_subjects'))} held-out subjects against "
                  f"{fmt(d.get(f'{cohort}_n_other_subjects'))} others, {fmt(d.get(f'{cohort}_n_scored'))} images "
                  f"scored (`{cohort}_n_heldout_subjects`, `{cohort}_n_other_subjects`, `{cohort}_n_scored`).", ""]
        lines += table(["case", "what", "accuracy [95 % CI] `_accuracy`", "CNN `_cnn_accuracy`",
                        "statistics `_statistics_accuracy`", "detected `_detected`"], rows)
    return lines


def section_anatomy_judge(files: dict[str, Path], data: dict) -> list[str]:
    from core.evaluation.planted import ANATOMY_PLANTED

    lines = ["## Anatomy judge", "",
             "`python bench/anatomy_judge.py`: the anatomy-aware two-sample test (shrinkage LDA in the feature "
             "space learned on the training split) with the test subjects against training-split slices, "
             "untouched (`none`) or with the anatomy broken. Goal: accuracy >= 0.95 for every broken case, "
             "`none` about chance (its interval holds 0.5); and a calibration: random by-subject halves of real "
             "people, real against real, beyond chance in at most 0.10 of the splits. Intervals are subject "
             "bootstraps. Keys `<cohort>_<case>_*`, `<cohort>_calibration_*`.", ""]
    if "anatomy_judge" not in files:
        return lines + not_measured("anatomy_judge", "python bench/anatomy_judge.py")
    path, d = files["anatomy_judge"], data["anatomy_judge"]
    if d is None:
        return lines + unreadable(path)
    lines += file_intro(path, None)
    if d.get("embedding_steps") is not None:
        lines += [f"Embedding trained {fmt(d['embedding_steps'])} steps (`embedding_steps`).", ""]
    cohorts = [k[: -len("_calibration_splits")] for k in d if k.endswith("_calibration_splits")
               and not k.endswith("_pixel_calibration_splits")]
    cohorts = cohorts or [c[: -len("_none")] for c in _cases(d, "", "_accuracy") if c.endswith("_none")]
    for cohort in cohorts:
        found = _cases(d, f"{cohort}_", "_accuracy", exclude=("_calibration",), others=[f"{c}_" for c in cohorts])
        # A case has an interval; ``<cohort>_embedding_validation_*_accuracy`` and the like do not.
        found = [c for c in found if f"{cohort}_{c}_ci95_low" in d]
        cases = [c for c in ANATOMY_CASES if c in found] + [c for c in found if c not in ANATOMY_CASES]
        rows = []
        for case in cases:
            b = f"{cohort}_{case}"
            acc, low, high = d.get(f"{b}_accuracy"), d.get(f"{b}_ci95_low"), d.get(f"{b}_ci95_high")
            if case == "none":
                goal, ok = "about chance", None if low is None else bool(low <= 0.5 <= high)
            else:
                goal, ok = ">= 0.95", None if acc is None else bool(acc >= 0.95)
            rows.append([f"`{case}`", ANATOMY_PLANTED.get(case, ("",))[0], fmt(_float(acc)),
                         "–" if low is None else f"[{fmt(_float(low))}, {fmt(_float(high))}]", goal, met(ok)])
        lines += [f"**{cohort}**", ""]
        lines += table(["case", "what", "accuracy `_accuracy`", "95 % CI `_ci95_low`, `_ci95_high`", "goal",
                        "met"], rows)
        ratio = d.get(f"{cohort}_calibration_beyond_chance_ratio")
        if ratio is not None:
            lines += [f"Calibration: {fmt(ratio, 2)} of {fmt(d.get(f'{cohort}_calibration_splits'))} real-vs-real "
                      f"splits beyond chance (`{cohort}_calibration_beyond_chance_ratio`; goal <= 0.10: "
                      f"{met(ratio <= 0.10)}); accuracy median {fmt(d.get(f'{cohort}_calibration_accuracy_median'))}, "
                      f"max {fmt(d.get(f'{cohort}_calibration_accuracy_max'))} "
                      f"(`{cohort}_calibration_accuracy_median`, `_max`).", ""]
        # The pixel judge's calibration: in this file, or in its own run (pixel_calibration_<cohort>.json).
        source, p = d, files.get(f"pixel_calibration_{cohort}")
        if d.get(f"{cohort}_pixel_calibration_beyond_chance_ratio") is None and p is not None:
            source = data.get(f"pixel_calibration_{cohort}") or {}
        pixel = source.get(f"{cohort}_pixel_calibration_beyond_chance_ratio")
        if pixel is not None:
            wilson = source.get(f"{cohort}_pixel_calibration_beyond_chance_wilson_ratio")
            where = "" if source is d else f" (`bench/results/{p.name}`)"
            quick = (" with the quick look's classifiers (2 folds, 15 epochs)"
                     if source.get(f"{cohort}_pixel_calibration_quick") else "")
            lines += [f"Pixel judge calibration{where}{quick}: {fmt(pixel, 2)} of "
                      f"{fmt(source.get(f'{cohort}_pixel_calibration_splits'))} real-vs-real splits beyond chance with "
                      f"subject-bootstrap intervals (`{cohort}_pixel_calibration_beyond_chance_ratio`), "
                      f"{fmt(wilson, 2)} with Wilson intervals (`{cohort}_pixel_calibration_beyond_chance_wilson_ratio`)"
                      f"; accuracy max {fmt(source.get(f'{cohort}_pixel_calibration_accuracy_max'))}.", ""]
        validation = [(k[len(f"{cohort}_embedding_validation_"):], v) for k, v in d.items()
                      if k.startswith(f"{cohort}_embedding_validation_")]
        if validation:
            lines += [f"The embedding's own tasks on the validation subjects (`{cohort}_embedding_validation_*`): "
                      + ", ".join(f"{name} {fmt(v)}" for name, v in validation) + ".", ""]
    return lines


def section_near_copies(files: dict[str, Path], data: dict) -> list[str]:
    from core.evaluation.memorisation import PLANTED_COPIES

    lines = ["## Near-copies", "",
             "`python bench/near_copies.py`: planted cases judged by the near-copy rule of the evaluation (the "
             "shift- and mirror-invariant nearest-neighbour distance ratio, threshold from real strangers) and, "
             "beside it, the plain-RMS rule it replaced. Copies in disguise must be flagged, strangers must not. "
             "Keys `<cohort>_<case>_flagged_fraction` and `<cohort>_<case>_plain_rms_flagged_fraction`.", ""]
    if "near_copies" not in files:
        return lines + not_measured("near_copies", "python bench/near_copies.py")
    path, d = files["near_copies"], data["near_copies"]
    if d is None:
        return lines + unreadable(path)
    lines += file_intro(path, None)
    lines += [f"{fmt(d.get('n_per_case'))} images a case (`n_per_case`)"
              + (", `--quick`" if d.get("quick") else "") + ".", ""]
    cohorts = [k[: -len("_threshold_ratio")] for k in d if k.endswith("_threshold_ratio")]
    for cohort in cohorts:
        rows = []
        for case in _cases(d, f"{cohort}_", "_flagged_fraction", exclude=("_plain_rms",),
                           others=[f"{c}_" for c in cohorts]):
            what, copy = PLANTED_COPIES.get(case, ("", None))
            ratio = d.get(f"{cohort}_{case}_flagged_fraction")
            ok = None if copy is None or ratio is None else (ratio >= 0.95 if copy else ratio <= 0.05)
            rows.append([f"`{case}`", what, "–" if copy is None else ("yes" if copy else "no"), fmt(ratio),
                         fmt(d.get(f"{cohort}_{case}_plain_rms_flagged_fraction")), met(ok)])
        lines += [f"**{cohort}**: threshold {fmt(d.get(f'{cohort}_threshold_ratio'))} "
                  f"(`{cohort}_threshold_ratio`); held-out real slices flagged "
                  f"{fmt(d.get(f'{cohort}_heldout_near_copy_fraction'))} (`{cohort}_heldout_near_copy_fraction`).", ""]
        lines += table(["case", "what", "a copy", "flagged, distance ratio", "flagged, plain RMS",
                        "ratio rule right (>= 0.95 / <= 0.05)"], rows)
        if d.get(f"{cohort}_vae_near_copy_fraction") is not None:
            lines += [f"A `demo` VAE's samples: {fmt(d.get(f'{cohort}_vae_near_copy_fraction'))} flagged by the "
                      f"distance ratio, {fmt(d.get(f'{cohort}_vae_plain_rms_near_copy_fraction'))} by plain RMS "
                      f"(`{cohort}_vae_near_copy_fraction`, `{cohort}_vae_plain_rms_near_copy_fraction`).", ""]
    timing = [(k, v) for k, v in d.items() if k.startswith("report_") and k.endswith("_s")]
    for key, value in timing:
        lines += [f"One report at `{key}`: {fmt(value, 1)} s.", ""]
    return lines


def section_prior_compare(files: dict[str, Path], data: dict) -> list[str]:
    lines = ["## Priors compared", "",
             "`python bench/prior_compare.py --cohort demo|real_dev --run RUN [--conditional] [--clock-s S]`: one "
             "VQ-VAE held fixed, each prior trained on its code grids and judged by `evaluate_run`. Keys "
             "`[real_dev_]prior_<kind>_<figure>`.", ""]
    stems = sorted(k for k in files if k.startswith("prior_compare"))
    if not stems:
        return lines + not_measured("prior_compare_real_dev", "python bench/prior_compare.py --cohort real_dev")
    stems.sort(key=lambda k: (list(FILES).index(k) if k in FILES else 99, k))
    for stem in stems:
        path, d = files[stem], data[stem]
        if d is None:
            lines += unreadable(path)
            continue
        lines += file_intro(path)
        for prefix in _prefixes(d, "cohort"):
            kinds = _cases(d, f"{prefix}prior_", "_params")
            lines += [f"Run `{d.get(f'{prefix}run')}`, {fmt(d.get(f'{prefix}n_train_grids'))} training grids of "
                      f"{d.get(f'{prefix}grid')}×{d.get(f'{prefix}grid')} codes, {fmt(d.get(f'{prefix}n_samples'))} "
                      f"samples.", ""]
            rows = []
            for kind in kinds:
                b = f"{prefix}prior_{kind}"
                per_image = d.get(f"{b}_sample_s_per_image")
                ratio = d.get(f"{b}_sample_time_ratio")
                rows.append([f"`{kind}`", fmt(d.get(f"{b}_params")), fmt(d.get(f"{b}_epochs")),
                             fmt(d.get(f"{b}_train_s")), fmt(d.get(f"{b}_test_bits_per_code"), 2),
                             "–" if per_image is None else f"{per_image * 1000:.0f}"
                             + ("" if ratio is None else f" ({fmt(ratio, 2)}×)")])
            lines += table(["prior", "parameters `_params`", "epochs `_epochs`", "training s `_train_s`",
                            "test bits / code `_test_bits_per_code`",
                            "ms / image (÷ PixelCNN) `_sample_s_per_image`, `_sample_time_ratio`"], rows)
            pixel, anatomy = sample_rows(d, [(f"`{kind}`", f"{prefix}prior_{kind}") for kind in kinds])
            lines += table(["prior"] + PIXEL_HEADER[1:], pixel)
            if anatomy:
                lines += table(["prior"] + ANATOMY_HEADER[1:], anatomy)
            obey = []
            for kind in kinds:
                b = f"{prefix}prior_{kind}_conditional"
                if d.get(f"{b}_age_r") is None:
                    continue
                obey.append([f"`{kind}`", fmt(d.get(f"{b}_age_r"), 2), fmt(d.get(f"{b}_age_regressor_test_r"), 2),
                             fmt(d.get(f"{b}_slice_mae"), 1), fmt(d.get(f"{b}_slice_regressor_test_mae"), 1),
                             fmt(d.get(f"{b}_slice_mae_if_ignored"), 1)])
            lines += table(["conditional prior", "age r `_conditional_age_r`",
                            "real test people `_conditional_age_regressor_test_r`",
                            "slice MAE `_conditional_slice_mae`",
                            "real test people `_conditional_slice_regressor_test_mae`",
                            "if the request were ignored `_conditional_slice_mae_if_ignored`"], obey)
    return lines


def section_vq_ablation(files: dict[str, Path], data: dict) -> list[str]:
    lines = ["## VQ-VAE ablation", "",
             "`python bench/vq_ablation.py --epochs 60`: the VQ-VAE's variants on real_dev, the same epochs and "
             "seed each, reconstructions of the test subjects. Keys `vq_ablation_<variant>_<figure>`; "
             "`_curve` keys hold the figure every 10 epochs.", ""]
    if "vq_ablation" not in files:
        return lines + not_measured("vq_ablation", "python bench/vq_ablation.py")
    path, d = files["vq_ablation"], data["vq_ablation"]
    if d is None:
        return lines + unreadable(path)
    lines += file_intro(path, None)
    names = {"before": "earlier codebook, squared error", "codebook": "8-d codes, restarts below 50 %",
             "l1": "+ L1", "adversarial": "+ adversary 0.1 and feature matching (today's)",
             "adversarial_strong": "adversary 0.5", "augment": "today's + augmentation"}
    rows = []
    for variant in _cases(d, "vq_ablation_", "_ssim"):
        b = f"vq_ablation_{variant}"
        rows.append([f"`{variant}`", names.get(variant, ""), fmt(d.get(f"{b}_ssim")), fmt(d.get(f"{b}_psnr_db"), 2),
                     fmt(d.get(f"{b}_sharpness_ratio"), 2), fmt(d.get(f"{b}_perplexity"), 1),
                     fmt(d.get(f"{b}_codes_used"), 2), fmt(d.get(f"{b}_seconds")),
                     fmt(d.get(f"{b}_ssim_curve"), 3)])
    return lines + table(["variant", "what", "test SSIM `_ssim`", "PSNR dB `_psnr_db`",
                          "sharpness ÷ real `_sharpness_ratio`", "perplexity `_perplexity`",
                          "codes used `_codes_used`", "seconds `_seconds`", "SSIM by 10 epochs `_ssim_curve`"], rows)


def section_checkerboard(files: dict[str, Path], data: dict) -> list[str]:
    lines = ["## Checkerboard", "",
             "`python bench/checkerboard.py LABEL=RUN ...`: the checkerboard index (power at the period-2/4/8 "
             "frequencies ÷ the power around them, median over images; 1 = none) of each run's samples and test "
             "reconstructions, and of the real test slices. Keys `<label>_checkerboard_<what>_p<period>`.", ""]
    stems = sorted(k for k in files if k.startswith("checkerboard"))
    if not stems:
        return lines + not_measured("checkerboard_real_dev_128", "python bench/checkerboard.py")
    for stem in stems:
        path, d = files[stem], data[stem]
        if d is None:
            lines += unreadable(path)
            continue
        lines += file_intro(path)
        found: dict = {}
        for key in d:
            match = re.match(r"^(.+)_checkerboard_(samples|recon|real)_p(\d+)$", key)
            if match:
                found.setdefault(match.group(1), {}).setdefault(match.group(2), []).append(int(match.group(3)))
        rows = []
        for label, parts in found.items():
            cells = []
            for what in ("samples", "recon", "real"):
                periods = sorted(parts.get(what, []))
                cells.append(" / ".join(fmt(d[f"{label}_checkerboard_{what}_p{p}"], 1) for p in periods) or "–")
            rows.append([f"`{label}`", *cells])
        periods = sorted({p for parts in found.values() for ps in parts.values() for p in ps})
        p_text = "/".join(str(p) for p in periods)
        lines += table(["decoder", f"samples, period {p_text}", f"reconstructions, period {p_text}",
                        f"real test slices, period {p_text}"], rows)
    return lines


def section_browser(files: dict[str, Path], data: dict) -> list[str]:
    lines = ["## Browser", "",
             "`python bench/browser.py [--quick] [--latent-only]`: what a user feels, in headless Chromium with "
             "`.streamlit/config.toml` as shipped. One column per file; each row is one key.", ""]
    stems = [k for k in files if k.startswith("browser") and data.get(k)]
    if not stems:
        return lines + not_measured("browser", "python bench/browser.py")
    stems.sort(key=lambda k: (list(FILES).index(k) if k in FILES else 99, k))
    for stem in stems:
        path = files[stem]
        prov = provenance(path)
        lines.append(f"- `{path.name}` ({FILES.get(stem, (stem, ''))[0]}), dated {file_date(path)}"
                     + (": " + "; ".join(prov) if prov else "") + ".")
    lines.append("")
    known = [k for k, _ in BROWSER_KEYS]
    extra = sorted({k for s in stems for k in data[s] if k not in known})
    rows = []
    for key, label in list(BROWSER_KEYS) + [(k, k) for k in extra]:
        if not any(key in data[s] for s in stems):
            continue
        goal = BROWSER_GOALS.get(key)
        cells = []
        for s in stems:
            value = data[s].get(key)
            text = fmt(value, 1 if isinstance(value, float) and abs(value) >= 10 else 2)
            if goal and isinstance(value, (int, float)):
                text += " " + ("(met)" if value < goal[0] else "(**not met**)")
            cells.append(text)
        rows.append([label, f"`{key}`", *cells, goal[1] if goal else ""])
    return lines + table(["figure", "key", *[f"`{s}`" for s in stems], "goal"], rows)


def section_latent_tsne(files: dict[str, Path], data: dict) -> list[str]:
    lines = ["## Latent maps", "",
             "`python bench/latent.py --tsne-only`: the app's t-SNE against bare openTSNE with each gradient "
             "method (Barnes-Hut, FFT) and against the earlier wrapper (a callback every 10 iterations), in one "
             "process. Keys `tsne_<points>_<figure>`; ratios are the other ÷ the app.", ""]
    stems = [k for k in files if k.startswith("latent_tsne") and data.get(k)]
    if not stems:
        return lines + not_measured("latent_tsne", "python bench/latent.py --tsne-only")
    stems.sort(key=lambda k: (list(FILES).index(k) if k in FILES else 99, k))
    for stem in stems:
        path, d = files[stem], data[stem]
        lines += file_intro(path)
        rows = []
        for points in sorted(int(p) for p in _cases(d, "tsne_", "_s") if p.isdigit()):
            b = f"tsne_{points}"

            def other(name):
                value = d.get(f"{b}_{name}_s")
                return "–" if value is None else f"{fmt(value, 2)} ({fmt(d.get(f'{b}_vs_{name}_ratio'), 2)})"

            wall, goal = d.get(f"{b}_s"), TSNE_GOALS.get(points)
            rows.append([f"{points:,}", f"`{d.get(f'{b}_method', '–')}`", fmt(wall, 2), fmt(d.get(f"{b}_cpu_s"), 2),
                         other("opentsne_bh"), other("opentsne_fft"), other("old_callbacks"),
                         "–" if goal is None or wall is None else f"< {goal:g} s: {met(wall < goal)}"])
        lines += table(["points", "method `_method`", "app, wall s `_s`", "app, CPU s `_cpu_s`",
                        "bare Barnes-Hut s (ratio) `_opentsne_bh_s`", "bare FFT s (ratio) `_opentsne_fft_s`",
                        "earlier wrapper s (ratio) `_old_callbacks_s`", "goal (wall)"], rows)
    return lines


FAMILIES = (
    ("quality_", section_quality),
    ("judge_power", section_judge_power),
    ("anatomy_judge", section_anatomy_judge),
    # Shown inside the anatomy judge's section, beside the learned space's own calibration.
    ("pixel_calibration", lambda files, data: []),
    ("near_copies", section_near_copies),
    ("prior_compare", section_prior_compare),
    ("vq_ablation", section_vq_ablation),
    ("checkerboard", section_checkerboard),
    ("browser", section_browser),
    ("latent_tsne", section_latent_tsne),
)


def section_other(files: dict[str, Path], data: dict) -> list[str]:
    rest = [k for k in files if not any(k.startswith(prefix) for prefix, _ in FAMILIES)]
    if not rest:
        return []
    lines = ["## Other results", ""]
    for stem in sorted(rest):
        path, d = files[stem], data[stem]
        lines += file_intro(path)
        if d is None:
            lines += ["No JSON object on its last line.", ""]
            continue
        lines += table(["key", "value"], [[f"`{k}`", fmt(v)] for k, v in d.items()])
    return lines


def render() -> str:
    files = {p.stem: p for p in sorted(RESULTS.glob("*.json"))}
    data = {stem: load(path) for stem, path in files.items()}
    lines = ["# Results", "",
             "<!-- Generated by `python bench/report.py` from bench/results/*.json: edit the script, not this page. -->",
             "",
             "Every figure of the benchmarks, read from the JSON line each script printed "
             "(`bench/results/<name>.json`, its output in `<name>.log` beside it). Column headers name the key "
             "suffix each number comes from. What the figures mean: [evaluation.md](evaluation.md); how to run "
             "the scripts: [benchmarks.md](benchmarks.md). `python bench/report.py` rewrites this page; "
             "`python bench/report.py --check` (run by the tests) fails when it is out of date.", ""]
    contents = ["Sample quality", "Pixel judge power", "Anatomy judge", "Near-copies", "Priors compared",
                "VQ-VAE ablation", "Checkerboard", "Browser", "Latent maps"]
    lines += [", ".join(f"[{name}](#{slug(name)})" for name in contents), ""]
    for _, section in FAMILIES:
        lines += section(files, data)
    lines += section_other(files, data)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is not up to date")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current == text:
            return 0
        masked = [re.sub(r"dated \d{4}-\d{2}-\d{2}", "dated ?", t) for t in (current, text)]
        if masked[0] == masked[1] and not git_dates_reliable():
            print(f"{args.out}: up to date but for file dates, which git cannot tell here", file=sys.stderr)
            return 0
        print(f"{args.out} is out of date: run python bench/report.py", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
