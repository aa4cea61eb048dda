"""Streamlit glue of the Latent explorer: cached explorer, the slider fragment, samples,
interpolation, map panels.  The math lives in ``core.latent``, the figures in ``core.viz.latent``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core import settings
from core.errors import UserError
from core.latent import maps
from core.latent.view import ViewState, parse_view
from core.viz.latent import (COLOUR_BY, MAP_SELECTION, THUMBNAIL_MAX_POINTS, THUMBNAIL_PX, compare_png, gif_bytes,
                             map_chart, map_figure, strip_png, thumbnail_urls)
from core.viz.images import display_upscale, png_bytes, png_data_url
from ui import state

GRID_N = 16
SYNTHETIC_N = 64
START_LABELS = {"zero": "Zero (prior mean)", "sample": "A random sample", "slice": "A real slice"}
GROUP_TITLES = {"pca": "Principal directions (GANSpace-style, in σ)", "kl": "Most informative units (ranked by KL)",
                "attribute": "Attribute directions"}


# ------------------------------------------------------------------ loading
def runs_with_model() -> list[dict]:
    """Runs under the runs folder that have saved a model (finished, stopped or still running)."""
    from core.training import runs
    from core.training.checkpoints import has_model

    return [r for r in runs.list_runs(settings.runs_dir()) if has_model(r["path"])]


@st.cache_resource(max_entries=2, show_spinner=False)
def _encoded(run_dir: str, stamp: tuple[int, int]):
    from core.latent import encode_run
    from core.training.runs import RunData

    data = RunData.open(run_dir)
    model = data.load_model()
    return model, encode_run(data, model)


@st.cache_resource(max_entries=2, show_spinner=False)
def _explorer(run_dir: str, stamp: tuple[int, int], hidden: tuple[str, ...] = ()):
    from core.latent import Explorer

    model, encodings = _encoded(run_dir, stamp)
    ex = Explorer(model, encodings.without_subjects(hidden))
    ex.hidden_subjects = len(set(encodings.meta["subject"].astype(str)) & set(hidden))
    # what cached samples depend on: the model file and, for a VQ-VAE, the prior it samples with
    ex.sample_key = f"{ex.enc.fingerprint}|prior@{stamp[1]}"
    return ex


def explorer(run_dir: str):
    """The run's :class:`core.latent.Explorer`, cached per run folder and model stamp
    (:attr:`core.training.runs.RunData.stamp`), without the subjects an open reader study
    reserves (:meth:`core.evaluation.study.StudyStore.reserved_subjects`; their number is in
    ``hidden_subjects``): the study's real images are their slices.

    A VQ-VAE's prior is written after the model (once per prior epoch): it is part of the stamp,
    so a prior that appears while the page is open turns sampling on.  The encoding is cached
    apart, so a study opened or closed only rebuilds the explorer."""
    with st.spinner("Loading the model and encoding every slice of its dataset (once per model file)…"):
        from core.evaluation.study import StudyStore
        from core.training.runs import RunData

        hidden = tuple(sorted(StudyStore(settings.runs_dir()).reserved_subjects()))
        return _explorer(str(run_dir), RunData.open(run_dir).stamp, hidden)


def prior_note(run: dict) -> str | None:
    """A line for a VQ-VAE whose prior is still training (samples come from its latest saved epoch)."""
    if run.get("stage") == "prior" and run.get("state") in ("running", "queued"):
        epoch, epochs = run.get("epoch"), run.get("epochs")
        where = f" (epoch {epoch} of {epochs})" if epoch is not None and epochs else ""
        return (f"Its prior is still training{where}: samples come from its latest saved epoch; rerun the page "
                "to pick up a newer one.")
    return None


def rebuild_dataset(error) -> None:
    """Offer to rebuild a run's deleted dataset from its recorded spec with the current data source."""
    from core.data.cohort import build_cohort_dataset
    from core.data.slices import SliceSpec
    from ui.data import cohort

    config = error.config.get("dataset") or {}
    st.caption("The dataset can be rebuilt from the spec recorded in the run's config.json, from the data "
               "source chosen in the sidebar (it must be the cohort the run was trained on).")
    if st.button("Rebuild the dataset", key="latent_rebuild"):
        try:
            found, _ = cohort()
            spec = SliceSpec(**{k: v for k, v in error.spec.items() if k in SliceSpec.__dataclass_fields__})
            fractions = error.config.get("dataset", {}).get("fractions") or (0.8, 0.1, 0.1)
            bar = st.progress(0.0)
            result = build_cohort_dataset(found, spec, tuple(fractions), int(config.get("seed", 0)),
                                          progress=lambda f, m: bar.progress(min(1.0, f), text=m))
        except UserError as exc:
            st.error(str(exc))
            return
        if result.path.name != config.get("hash"):
            st.warning(f"Rebuilt dataset {result.path.name}, but the run was trained on {config.get('hash')}: "
                       "the data source differs from the run's, so its slices cannot be matched.")
        else:
            st.success("Dataset rebuilt; reloading.")
            st.rerun()


