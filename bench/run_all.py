"""Run every benchmark in one go and write one performance table.

Each ``bench/*.py`` prints a readable table and, as its last line, one JSON object whose keys end
in their unit (``_ms``, ``_s``, ``_per_s``, ``_ratio``, ``_db``...; see docs/architecture.md).  This
script runs them one after the other in fresh processes (so one cannot warm another's caches),
collects those last lines and writes a Markdown table of every figure, labelled with the machine
it was measured on, to ``bench/RESULTS.md`` (or ``--out``).  Ratios come from inside each script
(baseline and candidate measured in the same process); absolute times depend on the machine and
on what else runs there, which the table states.

The quality benchmark runs once per cohort: ``quality`` (``--cohort demo``) and
``quality_real_dev`` (``--cohort real_dev``, whose keys start with ``real_dev_``); ``--only
quality`` runs both.

Usage: ``python bench/run_all.py [--quick] [--only data,quality] [--out FILE] [--figures DIR]
[--quality-budget-s S] [--keep-others]`` (``--figures``: the quality grids go to
``DIR/quality_<cohort>``; ``--keep-others``: rows of benchmarks not run now are kept from the
existing ``--out`` file, and the header says so).

``--from-logs quality=/tmp/quality_demo.log,quality_real_dev=/tmp/quality_real_dev.log`` runs
nothing: it writes the table from those logs' last JSON lines, and the header names each log's
command, start, machine and wall time (the ``# command``/``# started``/``# machine``/``# finished``
lines ``bench/quality.py`` prints).
Last line: one JSON object ``{script: {figures...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
#: In the order they run; the browser benchmark needs Chromium and skips itself without it.
SCRIPTS = ["data", "train", "latent", "evaluate", "quality", "vq_ablation", "browser"]
#: A script run more than once: (result name, extra arguments) per run.
VARIANTS = {"quality": [("quality", ["--cohort", "demo"]), ("quality_real_dev", ["--cohort", "real_dev"])]}
UNITS = {"_ms": "ms", "_s": "s", "_per_s": "/s", "_ratio": "×", "_mb": "MB", "_mib": "MiB", "_pct": "%",
         "_db": "dB"}


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
    """A figure as the table prints it.

    >>> format_value(0.012345), format_value(1234.5), format_value(True), format_value("x")
    ('0.0123', '1234', 'yes', 'x')
    """
    if value is None:
        return "–"
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


def markdown_table(results: dict, machine: str, quick: bool, seconds: dict, header: list[str] | None = None,
                   kept: list[str] | None = None) -> str:
    """The Markdown table of ``results``; ``header`` replaces the default provenance lines and
    ``kept`` (table rows of other benchmarks, kept from an earlier file) is appended."""
    lines = ["# Benchmarks", ""]
    lines += header or [
        f"Written by `python bench/run_all.py{' --quick' if quick else ''}` on {time.strftime('%Y-%m-%d %H:%M')}.",
        f"Machine: {machine}. Ratios compare a baseline and a candidate measured in the same",
        "process; absolute times depend on the machine and its load.",
    ]
    lines += ["", "| benchmark | figure | value | unit |", "| --- | --- | --- | --- |"]
    for script, figures in results.items():
        if not isinstance(figures, dict) or not figures:
            lines.append(f"| {script} | (no result: see its output) | – | |")
            continue
        for key, value in figures.items():
            if isinstance(value, (dict, list)):
                continue
            lines.append(f"| {script} | `{key}` | {format_value(value)} | {unit_of(key)} |")
        if seconds.get(script) is not None:
            lines.append(f"| {script} | wall time of the script | {seconds[script]:.0f} | s |")
    lines += kept or []
    return "\n".join(lines) + "\n"


def previous_file(path: Path, replaced: set[str]) -> tuple[list[str], list[str], list[str]]:
    """``(header lines, table rows, benchmark names)`` of an earlier table at ``path``, the rows
    only of benchmarks not in ``replaced``; empty when there is no such file."""
    if not path.is_file():
        return [], [], []
    text = path.read_text().splitlines()
    header, rows, names = [], [], []
    in_table = False
    for line in text[1:]:
        if line.startswith("| benchmark |") or line.startswith("| --- |"):
            in_table = True
            continue
        if in_table and line.startswith("| "):
            name = line.split("|")[1].strip()
            if name not in replaced:
                rows.append(line)
                if name not in names:
                    names.append(name)
        elif not in_table:
            header.append(line)
    while header and not header[0].strip():
        header.pop(0)
    while header and not header[-1].strip():
        header.pop()
    return header, rows, names


def log_provenance(text: str) -> dict:
    """The ``# command``/``# started``/``# machine``/``# finished`` lines a benchmark printed."""
    out = {}
    for line in text.splitlines():
        for key in ("command", "started", "machine", "finished"):
            if line.startswith(f"# {key}: ") and key not in out:
                out[key] = line[len(f"# {key}: "):].strip()
    return out


