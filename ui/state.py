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

RANGE_AXIS = "range_axis"  # widget keys of the slice range picker on Browse
RANGE = "range"  # (start, stop), stop exclusive
# Streamlit drops a widget's key when its page is left, so the chosen range is also kept
# under plain keys: Dataset reads these, and Browse restores its widgets from them.
CHOSEN_AXIS = "chosen_axis"
CHOSEN_RANGE = "chosen_range"
DATASET_SIZE = "dataset_size"
LAST_DATASET = "last_dataset"  # path of the dataset built or reused last

SOURCE_KINDS = {"demo": "Demo cohort (synthetic)", "folder": "Folder or IXI-T1.tar", "upload": "Upload one file"}