# ------------------------------------------------------------------ view state
def slider_key(direction_key: str) -> str:
    return state.LATENT_SLIDER + direction_key


def current_view(ex) -> ViewState:
    """The :class:`ViewState` described by the page's widgets."""
    ss = st.session_state
    sliders = {k: ss.get(slider_key(k), 0.0) for k in ex.directions}
    start = ss.get(state.LATENT_START, "slice")
    return ViewState(ex.enc.fingerprint, start, str(ss.get(state.LATENT_SUBJECT) or ""),
                     int(ss.get(state.LATENT_SLICE) or 0), int(ss.get(state.LATENT_SEED, 0)),
                     float(ss.get(state.LATENT_TEMPERATURE, 1.0)), int(ss.get(state.LATENT_SAMPLE_INDEX, 0)),
                     sliders)


def reset_sliders(ex) -> None:
    for k in ex.directions:
        st.session_state[slider_key(k)] = 0.0


def apply_view(ex) -> None:
    """Callback of *Apply view*: parse the pasted string and set every widget from it."""
    try:
        view = parse_view(st.session_state.get(state.LATENT_PASTE, ""), ex.enc.fingerprint)
        unknown = sorted(set(view.sliders) - set(ex.directions))
        if unknown:
            raise UserError(f"the view uses directions this run does not have: {', '.join(unknown)}")
        if view.start == "slice":
            ex.enc.row_of(view.subject, view.slice_index)
    except UserError as exc:
        st.session_state[state.LATENT_MESSAGE] = ("error", f"Cannot apply this view: {exc}")
        return
    ss = st.session_state
    ss[state.LATENT_START] = view.start
    if view.start == "slice":
        ss[state.LATENT_SUBJECT], ss[state.LATENT_SLICE] = view.subject, view.slice_index
    ss[state.LATENT_SEED], ss[state.LATENT_TEMPERATURE] = view.seed, view.temperature
    ss[state.LATENT_SAMPLE_INDEX] = view.sample_index
    reset_sliders(ex)
    for k, v in view.sliders.items():
        ss[slider_key(k)] = float(v)
    ss[state.LATENT_MESSAGE] = ("success", "View applied.")


def start_from_sample(ex, seed: int, temperature: float, index: int) -> None:
    """Callback of a sample tile: load it into the sliders."""
    ss = st.session_state
    ss[state.LATENT_START] = "sample"
    ss[state.LATENT_SEED], ss[state.LATENT_TEMPERATURE], ss[state.LATENT_SAMPLE_INDEX] = seed, temperature, index
    reset_sliders(ex)


def start_from_row(ex, row: int) -> None:
    """Callback of *Explore from this slice*: start the sliders at a real slice."""
    ss = st.session_state
    ss[state.LATENT_START] = "slice"
    ss[state.LATENT_SUBJECT] = str(ex.enc.meta.at[row, "subject"])
    ss[state.LATENT_SLICE] = int(ex.enc.meta.at[row, "slice"])
    reset_sliders(ex)


def selected_rows(event) -> list[int]:
    """Global row ids in a map chart's selection event, for both charts: Altair's point
    selection ``{"selection": {MAP_SELECTION: [{"row": r}, …]}}`` and plotly's
    ``{"selection": {"points": [{"customdata": r}, …]}}`` (synthetic samples carry -1: skipped)."""
    selection = (event or {}).get("selection") or {}
    values = []
    for point in selection.get("points") or []:
        data = point.get("customdata")
        values.append(data[0] if isinstance(data, (list, tuple)) and data else data)
    picked = selection.get(MAP_SELECTION) or []
    if isinstance(picked, dict):  # a single point as a dict of field lists
        picked = [{"row": r} for r in np.atleast_1d(picked.get("row", []))]
    values += [p.get("row") for p in picked if isinstance(p, dict)]
    return [int(v) for v in values if v is not None and not isinstance(v, (list, tuple)) and int(v) >= 0]


