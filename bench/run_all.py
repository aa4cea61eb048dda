"""Run every benchmark in one go and write one performance table.

Each ``bench/*.py`` prints a readable table and, as its last line, one JSON object whose keys end
in their unit (``_ms``, ``_s``, ``_per_s``, ``_ratio``...; see ../shared/design.md).  This
script runs them one after the other in fresh processes (so one cannot warm another's caches),
collects those last lines and writes a Markdown table of every figure, labelled with the machine
it was measured on, to ``bench/RESULTS.md`` (or ``--out``).  Ratios come from inside each script
(baseline and candidate measured in the same process); absolute times depend on the machine and
on what else runs there, which the table states.

Usage: ``python bench/run_all.py [--quick] [--only data,latent] [--out FILE] [--figures DIR]``
(``--figures``: the quality benchmark's sample and reconstruction grids go there).
Last line: one JSON object ``{script: {figures...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
#: In the order they run; the browser benchmark needs Chromium and skips itself without it.
SCRIPTS = ["data", "train", "latent", "evaluate", "quality", "browser"]
UNITS = {"_ms": "ms", "_s": "s", "_per_s": "/s", "_ratio": "×", "_mb": "MB", "_mib": "MiB", "_pct": "%"}


def machine_label() -> str:
    """``2 CPU cores, 24 GiB, no GPU (Linux x86_64)``: what the absolute times were measured on."""
    cores = os.cpu_count() or 0
    try:
        mem_kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                           if line.startswith("MemTotal")).split()[1])
        memory = f", {mem_kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = ""
    gpu = "no GPU"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            gpu = out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cores} CPU cores{memory}, {gpu} ({platform.system()} {platform.machine()}), load {load:.1f} at start"


def last_json(text: str) -> dict | None:
    """The last line of ``text`` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def unit_of(key: str) -> str:
    """Unit of a figure from its key's suffix (``slider_p95_ms`` → ``ms``).

    >>> unit_of("tsne_1200_s"), unit_of("build_ratio"), unit_of("images_per_s"), unit_of("ssim")
    ('s', '×', '/s', '')
    """
    for suffix in sorted(UNITS, key=len, reverse=True):
        if key.endswith(suffix):
            return UNITS[suffix]
    return ""


def format_value(value) -> str:
    """>>> format_value(0.012345), format_value(1234.5), format_value(True), format_value("x")
    ('0.0123', '1234', 'yes', 'x')
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if value != value:  # NaN
            return "–"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 1:
            return f"{value:.2f}".rstrip("0").rstrip(".")
        return f"{value:.3g}"
    return str(value)


def markdown_table(results: dict, machine: str, quick: bool, seconds: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python bench/run_all.py{' --quick' if quick else ''}` on {time.strftime('%Y-%m-%d %H:%M')}.",
        f"Machine: {machine}. Ratios compare a baseline and a candidate measured in the same",
        "process; absolute times depend on the machine and its load.",
        "",
        "| benchmark | figure | value | unit |",
        "| --- | --- | --- | --- |",
    ]
    for script, figures in results.items():
        if not isinstance(figures, dict) or not figures:
            lines.append(f"| {script} | (no result: see its output) | – | |")
            continue
        for key, value in figures.items():
            if isinstance(value, (dict, list)):
                continue
            lines.append(f"| {script} | `{key}` | {format_value(value)} | {unit_of(key)} |")
        lines.append(f"| {script} | wall time of the script | {seconds[script]:.0f} | s |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. data,latent")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="Markdown table to write")
    parser.add_argument("--timeout-s", type=float, default=3600, help="limit per benchmark")
    parser.add_argument("--figures", type=Path, default=None, help="quality benchmark: save its grids here")
    args = parser.parse_args(argv)
    chosen = [s for s in SCRIPTS if not args.only or s in args.only.split(",")]
    machine = machine_label()
    results, seconds = {}, {}
    for name in chosen:
        script = BENCH / f"{name}.py"
        if not script.is_file():
            print(f"{name}: {script} not found, skipped", file=sys.stderr)
            continue
        command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        if name == "quality" and args.figures:
            command += ["--figures", str(args.figures.resolve())]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=args.timeout_s,
                                  env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
            output, code = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            output, code = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), -1
        seconds[name] = time.perf_counter() - started
        print(done.stdout if code != -1 else output, flush=True)
        results[name] = last_json(done.stdout if code != -1 else output) if code == 0 else None
        if code != 0:
            print(f"{name} failed (exit {code}):\n{output[-3000:]}", file=sys.stderr)
    args.out.write_text(markdown_table(results, machine, args.quick, seconds))
    print(f"wrote {args.out}")
    print(json.dumps({"machine": machine, **{k: v for k, v in results.items()}}))
    return 0 if all(v is not None for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
