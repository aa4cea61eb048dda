"""CLI commands of the data layer: ``demo`` and ``build-dataset``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import settings
from core.data.slices import AXES

__all__ = ["register"]


def _tqdm_progress(total_label: str):
    from tqdm import tqdm

    bar = tqdm(total=100, desc=total_label, unit="%", bar_format="{l_bar}{bar}| {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message, refresh=True)

    return bar, update


def _demo(args) -> int:
    from core.data.demo import build_demo_cohort

    bar, update = _tqdm_progress("demo cohort")
    with bar:
        folder = build_demo_cohort(args.out, progress=update)
    print(folder)
    return 0


def _build_dataset(args) -> int:
    from core.data.cohort import build_cohort_dataset, load_cohort
    from core.data.dataset import balance_table
    from core.data.slices import SliceSpec

    spec = SliceSpec(axis=args.axis, start=args.start, stop=args.stop, size=args.size)
    source = args.data
    if source is None:
        from core.data.demo import build_demo_cohort

        source = build_demo_cohort()
    cohort = load_cohort(source, args.demographics)
    # What was found, before the build: the layout, the demographics' match and what was not used.
    print(cohort.layout_summary(), file=sys.stderr)
    if warning := cohort.demographics_summary():
        print(f"warning: {warning}", file=sys.stderr)
    for note in cohort.notes:
        print(f"demographics: {note}", file=sys.stderr)
    for problem in cohort.problems:
        print(f"not used: {problem}", file=sys.stderr)
    bar, update = _tqdm_progress("build dataset")
    with bar:
        result = build_cohort_dataset(cohort, spec, fractions=args.split, seed=args.seed,
                                      cache_dir=args.cache, progress=update, preprocess=args.preprocess)
    for line in result.skipped:
        print(f"skipped {line}", file=sys.stderr)
    if result.preprocess_seconds:
        print("preprocessing, seconds per volume: " + ", ".join(
            f"{step} {seconds:.1f}" for step, seconds in result.preprocess_seconds.items()), file=sys.stderr)
    print(balance_table(result.manifest).to_string(index=False), file=sys.stderr)
    print(result.path)
    return 0


def _preprocess_spec(text: str):
    from core.data.preprocess import PreprocessSpec
    from core.errors import UserError

    try:
        return PreprocessSpec.parse(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="build the synthetic demo cohort, print its folder")
    demo.add_argument("--out", type=Path, default=None, help="folder (default: the cache dir)")
    demo.set_defaults(handler=_demo)

    build = commands.add_parser("build-dataset", help="build a leak-free slice dataset, print its folder")
    build.add_argument("--data", type=Path, default=settings.data_source(),
                       help="folder of NIfTI volumes (IXI, BIDS or flat) or IXI-T1.tar (default: the demo cohort)")
    build.add_argument("--demographics", type=Path, default=None, help="IXI.xls, CSV, TSV or .xlsx with ID, Age, Sex "
                       "(default: participants.tsv of a BIDS folder, or the table next to the data)")
    build.add_argument("--axis", choices=list(AXES), required=True)
    build.add_argument("--start", type=int, required=True, help="first slice (canonical index)")
    build.add_argument("--stop", type=int, required=True, help="one past the last slice")
    build.add_argument("--size", type=int, default=128, help="square image size in pixels")
    build.add_argument("--split", type=float, nargs=3, default=[0.8, 0.1, 0.1],
                       metavar=("TRAIN", "VAL", "TEST"), help="subject fractions per split")
    build.add_argument("--seed", type=int, default=0, help="seed of the subject split")
    build.add_argument("--cache", type=Path, default=None, help="datasets folder (default: cache dir)")
    build.add_argument("--preprocess", type=_preprocess_spec, default=None, metavar="STEPS",
                       help="comma-separated steps run on each volume before slicing, always in this "
                            "order: skullstrip,n4,register[=MM],crop (register: rigid to MNI152 on an "
                            "MM grid, default 1; slice indices are then MNI grid indices)")
    build.set_defaults(handler=_build_dataset)