def on_map_select() -> None:
    """Callback of the map chart: the clicked point's global row id (Altair: the selection's
    ``row`` field; plotly: ``customdata``) becomes the selected row — the same session key the
    *Selected point* box writes, so tests drive it."""
    rows = selected_rows(st.session_state.get(state.LATENT_MAP_CHART))
    if rows:
        st.session_state[state.LATENT_SELECTED_ROW] = rows[0]


def show_message() -> None:
    message = st.session_state.pop(state.LATENT_MESSAGE, None)
    if message:
        (st.error if message[0] == "error" else st.success)(message[1])


# ------------------------------------------------------------------ pieces
def _subject_slice_pickers(ex, subject_key: str, slice_key: str, label: str = "", default: int = 0) -> int:
    """Subject + slice selectors (``default``: index of the subject chosen first); returns the chosen global row."""
    meta = ex.enc.meta
    subjects = sorted(meta["subject"].unique())
    if st.session_state.get(subject_key) not in subjects:
        st.session_state[subject_key] = subjects[default % len(subjects)]
    c1, c2 = st.columns([3, 2])
    subject = c1.selectbox(f"{label}Subject", subjects, key=subject_key,
                           format_func=lambda s: _subject_label(meta, s))
    slices = sorted(meta.loc[meta["subject"] == subject, "slice"].astype(int).unique())
    if st.session_state.get(slice_key) not in slices:
        st.session_state[slice_key] = slices[len(slices) // 2]
    index = c2.selectbox(f"{label}Slice", slices, key=slice_key)
    return ex.enc.row_of(subject, index)


def _subject_label(meta, subject) -> str:
    row = meta[meta["subject"] == subject].iloc[0]
    age = "?" if np.isnan(row["age"]) else f"{row['age']:.0f}"
    return f"{subject} · {age} y · {row['sex'] or '?'} · {row['site'] or '?'} · {row['split']}"


def direction_sliders(ex) -> None:
    """One slider per direction, grouped; attribute sliders show their held-out quality."""
    for group, directions in ex.groups().items():
        if not directions:
            continue
        with st.expander(GROUP_TITLES[group], expanded=group != "kl"):
            if group == "attribute":
                st.caption("Fitted on the train split; the held-out figure (validation + test subjects) says "
                           "how much to trust each direction.")
            cols = st.columns(2)
            for i, d in enumerate(directions):
                years = d.unit == "years"
                limit = 30.0 if years else 3.0
                score = "" if d.score is None else f" · {d.score_name} {d.score:.2f}"
                cols[i % 2].slider(f"{d.label} ({d.unit}){score}", -limit, limit, step=1.0 if years else 0.1,
                                   key=slider_key(d.key), value=st.session_state.get(slider_key(d.key), 0.0),
                                   help=f"One step moves the latent by {d.scale:.3g} along this direction.")


#: The largest decoder the page sends to a browser (the runtime's .wasm, 12 MB, comes on top once).
CLIENT_MAX_MB = 64.0


@st.cache_resource(max_entries=2, show_spinner=False)
def _decoder_export(_ex, run_dir: str, fingerprint: str):
    from core.training.runs import RunData

    result = RunData.open(run_dir).decoder_export(_ex.model)
    data = Path(result.path).read_bytes() if result.available and result.bytes <= CLIENT_MAX_MB * 1e6 else b""
    return result, data


def client_decoder(ex) -> tuple[bytes | None, str | None]:
    """(the ONNX decoder's bytes, None) when slider moves can decode in the browser, else
    (None, why not: one line).  Exported on first use and cached in the run folder
    (:meth:`core.training.runs.RunData.decoder_export`)."""
    from ui.components.latent_decoder import built

    if not built():
        return None, "the browser decoder's built files are missing (run scripts/build_components.sh)"
    failed = (st.session_state.get(state.LATENT_CLIENT_FAILED) or {}).get(ex.enc.fingerprint)
    if failed:
        return None, f"this browser could not run the decoder ({failed})"
    with st.spinner("Exporting the decoder for the browser (once per model file)…"):
        result, data = _decoder_export(ex, str(ex.enc.run_dir), ex.enc.fingerprint)
    if not result.available:
        return None, f"the decoder could not be exported ({result.reason})"
    if not data:
        return None, f"the decoder is {result.bytes / 1e6:.0f} MB, over the {CLIENT_MAX_MB:.0f} MB sent to a browser"
    return data, None


def _start_inputs(ex) -> None:
    """Start-point widgets: zero, a sample (seed, temperature, tile) or a real slice."""
    if st.session_state.get(state.LATENT_START) not in START_LABELS:
        st.session_state[state.LATENT_START] = "slice"
    start = st.radio("Start from", list(START_LABELS), format_func=START_LABELS.get, key=state.LATENT_START,
                     horizontal=True)
    if start == "slice":
        _subject_slice_pickers(ex, state.LATENT_SUBJECT, state.LATENT_SLICE)
    elif start == "sample":
        if not ex.can_sample:
            st.warning("This VQ-VAE's prior is not trained: sampling is off (everything else works).")
        a, b, c = st.columns(3)
        a.number_input("Seed", 0, 10**6, key=state.LATENT_SEED, value=st.session_state.get(state.LATENT_SEED, 0))
        b.number_input("Temperature", 0.0, 2.0, step=0.1, key=state.LATENT_TEMPERATURE,
                       value=st.session_state.get(state.LATENT_TEMPERATURE, 1.0))
        c.number_input("Tile", 0, GRID_N - 1, key=state.LATENT_SAMPLE_INDEX,
                       value=st.session_state.get(state.LATENT_SAMPLE_INDEX, 0))


def _slider_specs(ex) -> tuple[list[dict], list[dict], np.ndarray]:
    """The component's slider specs, groups and ``(k, dim)`` directions (one slider unit each),
    with the same ranges, steps and labels as :func:`direction_sliders`."""
    specs, rows, groups = [], [], []
    for group, directions in ex.groups().items():
        if not directions:
            continue
        note = ("Fitted on the train split; the held-out figure (validation + test subjects) says how much to "
                "trust each direction.") if group == "attribute" else ""
        groups.append({"name": group, "title": GROUP_TITLES[group], "note": note})
        for d in directions:
            years = d.unit == "years"
            limit = 30.0 if years else 3.0
            score = "" if d.score is None else f" · {d.score_name} {d.score:.2f}"
            specs.append({"key": d.key, "label": f"{d.label} ({d.unit}){score}", "min": -limit, "max": limit,
                          "step": 1.0 if years else 0.1, "group": group,
                          "value": float(st.session_state.get(slider_key(d.key), 0.0)),
                          "help": f"One step moves the latent by {d.scale:.3g} along this direction."})
            rows.append(np.float32(d.scale) * np.asarray(d.vector, "float32").ravel())
    return specs, groups, np.stack(rows) if rows else np.zeros((0, ex.latent_dim), "float32")


def _client_sliders(ex, model: bytes) -> None:
    """The sliders and decoded view in the browser; applies the view the component sends back."""
    from ui.components.latent_decoder import latent_decoder

    view = current_view(ex)
    z0, reference, start_codes = ex.start_view(view)
    specs, groups, directions = _slider_specs(ex)
    real = reference is not None and view.start == "slice"
    factor = max(1, 256 // ex.image_size)
    condition = None
    if ex.model_type == "vae" and ex.conditional:
        from core.models.conditions import condition_array

        condition = condition_array(ex.condition, 1, ex.slice_range)[0]
    view_key = view.to_string()  # start point + applied slider values: the component resets when it changes
    value = latent_decoder(model=model, model_key=ex.enc.fingerprint, start=z0, directions=directions,
                           reference=reference, sliders=specs, groups=groups, image_size=ex.image_size,
                           factor=factor, view_key=view_key, condition=condition, start_codes=start_codes,
                           caption=("real start slice" if real else "decoded start")
                           + " · decoded view · difference (red brighter, blue darker)",
                           key=state.LATENT_DECODER)
    ss = st.session_state
    if isinstance(value, dict) and value.get("nonce") and value["nonce"] != ss.get(state.LATENT_DECODER_SEEN):
        ss[state.LATENT_DECODER_SEEN] = value["nonce"]
        if value.get("status") == "unsupported":
            ss[state.LATENT_CLIENT_FAILED] = {**(ss.get(state.LATENT_CLIENT_FAILED) or {}),
                                              ex.enc.fingerprint: str(value.get("reason") or "unknown")}
            st.rerun(scope="fragment")
        sliders = value.get("sliders") or {}
        for k in ex.directions:
            ss[slider_key(k)] = float(sliders.get(k, 0.0))


def _server_view(ex) -> ViewState | None:
    """Today's server path: decode the view here and show it as a PNG (None after an error)."""
    view = current_view(ex)
    try:
        rendered = ex.render(view)
    except UserError as exc:
        st.error(str(exc))
        return None
    factor = max(1, 256 // ex.image_size)
    st.image(png_data_url(compare_png(rendered.reference, rendered.image, factor)),
             caption=("real start slice" if rendered.reference_is_real else "decoded start")
             + " · decoded view · difference (red brighter, blue darker)")
    facts = [f"moved {np.linalg.norm(rendered.latent - ex.start(view)[0]):.2f} in latent space"]
    if rendered.changed_codes is not None:
        facts.append(f"**{rendered.changed_codes} of {rendered.total_codes} codes changed** after re-quantising")
    st.markdown(" · ".join(facts))
    return view


def _view_string(ex, view: ViewState, client: bool) -> None:
    st.caption("Copy view — paste it back below to reproduce this exact view:" if not client else
               "Copy view (the sliders' position as of the last **Copy view** press) — paste it back below to "
               "reproduce this exact view:")
    st.code(view.to_string(), language=None)
    p1, p2 = st.columns([4, 1])
    p1.text_input("Paste a view string", key=state.LATENT_PASTE, placeholder="lbview1.…",
                  label_visibility="collapsed")
    p2.button("Apply view", on_click=apply_view, args=(ex,))


@st.fragment
def slider_panel(ex) -> None:
    """Start point, sliders and the decoded view (a fragment: a start change reruns only this).

    In the browser (default): the sliders live in the ``latent_decoder`` component, which decodes
    each move itself; the server hears of the sliders only on *Copy view*.  On the server (the
    toggle off, or the browser or the export cannot): today's sliders, one rerun and decode per move."""
    show_message()
    ss = st.session_state
    ss.setdefault(state.LATENT_CLIENT, True)
    model, reason = client_decoder(ex)
    c1, c2 = st.columns([2, 3])
    with c1:
        _start_inputs(ex)
        st.toggle("Decode in the browser", key=state.LATENT_CLIENT, disabled=model is None,
                  help="Each slider move is decoded in this page (WebAssembly) instead of by the server.")
    client = model is not None and ss[state.LATENT_CLIENT]
    if model is None:
        c1.caption(f"Decoding on the server: {reason}.")
    elif not client:
        c1.caption("Decoding on the server (one round trip per move): browser decoding is off.")
    if client:
        try:
            _client_sliders(ex, model)
        except UserError as exc:
            st.error(str(exc))
            return
        _view_string(ex, current_view(ex), True)
        return
    with c1:
        direction_sliders(ex)
        st.button("Reset sliders", on_click=reset_sliders, args=(ex,), icon=":material/restart_alt:")
    with c2:
        view = _server_view(ex)
        if view is not None:
            _view_string(ex, view, False)


@st.cache_data(max_entries=32, show_spinner="Sampling…")
def _samples(_ex, fingerprint: str, seed: int, temperature: float, n: int, source: str = "prior",
             condition: tuple | None = None):
    asked = None if condition is None else dict(condition)
    if _ex.model_type == "vae":  # a conditional VAE decodes with the condition
        z = _ex.sample_latents(n, seed, temperature, source=source)
        return z, _ex.decode(z, condition=asked)[0]
    # a conditional VQ-VAE's prior draws the codes for it; its decoder is not conditioned
    z = _ex.sample_latents(n, seed, temperature, source=source, condition=asked)
    return z, _ex.decode(z)[0]


SOURCES = {"prior": "N(0, I) prior",
           "aggregate": "aggregate posterior (Gaussian mixture on training latents)"}


def _condition_inputs(ex) -> dict | None:
    """Age / sex / slice inputs of a conditional VAE or VQ-VAE (None otherwise, with a line saying why)."""
    if not ex.conditional:
        st.caption("This run is not conditional, so its samples cannot be asked for an age, sex or slice "
                   "position: train a VAE or VQ-VAE with *Conditional on age, sex and slice position* on the "
                   "Train page.")
        return None
    default = ex.default_condition()
    start, stop = ex.slice_range
    c1, c2, c3 = st.columns(3)
    age = c1.number_input("Age (years)", 0, 120, int(default["age"]), key=state.LATENT_COND_AGE,
                          help="Age the samples are asked for; the model saw the ages of its training cohort.")
    sex = c2.radio("Sex", ["F", "M"], horizontal=True, key=state.LATENT_COND_SEX,
                   format_func={"F": "female", "M": "male"}.get)
    index = c3.slider("Slice position", start, stop - 1, int(default["slice"]), key=state.LATENT_COND_SLICE,
                      help=f"Slice index in the dataset's range {start}–{stop - 1}.")
    return {"age": int(age), "sex": sex, "slice": int(index)}


def samples_panel(ex) -> None:
    """A grid of samples with seed and temperature; a tile's button loads it into the sliders."""
    if not ex.can_sample:
        st.warning("This VQ-VAE's prior is not trained, so it cannot sample. Train its PixelCNN prior on the "
                   "Train page; the sliders, interpolation between real slices and the maps work without it.")
        return
    c1, c2 = st.columns(2)
    seed = int(c1.number_input("Seed", 0, 10**6, 0, key=state.LATENT_GRID_SEED))
    temperature = float(c2.slider("Temperature", 0.0, 1.5, 1.0, 0.05, key=state.LATENT_GRID_TEMPERATURE,
                                  help="VAE: standard deviation of z. VQ-VAE: divides the prior's logits."))
    source = "prior"
    if ex.model_type == "vae":
        source = st.radio("Sample z from", list(SOURCES), horizontal=True, key=state.LATENT_GRID_SOURCE,
                          format_func=SOURCES.get,
                          help="N(0, I): the VAE's prior (default). Aggregate posterior: a 10-component Gaussian "
                               "mixture fitted on the training slices' latent means (on first use) — closer to "
                               "the data but measured much less diverse; see the README.")
    condition = _condition_inputs(ex)
    try:
        _, images = _samples(ex, ex.sample_key, seed, temperature, GRID_N, source,
                             None if condition is None else tuple(sorted(condition.items())))
    except UserError as exc:
        st.error(str(exc))
        return
    if condition is not None:
        how = ("the sliders decode with the default condition" if ex.model_type == "vae" else
               "the prior draws the codes for it (the VQ-VAE's decoder is not conditioned)")
        st.caption(f"Samples asked for age {condition['age']}, {'female' if condition['sex'] == 'F' else 'male'}, "
                   f"slice {condition['slice']}; {how}.")
    loadable = source == "prior" and condition is None
    factor = display_upscale(ex.image_size)
    cols = st.columns(8)
    for i, image in enumerate(images):
        with cols[i % 8]:
            st.image(png_bytes(np.repeat(np.repeat(image, factor, 0), factor, 1)), output_format="PNG")
            st.button(f"Explore #{i}", key=f"latent_tile_{i}", on_click=start_from_sample,
                      args=(ex, seed, temperature, i), disabled=not loadable,
                      help="Load this sample into the sliders (first tab)" if loadable else
                      "Only unconditioned N(0, I) samples load into the sliders")


def _endpoint(ex, name: str):
    kind = st.radio(f"{name} is", ["slice", "sample"], horizontal=True, key=f"latent_ip_{name}_kind",
                    format_func={"slice": "a real slice", "sample": "a sample"}.get)
    if kind == "slice":
        # B starts on the last subject: an A → B strip between one slice and itself shows nothing
        row = _subject_slice_pickers(ex, f"latent_ip_{name}_subject", f"latent_ip_{name}_slice", f"{name}: ",
                                     default=-1 if name == "B" else 0)
        return ex.latent_of_rows([row])[0], f"{ex.enc.meta.at[row, 'subject']}-{ex.enc.meta.at[row, 'slice']}"
    if not ex.can_sample:
        raise UserError("this VQ-VAE's prior is not trained: interpolate between real slices instead")
    c1, c2 = st.columns(2)
    seed = int(c1.number_input(f"{name}: seed", 0, 10**6, 1 if name == "B" else 0, key=f"latent_ip_{name}_seed"))
    index = int(c2.number_input(f"{name}: tile", 0, GRID_N - 1, 0, key=f"latent_ip_{name}_tile"))
    z, _ = _samples(ex, ex.sample_key, seed, 1.0, GRID_N)
    return z[index], f"sample{seed}-{index}"


def interpolation_panel(ex) -> None:
    """Two endpoints, linear or spherical, N steps; a strip with PNG and GIF downloads."""
    a_col, b_col = st.columns(2)
    try:
        with a_col:
            za, name_a = _endpoint(ex, "A")
        with b_col:
            zb, name_b = _endpoint(ex, "B")
    except UserError as exc:
        st.error(str(exc))
        return
    c1, c2 = st.columns(2)
    mode = c1.radio("Path", ["spherical", "linear"], horizontal=True, key="latent_ip_mode",
                    help="Spherical keeps the latent's norm (stays where the prior puts its mass); linear cuts across.")
    steps = int(c2.slider("Steps", 3, 16, 8, key="latent_ip_steps"))
    try:
        strip = ex.interpolation(za, zb, steps, mode)
    except UserError as exc:
        st.error(str(exc))
        return
    factor = display_upscale(ex.image_size)
    png = strip_png(strip, factor)
    st.image(png, output_format="PNG", caption=f"{name_a} → {name_b}, {mode}, {steps} steps")
    d1, d2 = st.columns(2)
    stem = f"{ex.enc.run_dir.name}-{name_a}-{name_b}-{mode}"
    d1.download_button("Download PNG strip", png, f"{stem}.png", "image/png", icon=":material/download:")
    d2.download_button("Download animated GIF", gif_bytes(strip, factor), f"{stem}.gif", "image/gif",
                       icon=":material/gif_box:")


@st.cache_data(max_entries=8, show_spinner=False)
def _synthetic_pca(_ex, fingerprint: str, seed: int):
    z = _ex.sample_latents(SYNTHETIC_N, seed, 1.0)
    return _ex.map_pca.transform(_ex.map_points(z))[:, :2]


def map_coords(ex, method: str, seed: int = 0) -> np.ndarray:
    """Map coordinates (PCA instantly; t-SNE / UMAP with a progress bar and an on-disk cache)."""
    if method == "pca":
        return ex.map_pca.transform(ex.enc.points)[:, :2]
    label = {"tsne": "t-SNE (openTSNE)", "umap": "UMAP"}[method]
    if method == "umap" and not maps.umap_ready():
        label += " — compiling its kernels first (once per server start)"
    bar = st.progress(0.0, text=f"{label}…")
    coords = maps.cached_project(ex.enc.points, method, seed, ex.enc.fingerprint,
                                 progress=lambda f, m: bar.progress(min(1.0, f), text=m))
    bar.empty()
    return coords


@st.cache_resource(max_entries=2, show_spinner=False)
def _thumbnails(_ex, fingerprint: str) -> list[str]:
    urls: list[str] = []
    for batch in _ex.enc.iter_images():
        urls += thumbnail_urls(batch)
    return urls


def thumbnails(ex) -> list[str]:
    """One 32 px PNG data URL per slice, made once per model file (cached with the explorer's key)."""
    with st.spinner(f"Making hover thumbnails of {len(ex.enc)} slices (once per model file)…"):
        return _thumbnails(ex, ex.enc.fingerprint)


@st.fragment
def map_panel(ex) -> None:
    """Projection with colour, hover, click → slice + reconstruction + neighbours, CSV, samples.

    A fragment: a click on the map reruns this panel only, not the decoding of the other tabs."""
    meta = ex.enc.meta
    c1, c2, c3 = st.columns([2, 2, 2])
    method = c1.radio("Projection", list(maps.METHODS), horizontal=True, key=state.LATENT_MAP_METHOD,
                      format_func={"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get)
    colour = c2.selectbox("Colour by", list(COLOUR_BY), format_func=COLOUR_BY.get, key=state.LATENT_MAP_COLOUR)
    synthetic = None
    with c3:
        if method == "pca":
            show = st.toggle(f"Project {SYNTHETIC_N} synthetic samples", key="latent_map_synthetic",
                             disabled=not ex.can_sample,
                             help="Do the model's samples cover the real distribution?" if ex.can_sample
                             else "The VQ-VAE's prior is not trained: no samples.")
            if show and ex.can_sample:
                synthetic = _synthetic_pca(ex, ex.sample_key, 0)
        else:
            st.caption("Synthetic samples are projected into the PCA map (t-SNE and UMAP cannot place new points "
                       "without refitting).")
    try:
        coords = map_coords(ex, method)
    except UserError as exc:
        st.error(str(exc))
        return
    selected = st.session_state.get(state.LATENT_SELECTED_ROW)
    points = "means" if ex.model_type == "vae" else "pooled code embeddings"
    title = f"{ {'pca': 'PCA', 'tsne': 't-SNE', 'umap': 'UMAP'}[method]} of {len(meta)} latent {points}"
    if len(meta) <= THUMBNAIL_MAX_POINTS:
        chart = map_chart(meta, coords, colour, thumbnails(ex), synthetic, title=title)
        # the tooltip shows the 32 px thumbnail at 3× with its pixels visible
        st.html(f"<style>#vg-tooltip-element img {{width: {3 * THUMBNAIL_PX}px; height: {3 * THUMBNAIL_PX}px; "
                "image-rendering: pixelated;}</style>")
        st.altair_chart(chart, key=state.LATENT_MAP_CHART, on_select=on_map_select,
                        selection_mode=[MAP_SELECTION], width="stretch")
        st.caption("Hover a point for its slice's thumbnail; click it for the real slice, its reconstruction "
                   "and neighbours below. Scroll to zoom, drag to pan, double-click to reset."
                   + (" Magenta crosses: synthetic samples." if synthetic is not None else ""))
    else:
        st.caption(f"{len(meta):,} points is more than the {THUMBNAIL_MAX_POINTS:,} the map draws with a "
                   "thumbnail each, so this map is a WebGL scatter with text hover (no thumbnails); click a "
                   "point for its slice below.")
        fig = map_figure(meta, coords, colour, synthetic, selected, title=title)
        st.plotly_chart(fig, key=state.LATENT_MAP_CHART, on_select=on_map_select, selection_mode="points",
                        config={"scrollZoom": True})
    e1, e2 = st.columns([2, 3])
    e1.number_input("Selected point (row id; or click a point)", min_value=0, max_value=len(meta) - 1, value=None,
                    step=1, key=state.LATENT_SELECTED_ROW)
    csv = maps.map_table(meta, coords, method).to_csv(index=False).encode()
    e2.download_button("Export coordinates (CSV)", csv, f"{ex.enc.run_dir.name}-{method}.csv", "text/csv",
                       icon=":material/download:")
    selected = st.session_state.get(state.LATENT_SELECTED_ROW)
    if selected is not None:
        point_panel(ex, int(selected))


def point_panel(ex, row: int) -> None:
    """A map point: its real slice, its reconstruction and its 5 nearest real neighbours."""
    meta = ex.enc.meta
    info = meta.loc[row]
    age = "?" if np.isnan(info["age"]) else f"{info['age']:.0f}"
    st.subheader(f"Point {row}: {info['subject']}, slice {info['slice']}")
    st.caption(f"age {age} · sex {info['sex'] or '?'} · site {info['site'] or '?'} · {info['split']} split")
    neighbours, distances = maps.nearest_neighbours(ex.enc.points, row, 5)
    real = ex.enc.images([row])[0]
    recon = ex.reconstruct_rows([row])[0]
    factor = max(1, 192 // ex.image_size)
    cols = st.columns(7)
    cols[0].image(png_bytes(np.repeat(np.repeat(real, factor, 0), factor, 1)), caption="real slice", output_format="PNG")
    cols[1].image(png_bytes(np.repeat(np.repeat(recon, factor, 0), factor, 1)), caption="reconstruction",
                  output_format="PNG")
    images = ex.enc.images(neighbours)
    for col, r, d, image in zip(cols[2:], neighbours, distances, images):
        m = meta.loc[int(r)]
        col.image(png_bytes(np.repeat(np.repeat(image, factor, 0), factor, 1)), output_format="PNG",
                  caption=f"{m['subject']} s{m['slice']} · d {d:.2f}")
    if st.button("Explore from this slice (sliders tab)", on_click=start_from_row, args=(ex, row),
                 key="latent_from_point"):
        st.rerun()  # the sliders are outside the map's fragment