def jobs(only: str) -> list[tuple[str, str, list[str]]]:
    """``(result name, script, extra arguments)`` to run, in order; ``only`` names scripts or
    result names (``quality`` is both cohorts, ``quality_real_dev`` one)."""
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    out = []
    for script in SCRIPTS:
        for name, extra in VARIANTS.get(script, [(script, [])]):
            if not chosen or script in chosen or name in chosen:
                out.append((name, script, extra))
    return out


def from_logs(spec: str, out: Path, keep_others: bool, argv_text: str, note: str = "") -> int:
    """Write ``out`` from benchmark logs (``name=path,...``) without running anything."""
    results, seconds, header = {}, {}, []
    pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
    header.append(f"Assembled on {time.strftime('%Y-%m-%d %H:%M')} by `python bench/run_all.py {argv_text}`: "
                  "nothing was run by that command; each benchmark's rows are the last JSON line of a log:")
    header.append("")
    for name, path in pairs:
        text = Path(path).read_text()
        results[name] = last_json(text)
        info = log_provenance(text)
        wall = info.get("finished", "").rsplit("wall ", 1)
        seconds[name] = float(wall[1].split()[0]) if len(wall) == 2 else None
        header.append(f"- `{name}`: `{info.get('command', '(command not in the log)')}`, "
                      f"started {info.get('started', '?')}, finished {info.get('finished', '?')}; "
                      f"machine: {info.get('machine', '?')} (log `{path}`).")
    header += ["", "Ratios compare a baseline and a candidate measured in the same process; absolute times "
               "depend on the machine and its load."] + (["", note] if note else [])
    kept = []
    if keep_others:
        old_header, kept, names = previous_file(out, set(results))
        if kept:
            header += ["", f"Rows of {', '.join(f'`{n}`' for n in names)} are kept unchanged from the previous "
                       f"`{out.name}`, whose header read:", ""] + [f"> {line}" if line else ">" for line in old_header]
    out.write_text(markdown_table(results, "", False, seconds, header=header, kept=kept))
    print(f"wrote {out}")
    print(json.dumps(results))
    return 0 if all(v is not None for v in results.values()) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. data,latent or quality_real_dev")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="Markdown table to write")
    parser.add_argument("--timeout-s", type=float, default=3600, help="limit per benchmark")
    parser.add_argument("--figures", type=Path, default=None,
                        help="quality benchmark: save its grids under DIR/quality_<cohort>")
    parser.add_argument("--quality-budget-s", type=float, default=None, help="quality: training seconds per model")
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the rows of benchmarks not run now from the existing --out file")
    parser.add_argument("--note", default="", help="--from-logs: a sentence added to the header (why, what else ran)")
    parser.add_argument("--from-logs", default="",
                        help="name=log,...: write the table from these logs' last JSON lines, run nothing")
    args = parser.parse_args(argv)
    if args.from_logs:
        argv_text = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        return from_logs(args.from_logs, args.out, args.keep_others, argv_text, args.note)
    machine = machine_label()
    results, seconds = {}, {}
    for name, script_name, extra in jobs(args.only):
        script = BENCH / f"{script_name}.py"
        if not script.is_file():
            print(f"{name}: {script} not found, skipped", file=sys.stderr)
            continue
        command = [sys.executable, str(script)] + extra + (["--quick"] if args.quick else [])
        if script_name == "quality":
            if args.figures:
                cohort = extra[extra.index("--cohort") + 1]
                command += ["--figures", str((args.figures / f"quality_{cohort}").resolve())]
            if args.quality_budget_s:
                command += ["--budget-s", str(args.quality_budget_s)]
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
    header, kept = None, []
    if args.keep_others:
        old_header, kept, names = previous_file(args.out, set(results))
        if kept:
            header = [
                f"Written by `python bench/run_all.py {' '.join(sys.argv[1:] if argv is None else argv)}` on "
                f"{time.strftime('%Y-%m-%d %H:%M')} ({', '.join(results)}).",
                f"Machine: {machine}. Ratios compare a baseline and a candidate measured in the same",
                "process; absolute times depend on the machine and its load.", "",
                f"Rows of {', '.join(f'`{n}`' for n in names)} are kept unchanged from the previous `{args.out.name}`, "
                "whose header read:", ""] + [f"> {line}" if line else ">" for line in old_header]
    args.out.write_text(markdown_table(results, machine, args.quick, seconds, header=header, kept=kept))
    print(f"wrote {args.out}")
    print(json.dumps({"machine": machine, **{k: v for k, v in results.items()}}))
    return 0 if all(v is not None for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
