"""Train page building blocks: dataset labels, hyper-parameter widgets, launch, live run panel,
samples of a trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import UserError
from core.models.presets import KL_SCHEDULES, PRIOR_TYPES, UPSAMPLE_MODES, get_preset
from core.training import jobs, runs
from core.training.runs import RunData
from core.viz import curves as plots
from core.viz.images import display_upscale, grid_png
from ui import state

#: Samples in the Train page's on-demand grid (two rows of eight).
SAMPLE_GRID_N = 16

STATE_ICONS = {"queued": ":material/schedule:", "running": ":material/play_circle:",
               "finished": ":material/check_circle:", "failed": ":material/error:",
               "cancelled": ":material/stop_circle:"}


#: How the Prior choice reads on the page.
PRIOR_LABELS = {"pixelcnn": "Gated PixelCNN", "transformer": "Causal transformer", "diffusion": "Latent diffusion"}


def dataset_label(d: dict) -> str:
    """``axial 160–189 · 64 px · 480/60/60 images · a1b2c3d4``."""
    spec, counts = d["spec"], d["counts"]
    return (f"{spec['axis']} {spec['start']}–{spec['stop'] - 1} · {spec['size']} px · "
            f"{counts.get('train', 0)}/{counts.get('val', 0)}/{counts.get('test', 0)} images · {d['hash'][:8]}")


def hyper_parameters(model_type: str, preset: str) -> dict:
    """Widgets for the hyper-parameters, defaults from the preset; returns the overrides."""
    p = get_preset(model_type, preset)

    def k(name: str) -> str:
        return state.hyper_parameter(name, model_type, preset)

    out = {}
    c1, c2, c3 = st.columns(3)
    out["epochs"] = c1.number_input("Epochs", 1, 10000, p["epochs"], key=k("epochs"),
                                    help="Passes over the training images (early stopping may end sooner).")
    out["batch_size"] = c2.number_input("Batch size", 1, 4096, p["batch_size"], key=k("batch"),
                                        help="Images per gradient step; at most the number of training images.")
    out["learning_rate"] = c3.number_input("Learning rate", 1e-6, 1.0, float(p["learning_rate"]), format="%.0e",
                                           step=1e-4, key=k("lr"), help="Adam step size.")
    c1, c2, c3 = st.columns(3)
    if model_type == "vae":
        out["beta"] = c1.number_input("β (KL weight)", 0.0, 100.0, float(p["beta"]), step=0.1, key=k("beta"),
                                      help="Weight of the KL term at the end of warm-up; 1 is the true ELBO.")
        out["kl_schedule"] = c2.selectbox("KL schedule", list(KL_SCHEDULES),
                                          index=KL_SCHEDULES.index(p["kl_schedule"]),
                                          key=k("sched"),
                                          help="How β rises from 0: linear warm-up, repeated (cyclical) or constant.")
        out["warmup_epochs"] = c3.number_input("Warm-up epochs", 0, 1000, p["warmup_epochs"], key=k("warm"),
                                               help="Epochs until β reaches its value (linear schedule).")
        c1, c2, _ = st.columns(3)
        out["free_bits"] = c1.number_input("Free bits (nats/unit)", 0.0, 10.0, float(p["free_bits"]), step=0.01,
                                           key=k("fb"),
                                           help="KL per latent unit below this is not penalised (keeps units active).")
        out["latent_dim"] = c2.number_input("Latent size", 1, 4096, p["latent_dim"], key=k("latent"),
                                            help="Dimensions of the latent vector z.")
    else:
        out["num_embeddings"] = c1.number_input("Codebook size", 2, 8192, p["num_embeddings"], key=k("codes"),
                                                help="Number of code vectors K the encoder can choose from.")
        out["embedding_dim"] = c2.number_input("Code dimension", 1, 1024, p["embedding_dim"], key=k("dim"),
                                               help="Length of each code vector.")
        out["prior_epochs"] = c3.number_input("Prior epochs", 0, 10000, p["prior_epochs"], key=k("prior"),
                                              help="Epochs of the prior that lets the VQ-VAE sample (0: none).")
        c1, c2, _ = st.columns(3)
        out["upsample"] = c2.selectbox(
            "Decoder upsampling", list(UPSAMPLE_MODES), index=UPSAMPLE_MODES.index(p["upsample"]),
            key=k("upsample"), format_func={"transpose": "Transposed convolution",
                                            "resize": "Resize + convolution"}.get,
            help="How the decoder doubles its side: stride-2 transposed convolutions (the thesis' choice) or "
                 "nearest-neighbour resizing then a 3×3 convolution, which cannot leave the checkerboard "
                 "that uneven kernel overlaps can (Odena et al. 2016).")
        out["prior_type"] = c1.selectbox(
            "Prior", list(PRIOR_TYPES), index=PRIOR_TYPES.index(p["prior_type"]), key=k("prior_type"),
            format_func=PRIOR_LABELS.get,
            help="What learns the code grid's distribution: a gated PixelCNN (each code sees a few rows more "
                 "per layer), a causal transformer (each code attends to every code before it; slower to "
                 "sample) or latent diffusion (a U-Net denoises the grid's code vectors, 50 DDIM steps; needs "
                 "many more epochs). bench/prior_compare.py measures all three on real heads.")
    seen_by = ("Encoder and decoder also see" if model_type == "vae" else
               "The prior also sees (the VQ-VAE's encoder and decoder do not)")
    out["conditional"] = st.checkbox(
        "Conditional on age, sex and slice position", bool(p["conditional"]), key=k("cond"),
        help=f"{seen_by} each slice's age, sex and slice position, so samples can be asked for them "
             "(Latent page, Samples tab; the sample grids show 8 slice positions, a 35-year-old woman above a "
             "75-year-old man). Needs a dataset with every subject's age and sex (e.g. IXI with its "
             "demographics); the launch is refused otherwise.")
    c1, c2, c3 = st.columns(3)
    out["adversarial_weight"] = c1.number_input(
        "Adversarial weight", 0.0, 10.0, float(p["adversarial_weight"]), step=0.05, key=k("adv"),
        help="A patch discriminator teaches the decoder sharp edges (0: off). Scales VQGAN's adaptive weight, "
             "which balances it against the reconstruction term; its loss is plotted below the curves.")
    out["adversarial_start_epoch"] = c2.number_input(
        "Adversary from epoch", 0, 10000, int(p["adversarial_start_epoch"]), key=k("adv_start"),
        help="Warm-up: the discriminator joins once reconstructions are recognisable.")
    out["augment"] = c3.checkbox(
        "Augment training slices", bool(p.get("augment")), key=k("augment"),
        help="Left-right flips, rotations up to 8°, scalings up to 8 %, gain and gamma jitter, new every epoch "
             "(training slices only; with few heads generalisation is the limit).")
    out["mixed_precision"] = st.checkbox("Mixed precision (GPU only)", False, key=k("mp"),
                                         help="float16 compute with float32 weights: faster on a GPU, ignored on CPU.")
    return {key: (int(v) if isinstance(v, int) and not isinstance(v, bool) else v) for key, v in out.items()}


def launch(dataset_path: str, model_type: str, preset: str, run_name: str, overrides: dict) -> Path | None:
    """What the Launch button does: start the background job, remember the run; errors shown."""
    try:
        run_dir = jobs.launch_training(dataset_path, model_type, preset, run_name.strip(), overrides)
    except UserError as exc:
        st.session_state[state.TRAIN_LAUNCH_MESSAGE] = ("error", str(exc))
        return None
    st.session_state[state.TRAIN_RUN] = run_dir.name
    st.session_state[state.TRAIN_LAUNCH_MESSAGE] = ("success", f"Started run `{run_dir.name}` in the background.")
    return run_dir


@st.cache_data(max_entries=64, show_spinner=False)
def _png(path: str, _mtime: float) -> bytes:
    return Path(path).read_bytes()


def _image(run_dir: Path, prefix: str, caption: str) -> None:
    path = runs.latest_image(run_dir, prefix)
    if path is None:
        st.caption(f"{caption}: none yet")
        return
    try:
        data = _png(str(path), path.stat().st_mtime)
    except OSError:
        return
    st.image(data, caption=f"{caption} ({path.stem.rsplit('_', 1)[-1].lstrip('0') or '0'})", output_format="PNG")


def _eta(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m {seconds % 60:02d}s"


def run_panel(run_dir: Path) -> None:
    """Status, progress, ETA, device, curves, samples and Stop/Resume of one run."""
    try:
        config = runs.read_config(run_dir)
    except UserError as exc:
        st.error(str(exc))
        return
    status = runs.read_status(run_dir)
    run_state = status.get("state")
    epoch, epochs = int(status.get("epoch") or 0), int(status.get("epochs") or config.get("epochs") or 1)
    batch, batches = status.get("batch") or 0, status.get("batches") or 0
    fraction = min(1.0, (epoch + (batch / batches if batches and run_state == "running" and batch < batches else 0)) / epochs)
    stage = status.get("stage") or config["model_type"]
    st.markdown(f"**{run_dir.name}** · {config['model_type']} / {config['preset']} · "
                f"{STATE_ICONS.get(run_state, '')} **{run_state}** · stage {stage} · device {status.get('device') or '–'}")
    st.progress(fraction, text=f"{stage}: epoch {epoch} / {epochs} · ETA {_eta(status.get('eta_s'))}")
    if status.get("message"):
        (st.error if run_state == "failed" else st.caption)(status["message"])
    b1, b2, _ = st.columns([1, 1, 4])
    if b1.button("Stop", key=state.run_widget("stop", run_dir.name), disabled=run_state not in runs.ACTIVE_STATES,
                 help="Stop after the current batch; the model is kept and the run can be resumed."):
        jobs.cancel(run_dir)
        st.rerun(scope="fragment")
    if b2.button("Resume", key=state.run_widget("resume", run_dir.name), disabled=run_state in (*runs.ACTIVE_STATES, "finished"),
                 help="Continue a stopped or interrupted run from its last checkpoint."):
        try:
            jobs.resume(run_dir)
        except UserError as exc:
            st.error(str(exc))
        else:
            st.rerun(scope="app")
    log_y = st.toggle("Log scale", key=state.TRAIN_LOG_Y)
    metrics = runs.read_metrics(run_dir)
    st.plotly_chart(plots.loss_figure(metrics, config["model_type"], log_y=log_y), key=state.run_widget("curves", run_dir.name))
    for name, figure in (("codebook", plots.codebook_figure(metrics, config.get("num_embeddings"))),
                         ("adversary", plots.adversarial_figure(metrics))):
        if figure is not None:
            st.plotly_chart(figure, key=state.run_widget(name, run_dir.name))
    if config["model_type"] == "vqvae":
        st.plotly_chart(plots.prior_figure(runs.read_metrics(run_dir, runs.PRIOR_METRICS), log_y=log_y),
                        key=state.run_widget("prior", run_dir.name))
    c1, c2 = st.columns(2)
    with c1:
        if config["model_type"] == "vqvae" and runs.latest_image(run_dir, "prior"):
            _image(run_dir, "prior", "Samples from the prior, prior epoch")
        elif config["model_type"] == "vqvae":
            _image(run_dir, "epoch", "No prior yet — reconstructions, epoch")
        else:
            _image(run_dir, "epoch", "Samples (fixed seeds), epoch")
    with c2:
        _image(run_dir, "recon", "Validation slices (top) and reconstructions (bottom), epoch")


@st.cache_resource(max_entries=2, show_spinner=False)
def _trained_model(run_dir: str, stamp: tuple[int, int]):
    """The run's saved model (a VQ-VAE with its prior), cached per :attr:`RunData.stamp`."""
    return RunData.open(run_dir).load_model()


