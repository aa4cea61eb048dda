"""Data benchmark: slice render latency and dataset build throughput, with baselines.

Measured in one run on full-resolution IXI-geometry volumes (the demo cohort:
256×256×150 int16 .nii.gz, stored P/S/R like IXI):

- render: a cached volume's 256×256 sagittal plane → windowed, aspect-corrected PNG bytes
  with crosshair and labels, as the Browse page draws it (p50 / p95 ms);
- build: ``core.data.dataset.build_dataset`` (thesis range 160–190, 128 px, 2 threads)
  against a seed-style pipeline (nibabel ``get_fdata``, per-slice min–max, resize, one PNG
  file per slice, the way the 2023 notebooks did) and against the floor: only reading and
  decompressing the same files (1 and 2 threads).

Usage: ``python bench/data.py [--quick]``.  Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from core.data.dataset import build_dataset  # noqa: E402
from core.data.demo import build_demo_cohort  # noqa: E402
from core.data.slices import SliceSpec  # noqa: E402
from core.data.volumes import _gunzip, load_volume, scan_source  # noqa: E402
from core.viz.images import auto_window, render_plane  # noqa: E402


def render_latency(volume, repeats: int) -> tuple[float, float]:
    level, width = auto_window(volume.data)
    index = volume.shape[0] // 2
    crosshair = tuple(s // 2 for s in volume.shape)
    times = []
    for n in range(repeats):
        started = time.perf_counter()
        render_plane(volume, "sagittal", index - n % 5, level, width, True, crosshair, ("axial", 160, 190))
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 95) * 1e3)


def seed_style(paths, out_dir: Path) -> None:
    """The 2023 notebooks: float64 load, slices 160–190 of raw axis 1, per-slice min–max, PNGs."""
    for path in paths:
        data = nib.load(str(path)).get_fdata()
        for i in range(160, 190):
            section = data[:, i, :]
            section = (section - section.min()) / (section.max() - section.min() + 1e-8)
            image = Image.fromarray((section * 255).astype(np.uint8)).resize((128, 128))
            image.save(out_dir / f"{Path(path).name}_{i}.png")


def floor(paths, threads: int) -> None:
    """Only read and decompress each file (the same ISA-L/zlib decompressor the loader uses)."""
    def read(path):
        return len(_gunzip(Path(path).read_bytes()))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, paths))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 volumes, one repeat")
    args = parser.parse_args(argv)
    n_volumes, repeats = (8, 1) if args.quick else (24, 3)

    cohort = build_demo_cohort()
    entries = scan_source(cohort)[:n_volumes]
    paths = [e.path for e in entries]
    volume = load_volume(entries[0])
    p50, p95 = render_latency(volume, 40 if args.quick else 200)

    spec = SliceSpec("axial", 160, 190, 128)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        counter = iter(range(10_000))
        build_s = best_of(lambda: build_dataset(entries, spec, cache_dir=tmp / f"c{next(counter)}",
                                                workers=2), repeats)
        build_1_s = best_of(lambda: build_dataset(entries, spec, cache_dir=tmp / f"c{next(counter)}",
                                                  workers=1), repeats)

        def run_seed():
            out = tmp / f"seed{next(counter)}"
            out.mkdir()
            seed_style(paths, out)

        seed_s = best_of(run_seed, repeats)
        floor_1_s = best_of(lambda: floor(paths, 1), repeats)
        floor_2_s = best_of(lambda: floor(paths, 2), repeats)

    rate = lambda seconds: n_volumes / seconds  # noqa: E731
    rows = [
        ("render 256² plane → PNG", f"p50 {p50:.1f} ms", f"p95 {p95:.1f} ms"),
        ("build_dataset, 2 threads", f"{rate(build_s):.1f} vol/s", f"{build_s:.2f} s"),
        ("build_dataset, 1 thread", f"{rate(build_1_s):.1f} vol/s", f"{build_1_s:.2f} s"),
        ("seed-style (get_fdata, min–max, PNG files)", f"{rate(seed_s):.1f} vol/s", f"{seed_s:.2f} s"),
        ("floor: read + gunzip, 1 thread", f"{rate(floor_1_s):.1f} vol/s", f"{floor_1_s:.2f} s"),
        ("floor: read + gunzip, 2 threads", f"{rate(floor_2_s):.1f} vol/s", f"{floor_2_s:.2f} s"),
    ]
    print(f"{n_volumes} volumes of {volume.raw_shape} (stored {'/'.join(volume.raw_axcodes)}), "
          f"best of {repeats}")
    for name, a, b in rows:
        print(f"  {name:<44}{a:>16}{b:>12}")
    summary = {
        "volumes": n_volumes,
        "render_p50_ms": round(p50, 2),
        "render_p95_ms": round(p95, 2),
        "build_per_s": round(rate(build_s), 2),
        "seed_style_per_s": round(rate(seed_s), 2),
        "floor_1_thread_per_s": round(rate(floor_1_s), 2),
        "floor_2_threads_per_s": round(rate(floor_2_s), 2),
        "build_vs_seed_ratio": round(seed_s / build_s, 2),
        "build_vs_floor_1_thread_ratio": round(build_s / floor_1_s, 2),
        "build_vs_floor_2_threads_ratio": round(build_s / floor_2_s, 2),
        "threads_speedup_ratio": round(build_1_s / build_s, 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
