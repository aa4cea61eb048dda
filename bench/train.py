"""Training throughput: our tf.data pipeline from cached arrays against the seed's PNG pipeline.

For the ``demo`` and ``thesis`` VAE presets and the ``demo`` VQ-VAE, the same network is
trained (a) from the dataset's cached float arrays through ``core.training.trainer.image_dataset``
(in-memory tensor, shuffle, batch, prefetch) and (b) the way the seed fed it: PNG files on disk
read by ``keras.utils.image_dataset_from_directory`` (grayscale, resized, scaled by 1/255), with
the PNGs either already at the training size ("seed PNG", the strictest comparison) or at IXI's
native slice size 256x150, resized in the pipeline as the seed's exported slices were ("seed
native PNG").  All run in this process, one epoch each in turn after a warm-up epoch;
images/s is the median over the turns.  Also: decode latency of one image with the ``thesis`` VAE (p50/p95).

Images: a dataset folder given with ``--dataset`` (resized to each preset's size when it
differs), else the demo cohort's thesis range when the cohort is already built, else synthetic
head-like slices (brightness, noise and shape vary; the PNG decode cost is similar).

Usage: ``python bench/train.py [--quick] [--dataset DIR]``.  Prints a table and, as its last
line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def synthetic_slices(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``(n, size, size)`` float32 in [0, 1]: noisy ellipse 'heads' with a brighter 'brain' and dark 'ventricles'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        a, b = rng.uniform(0.6, 0.9, 2)
        head = (xx / a) ** 2 + (yy / b) ** 2
        image = 0.35 * (head < 1) + 0.45 * (head < 0.7)
        image -= 0.5 * (((xx / rng.uniform(0.1, 0.25)) ** 2 + (yy / 0.35) ** 2) < 1) * (head < 0.7)
        image += rng.normal(0, 0.04, (size, size)) * (head < 1)
        out[i] = np.clip(image, 0, 1)
    return out


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return np.asarray(images, np.float32)
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in
                     np.asarray(images, np.float32)]).astype(np.float32)


def load_images(dataset: str | None, n: int, size: int) -> tuple[np.ndarray, str]:
    """``n`` training images of ``size`` px and where they came from."""
    from core.data.dataset import load_split_images

    if dataset is None:
        from core.data.demo import demo_is_built

        if demo_is_built():
            from core.data.dataset import build_dataset
            from core.data.demo import build_demo_cohort
            from core.data.slices import thesis_spec
            from core.data.volumes import load_volume, scan_source

            entries = scan_source(build_demo_cohort())
            spec = thesis_spec(load_volume(entries[0]), size=size)
            dataset = str(build_dataset(entries, spec, fractions=(0.7, 0.1, 0.2), seed=0).path)
    if dataset is None:
        return synthetic_slices(n, size), "synthetic slices"
    train = load_split_images(dataset, "train")
    reps = -(-n // len(train))
    images = np.concatenate([np.asarray(train)] * reps)[:n]
    return _resize(images, size), f"dataset {dataset}"


#: IXI T1 slices along the raw 256-slice axis are 256 x 150 pixels (width x height).
NATIVE_SLICE = (256, 150)


def write_pngs(images: np.ndarray, folder: Path, shape: tuple[int, int] | None = None) -> None:
    """One 8-bit grayscale PNG per image, as the seed stored its slices (resized to ``shape``
    = (width, height) when given)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        png = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
        if shape is not None:
            png = png.resize(shape, Image.BILINEAR)
        png.save(folder / f"slice_{i:05d}.png")


def seed_pipeline(folder: Path, size: int, batch: int):
    """The seed's input: ``image_dataset_from_directory`` over PNG files, scaled to [0, 1]."""
    import keras

    ds = keras.utils.image_dataset_from_directory(
        folder, labels=None, color_mode="grayscale", image_size=(size, size), batch_size=batch,
        shuffle=True, seed=0, verbose=False,
    )
    return ds.map(lambda x: x / 255.0)


def our_pipeline(images: np.ndarray, batch: int):
    from core.training.trainer import image_dataset

    return image_dataset(images, batch, seed=0, drop_remainder=True)


def _model(config: dict, jit_compile="auto"):
    import keras

    from core.models.factory import build_model

    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), jit_compile=jit_compile)
    return model