@st.cache_data(max_entries=16, show_spinner="Sampling…")
def _sample_grid(run_dir: str, stamp: tuple[int, int], seed: int, condition: tuple | None) -> bytes:
    model = _trained_model(run_dir, stamp)
    images = np.asarray(model.sample(SAMPLE_GRID_N, seed=seed, condition=None if condition is None else dict(condition)))
    return grid_png(images[..., 0], ncols=8, upscale=display_upscale(model.image_size))


def sample_panel(run_dir: Path) -> None:
    """On request, a grid of samples of a run that is not training; a conditional run's samples are
    asked for the age, sex and slice position picked here (the grids above use fixed ones)."""
    try:
        data = RunData.open(run_dir)
    except UserError:
        return  # run_panel already said why
    if not data.has_model():
        return
    config, conditional = data.config, data.conditional
    name = run_dir.name
    if not st.toggle("Draw samples" + (" for an age, sex and slice position" if conditional else ""),
                     key=state.run_widget("sample", name),
                     help="Loads the run's saved model (TensorFlow starts the first time: a few seconds)."):
        return
    columns = st.columns(4 if conditional else 1)
    seed = int(columns[0].number_input("Seed", 0, 10**6, 0, key=state.run_widget("sample_seed", name)))
    condition = None
    if conditional:
        start, stop = (int(v) for v in config["slice_range"])
        age = columns[1].number_input("Age (years)", 0, 120, 60, key=state.run_widget("sample_age", name),
                                      help="The model saw the ages of its training cohort.")
        sex = columns[2].radio("Sex", ["F", "M"], horizontal=True, format_func={"F": "female", "M": "male"}.get,
                               key=state.run_widget("sample_sex", name))
        index = columns[3].slider("Slice position", start, stop - 1, (start + stop - 1) // 2,
                                  key=state.run_widget("sample_slice", name),
                                  help=f"Slice index in the dataset's range {start}–{stop - 1}.")
        condition = (("age", int(age)), ("sex", sex), ("slice", int(index)))
    try:
        png = _sample_grid(str(run_dir), data.stamp, seed, condition)
    except UserError as exc:
        st.error(str(exc))
        return
    if condition is None:
        caption = f"{SAMPLE_GRID_N} samples, seed {seed}"
    else:
        caption = (f"{SAMPLE_GRID_N} samples, seed {seed}, asked for age {condition[0][1]}, "
                   f"{'female' if condition[1][1] == 'F' else 'male'}, slice {condition[2][1]}")
    st.image(png, caption=caption, output_format="PNG")


