"""Every ``st.session_state`` key the app uses, in one place."""

SOURCE_KIND = "source_kind"  # "demo" | "folder" | "upload"
SOURCE_PATH = "source_path"  # folder or IXI-T1.tar typed in the sidebar
DEMOGRAPHICS_PATH = "demographics_path"
UPLOAD = "upload_file"

SUBJECT = "subject_id"  # the subject shown on the Browse page
CROSSHAIR = "crosshair"  # canonical (i, j, k) of the selected voxel
RADIOLOGICAL = "radiological"
AUTO_WINDOW = "auto_window"
LEVEL = "window_level"
WIDTH = "window_width"

SUBJECT_TABLE = "subject_table"  # the subject table's row selection on Browse
SHOW_OTHERS = "show_other_subjects"  # True once the user asked for the other subjects' previews
BROWSE_CLIENT = "browse_client"  # toggle: draw Browse's planes in the browser (True) or on the server
BROWSE_VIEWER = "browse_viewer"  # the client-side viewer component's value (last voxel / range / unsupported event)
BROWSE_VIEWER_SEEN = "browse_viewer_seen"  # seq of the viewer event already applied
BROWSE_CLIENT_FAILED = "browse_client_failed"  # why the browser could not draw (then the server draws)
BROWSE_VIEWER_SENT = "browse_viewer_sent"  # volume token whose first render (with preview planes) was sent
PRESET_ERROR = "preset_error"  # message of a failed "Thesis preset" click, shown once

RANGE_AXIS = "range_axis"  # widget keys of the slice range picker on Browse
RANGE = "range"  # (start, stop), stop exclusive
# Streamlit drops a widget's key when its page is left, so the chosen range is also kept
# under plain keys: Dataset reads these, and Browse restores its widgets from them.
CHOSEN_AXIS = "chosen_axis"
CHOSEN_RANGE = "chosen_range"
DATASET_AXIS = "ds_axis"  # axis chosen on the Dataset page
DATASET_SIZE = "dataset_size"
LAST_DATASET = "last_dataset"  # path of the dataset built or reused last
DATASET_PREPROCESS = "ds_preprocess_"  # prefix: one checkbox per preprocessing step (+ "register_mm")
PREPROCESS_STEPS = "pp_steps"  # Browse's before / after panel: steps, plane, mask toggle
PREPROCESS_AXIS = "pp_axis"
PREPROCESS_MASK = "pp_mask"
PREPROCESS_BUTTON = "pp_run"
PREPROCESS_RUN = "pp_last_run"  # (volume identity, steps, plane) shown last: shown again without a click

# Train page
TRAIN_DATASET = "train_dataset"
TRAIN_MODEL = "train_model"
TRAIN_PRESET = "train_preset"
TRAIN_FORM = "train_form"
TRAIN_RUN_NAME = "train_run_name"
TRAIN_RUN = "train_run"  # name of the run shown in the live panel
TRAIN_LOG_Y = "train_log_y"
TRAIN_OVERLAY = "train_overlay_runs"
TRAIN_OVERLAY_METRIC = "train_overlay_metric"
TRAIN_OVERLAY_CHART = "overlay_chart"
TRAIN_LAUNCH_MESSAGE = "train_launch_message"  # (kind, text) shown once after Launch

SOURCE_KINDS = {"demo": "Demo cohort (synthetic)", "folder": "Folder or IXI-T1.tar", "upload": "Upload one file"}


def crosshair_slider(subject: str, axis_index: int) -> str:
    """Key of a Browse plane slider (one per subject and voxel axis)."""
    return f"cross_{subject}_{axis_index}"


def hyper_parameter(name: str, model_type: str, preset: str) -> str:
    """Key of a Train hyper-parameter widget: fresh widgets (and defaults) per model and preset."""
    return f"hp_{name}_{model_type}_{preset}"


def run_widget(kind: str, run_name: str) -> str:
    """Key of a per-run element on the Train page (``stop``, ``resume``, ``curves``, ``prior``, and the
    sample grid's ``sample``, ``sample_seed``, ``sample_age``, ``sample_sex``, ``sample_slice``)."""
    return f"{kind}_{run_name}"

# Latent explorer page
LATENT_RUN = "latent_run"  # run folder chosen on the Latent page
LATENT_START = "latent_start"  # "zero" | "sample" | "slice"
LATENT_SUBJECT = "latent_subject"
LATENT_SLICE = "latent_slice"
LATENT_SEED = "latent_seed"  # seed / temperature / tile of the sample the sliders start from
LATENT_TEMPERATURE = "latent_temperature"
LATENT_SAMPLE_INDEX = "latent_sample_index"
LATENT_SLIDER = "latent_dir_"  # prefix: one slider per direction key
LATENT_PASTE = "latent_paste"  # pasted "copy view" string
LATENT_MESSAGE = "latent_message"  # (kind, text) shown once after a callback
LATENT_GRID_SEED = "latent_grid_seed"
LATENT_GRID_TEMPERATURE = "latent_grid_temperature"
LATENT_GRID_SOURCE = "latent_grid_source"  # VAE samples: "prior" N(0, I) or "aggregate" mixture
LATENT_COND_AGE = "latent_cond_age"  # conditional VAE samples: age, sex, slice asked for
LATENT_COND_SEX = "latent_cond_sex"
LATENT_COND_SLICE = "latent_cond_slice"
LATENT_MAP_METHOD = "latent_map_method"
LATENT_MAP_COLOUR = "latent_map_colour"
LATENT_MAP_CHART = "latent_map_chart"  # the map chart's selection state (Altair, or plotly above the thumbnail limit)
LATENT_SELECTED_ROW = "latent_selected_row"  # global row id of the clicked map point (chart or row box)
LATENT_CLIENT = "latent_client"  # toggle: decode slider moves in the browser (True) or on the server
LATENT_DECODER = "latent_decoder"  # the client-side decoder component's value (a "Copy view" or "unsupported")
LATENT_DECODER_SEEN = "latent_decoder_seen"  # nonce of the component value already applied
LATENT_CLIENT_FAILED = "latent_client_failed"  # {model key: reason} the browser could not decode