def throughput(config: dict, images: np.ndarray, png_dirs: dict, rounds: int, xla: bool = False) -> dict:
    """Training images/s with each pipeline, epoch by epoch as ``fit`` trains.

    Each pipeline trains its own copy of the network; after one warm-up epoch each (tracing,
    first reads) the pipelines take turns training one epoch (``fit(ds, epochs=1)``: a fresh
    pass over the data, as every epoch starts one), ``rounds`` times, so a load change on the
    shared machine hits all of them alike.  The rate is the median over the rounds.
    """
    batch = config["batch_size"]
    pipelines = {"ours": our_pipeline(images, batch)}
    for name, folder in png_dirs.items():
        pipelines[name] = seed_pipeline(folder, config["image_size"], batch)
    models = {name: _model(config) for name in pipelines}
    if xla:
        pipelines["ours_xla"] = pipelines["ours"]
        models["ours_xla"] = _model(config, jit_compile=True)
    for name, model in models.items():
        model.fit(pipelines[name], epochs=1, shuffle=False, verbose=0)
    rates = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(pipelines[name], epochs=1, shuffle=False, verbose=0)
            rates[name].append(len(images) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def decode_latency(config: dict, calls: int) -> tuple[float, float]:
    """p50, p95 milliseconds of ``model.decode`` of one latent vector (thesis VAE)."""
    model = _model(config)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((calls + 5, 1, config["latent_dim"])).astype(np.float32)
    for i in range(5):
        model.decode(z[i])
    times = []
    for i in range(5, calls + 5):
        start = time.perf_counter()
        model.decode(z[i])
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps: about a minute on 2 cores")
    parser.add_argument("--dataset", default=None, help="dataset folder to take the images from")
    args = parser.parse_args(argv)

    import keras

    from core.models.presets import get_preset

    keras.utils.set_random_seed(0)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes across the models
    t_start = time.perf_counter()
    q = args.quick
    # (label, model type, preset, batches per epoch, epochs timed per pipeline, also XLA)
    cases = [
        ("demo VAE", "vae", "demo", 8 if q else 16, 5 if q else 8, not q),
        ("thesis VAE", "vae", "thesis", 3 if q else 8, 2 if q else 5, False),
        ("demo VQ-VAE", "vqvae", "demo", 8 if q else 16, 3 if q else 8, False),
    ]
    rows, result, source = [], {}, ""
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for label, model_type, preset, batches, rounds, xla in cases:
            config = get_preset(model_type, preset)
            size, batch = config["image_size"], config["batch_size"]
            images, source = load_images(args.dataset, batch * batches, size)
            png_dirs = {"seed": Path(tmp) / f"{preset}_{size}"}
            if not q:  # the native-size variant only in the full run (time)
                png_dirs["seed_native"] = Path(tmp) / f"{preset}_{size}_native"
            for name, folder in png_dirs.items():
                if not folder.exists():
                    write_pngs(images, folder, NATIVE_SLICE if name == "seed_native" else None)
            rates = throughput(config, images, png_dirs, rounds, xla=xla)
            key = f"{preset}_{model_type}"
            rows.append((label, size, batch, rates))
            result[f"{key}_ours_images_per_s"] = round(rates["ours"], 1)
            result[f"{key}_seed_png_images_per_s"] = round(rates["seed"], 1)
            result[f"{key}_vs_seed_png_ratio"] = round(rates["ours"] / rates["seed"], 2)
            if "seed_native" in rates:
                result[f"{key}_seed_native_png_images_per_s"] = round(rates["seed_native"], 1)
                result[f"{key}_vs_seed_native_png_ratio"] = round(rates["ours"] / rates["seed_native"], 2)
            if "ours_xla" in rates:
                result[f"{key}_ours_xla_images_per_s"] = round(rates["ours_xla"], 1)
                result[f"{key}_xla_vs_ours_ratio"] = round(rates["ours_xla"] / rates["ours"], 2)
        p50, p95 = decode_latency(get_preset("vae", "thesis"), 30 if q else 100)
    result["thesis_vae_decode_p50_ms"] = round(p50, 2)
    result["thesis_vae_decode_p95_ms"] = round(p95, 2)
    result["bench_wall_s"] = round(time.perf_counter() - t_start, 1)

    print(f"Training throughput on {os.cpu_count()} CPU cores ({'quick' if q else 'full'}), images: {source}")
    print(f"{'model':<13}{'px':>4}{'batch':>6}{'seed PNG':>10}{'seed native':>13}{'ours':>8}"
          f"{'ours/PNG':>10}{'ours/native':>13}{'ours+XLA':>10}   (images/s)")
    for label, size, batch, r in rows:
        xla_text = f"{r['ours_xla']:10.1f}" if "ours_xla" in r else f"{'–':>10}"
        native = f"{r['seed_native']:>13.1f}" if "seed_native" in r else f"{'–':>13}"
        native_ratio = f"{r['ours'] / r['seed_native']:>12.2f}x" if "seed_native" in r else f"{'–':>13}"
        print(f"{label:<13}{size:>4}{batch:>6}{r['seed']:>10.1f}{native}{r['ours']:>8.1f}"
              f"{r['ours'] / r['seed']:>9.2f}x{native_ratio}{xla_text}")
    print(f"thesis VAE decode of one image: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