def runs_table(all_runs: list[dict]) -> None:
    """A table of every run with its state."""
    frame = pd.DataFrame([{
        "run": r["name"], "model": r["model_type"], "preset": r["preset"],
        "state": r["state"],
        "epoch": f"{r['epoch']}/{r['epochs']}" + (f" ({r['stage']})" if r["stage"] == "prior" else ""),
        "updated": r["updated"], "message": r["message"],
    } for r in all_runs])
    st.dataframe(frame, hide_index=True, width="stretch")


def overlay(all_runs: list[dict]) -> None:
    """Multiselect runs and overlay one of their curves."""
    names = [r["name"] for r in all_runs]
    chosen = st.multiselect("Compare runs", names, key=state.TRAIN_OVERLAY,
                            help="Overlay the curves of several runs (same metric, against epoch).")
    if not chosen:
        return
    by_name = {r["name"]: r for r in all_runs}
    curves = {name: runs.read_metrics(by_name[name]["path"]) for name in chosen}
    options = plots.overlay_metrics(curves) or ["loss"]
    metric = st.selectbox("Metric", options, key=state.TRAIN_OVERLAY_METRIC)
    st.plotly_chart(plots.overlay_figure(curves, metric, log_y=st.session_state.get(state.TRAIN_LOG_Y, False)),
                    key=state.TRAIN_OVERLAY_CHART)

