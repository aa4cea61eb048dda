"""What limits the ``demo`` VAE: a fixed-epoch ablation of β, latent size and training length.

Issue 10 asks the ``demo`` VAE for test SSIM ≥ 0.88 and samples as sharp and as diverse as the
real slices; at 64 px on two cores it falls short.  This benchmark trains ``demo`` VAE variants
on the demo cohort's dataset (the one ``bench/quality.py`` builds: thesis slice range, 64 px,
split by subject) with the project's own training engine (``core.training``, the same code the
CLI and the Train page run), for the SAME number of epochs each (not a wall-clock budget, so the
shared machine's load does not change the result), and measures every variant with
``core.evaluation.run.evaluate_run`` (test SSIM/PSNR, MS-SSIM among samples vs real–real, FD in
the slice-position net's features, classifier two-sample test, sample sharpness) plus KL nats
and active units on the test slices (``core.models``) and SSIM on the training slices (the
generalisation gap).

Training runs in chunks of ``--chunk`` epochs (resumed from the run's checkpoint, the engine's
own resume), so test SSIM is read every chunk: the SSIM-vs-epoch curve.  The β = 1 default is
trained on to ``--long-epochs`` to see whether SSIM is still rising.

Variants (``--variants``): ``beta1`` (the current preset), ``beta0.3``, ``beta0.1``,
``latent256`` (β = 1), ``freebits0.5`` (β = 1, free bits 0.5 nats per unit).

Usage: ``python bench/vae_ablation.py [--epochs 20] [--long-epochs 40] [--out DIR] [--quick]``.
Prints a table and, as its last line, one JSON object.  Writes ``ssim_curve.png`` and a sample
grid per variant to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.quality import demo_dataset  # noqa: E402
from core.data.dataset import load_split_images  # noqa: E402
from core.settings import cache_dir  # noqa: E402
from core.evaluation import compute_psnr, compute_ssim  # noqa: E402
from core.evaluation.run import evaluate_run  # noqa: E402
from core.models import active_units, kl_per_unit  # noqa: E402
from core.training.config import make_config  # noqa: E402
from core.training.runs import RunData, RunFolder  # noqa: E402
from core.training.trainer import train_run  # noqa: E402
from core.viz.images import grid_png  # noqa: E402

VARIANTS = {
    "beta1": {},
    "beta0.3": {"beta": 0.3},
    "beta0.1": {"beta": 0.1},
    "latent256": {"latent_dim": 256},
    "freebits0.5": {"free_bits": 0.5},
}


def test_ssim(run_dir: Path, test: np.ndarray) -> tuple[float, float]:
    model = RunData.open(run_dir).load_model()
    recon = np.asarray(model.reconstruct(test))[..., 0]
    return float(compute_ssim(test, recon).mean()), float(compute_psnr(test, recon).mean())


def train_to(run_dir: Path, epochs: int, chunk: int, test: np.ndarray, curve: list) -> None:
    """Train (resuming) up to ``epochs`` in chunks, appending (epoch, test SSIM) to ``curve``."""
    run = RunFolder(run_dir)
    done = curve[-1][0] if curve else 0
    while done < epochs:
        done = min(done + chunk, epochs)
        run.update_config({"epochs": done})
        train_run(run_dir, resume=bool(run.read_resume()))
        curve.append((done, test_ssim(run_dir, test)[0]))
        print(f"    epoch {done}: test SSIM {curve[-1][1]:.3f}", flush=True)


def measure(run_dir: Path, test: np.ndarray, n_samples: int, train: np.ndarray) -> dict:
    ev = evaluate_run(run_dir, n_samples=n_samples, write=True)
    model = RunData.open(run_dir).load_model()
    kl = kl_per_unit(model, test)
    return {
        "ssim": ev["ssim"]["mean"], "psnr_db": ev["psnr"]["mean"],
        # the generalisation gap: the same figure on the slices it was trained on
        "train_ssim": test_ssim(run_dir, train)[0],
        "kl_nats": float(kl.sum()), "active_units": active_units(model, test),
        "latent_dim": int(len(kl)),
        "sharpness_ratio": ev.get("sharpness_ratio"),
        "ms_ssim_samples": ev["ms_ssim_synthetic"]["mean"], "ms_ssim_real": ev["ms_ssim_real"]["mean"],
        "fd_posnet": ev["fd_slice_position_net"]["value"],
        "fd_posnet_real_halves": ev["fd_slice_position_net"]["real_halves"],
        "c2st_accuracy": ev["c2st"]["accuracy"],
    }


def curve_png(curves: dict[str, list], path: Path, width: int = 640, height: int = 400) -> None:
    """A plain line chart of test SSIM against epochs, one line per variant (PIL, no plotting lib)."""
    from PIL import Image, ImageDraw

    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    left, right, top, bottom = 60, 150, 30, 45
    xs = [e for c in curves.values() for e, _ in c]
    ys = [s for c in curves.values() for _, s in c]
    x_max = max(xs)
    y_lo, y_hi = np.floor(min(ys) * 20) / 20, max(0.9, np.ceil(max(ys) * 20) / 20)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    px = lambda e: left + (width - left - right) * e / x_max  # noqa: E731
    py = lambda s: height - bottom - (height - top - bottom) * (s - y_lo) / (y_hi - y_lo)  # noqa: E731
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for t in np.arange(y_lo, y_hi + 1e-9, 0.05):
        draw.line([left - 4, py(t), left, py(t)], fill="black")
        draw.text((8, py(t) - 6), f"{t:.2f}", fill="black")
    for e in range(0, x_max + 1, max(1, x_max // 8)):
        draw.line([px(e), height - bottom, px(e), height - bottom + 4], fill="black")
        draw.text((px(e) - 6, height - bottom + 8), str(e), fill="black")
    draw.line([left, py(0.88), width - right, py(0.88)], fill=(160, 160, 160))
    draw.text((width - right - 60, py(0.88) + 3), "goal 0.88", fill=(120, 120, 120))
    draw.text((left, 8), "demo VAE: test SSIM vs epochs (demo cohort, 64 px)", fill="black")
    draw.text((left + 150, height - 18), "epoch", fill="black")
    for i, (name, c) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        pts = [(px(e), py(s)) for e, s in c]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for x, y in pts:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((width - right + 10, top + 16 * i), name, fill=colour)
    img.save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs for every variant")
    parser.add_argument("--long-epochs", type=int, default=40, help="train beta1 on to this many (0: no)")
    parser.add_argument("--chunk", type=int, default=5, help="read test SSIM every this many epochs")
    parser.add_argument("--variants", default="beta1,beta0.3,beta0.1,latent256")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="a 64 px dataset folder (default: the demo cohort's, built as bench/quality.py does)")
    parser.add_argument("--n-samples", type=int, default=256)
    parser.add_argument("--out", type=Path, default=cache_dir() / "bench" / "vae_ablation",
                        help="runs, sample grids and ssim_curve.png (default: the cache)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 2 variants, 64 samples (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.long_epochs, args.chunk, args.n_samples = 2, 3, 1, 64
        args.variants = "beta1,beta0.1"
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")

    dataset = args.dataset if args.dataset is not None else demo_dataset(size=64)
    test = np.asarray(load_split_images(dataset, "test"), dtype=np.float32)
    train = np.asarray(load_split_images(dataset, "train"), dtype=np.float32)
    runs_root = args.out / "runs"
    shutil.rmtree(runs_root, ignore_errors=True)
    runs_root.mkdir(parents=True)
    print(f"dataset {dataset}: {len(test)} test slices; {args.epochs} epochs per variant; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)

    rows, curves = {}, {}
    for name in names:
        started = time.perf_counter()
        config = make_config(dataset, "vae", "demo", {**VARIANTS[name], "epochs": args.chunk,
                                                      "early_stopping_patience": 0})
        run_dir = RunFolder(runs_root / name.replace(".", "_")).create(config).path
        curves[name] = []
        train_to(run_dir, args.epochs, args.chunk, test, curves[name])
        train_s = time.perf_counter() - started
        rows[name] = {"epochs": args.epochs, "train_s": train_s, "load_1min": os.getloadavg()[0],
                      **measure(run_dir, test, args.n_samples, train)}
        (args.out / f"samples_{name}.png").write_bytes(
            grid_png(RunData.open(run_dir).load_model().sample(32, seed=0)[..., 0], ncols=8))
        if name == "beta1" and args.long_epochs > args.epochs:
            train_to(run_dir, args.long_epochs, args.chunk, test, curves[name])
            long_name = f"beta1_{args.long_epochs}ep"
            rows[long_name] = {"epochs": args.long_epochs, "train_s": time.perf_counter() - started,
                               "load_1min": os.getloadavg()[0], **measure(run_dir, test, args.n_samples, train)}
            (args.out / f"samples_{long_name}.png").write_bytes(
                grid_png(RunData.open(run_dir).load_model().sample(32, seed=0)[..., 0], ncols=8))
        print(f"  {name}: done in {time.perf_counter() - started:.0f} s", flush=True)
        (args.out / "partial.json").write_text(json.dumps({"rows": rows, "curves": curves}, indent=1))

    curve_png(curves, args.out / "ssim_curve.png")

    header = (f"{'variant':<14}{'epochs':>7}{'SSIM':>7}{'train':>7}{'PSNR':>7}{'KL nats':>9}{'active':>8}{'sharp':>7}"
              f"{'MS-SSIM':>9}{'real':>6}{'FD pos':>8}{'C2ST':>6}{'train s':>9}{'load':>6}")
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in rows.items():
        print(f"{name:<14}{r['epochs']:>7}{r['ssim']:>7.3f}{r['train_ssim']:>7.3f}{r['psnr_db']:>7.1f}{r['kl_nats']:>9.1f}"
              f"{r['active_units']:>5}/{r['latent_dim']:<3}{r['sharpness_ratio']:>6.2f}{r['ms_ssim_samples']:>9.3f}"
              f"{r['ms_ssim_real']:>6.2f}{r['fd_posnet']:>8.2f}{r['c2st_accuracy']:>6.2f}{r['train_s']:>9.0f}"
              f"{r['load_1min']:>6.2f}")
    print("SSIM vs epoch: " + "; ".join(f"{n}: " + ", ".join(f"{e}:{s:.3f}" for e, s in c) for n, c in curves.items()))
    print(f"curve: {args.out / 'ssim_curve.png'}")
    out = {"epochs": args.epochs}
    for name, r in rows.items():
        key = name.replace(".", "")
        out.update({f"{key}_ssim": r["ssim"], f"{key}_train_ssim": r["train_ssim"], f"{key}_psnr_db": r["psnr_db"], f"{key}_kl_nats": r["kl_nats"],
                    f"{key}_active_units": r["active_units"], f"{key}_sharpness_ratio": r["sharpness_ratio"],
                    f"{key}_ms_ssim": r["ms_ssim_samples"], f"{key}_fd_posnet": r["fd_posnet"],
                    f"{key}_c2st_accuracy": r["c2st_accuracy"], f"{key}_train_s": r["train_s"]})
        if name != "beta1" and "beta1" in rows:
            out[f"{key}_sharpness_ratio_vs_beta1"] = r["sharpness_ratio"] / rows["beta1"]["sharpness_ratio"]
            out[f"{key}_fd_posnet_ratio_vs_beta1"] = r["fd_posnet"] / rows["beta1"]["fd_posnet"]
    out["ms_ssim_real"] = next(iter(rows.values()))["ms_ssim_real"]
    out["load_1min"] = os.getloadavg()[0]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
