"""Latent-space exploration of a trained run: encodings, directions, interpolation, maps, views.

No Streamlit here; the Latent page (``pages/latent.py``) and ``bench/latent.py`` use it.

- ``encodings.py``: encode a run's train/val/test slices once, with subject metadata;
- ``directions.py``: PCA directions in sigma units, KL-ranked units, attribute directions;
- ``interpolate.py``: linear and spherical interpolation;
- ``maps.py``: PCA / t-SNE / UMAP projections, nearest neighbours, CSV table;
- ``explorer.py``: start points, slider moves, decoding, samples, interpolation strips;
- ``view.py``: the "copy view" string that reproduces a view.
"""

from core.latent.directions import Direction, attribute_directions, kl_ranked_units, pca_directions
from core.latent.encodings import DatasetMissing, Encodings, encode_run, run_dataset, run_fingerprint
from core.latent.explorer import Explorer
from core.latent.interpolate import interpolate, lerp, slerp
from core.latent.maps import METHODS, MIN_POINTS, map_table, nearest_neighbours, project, warm_umap
from core.latent.view import ViewState, parse_view

__all__ = [
    "Direction", "attribute_directions", "kl_ranked_units", "pca_directions",
    "DatasetMissing", "Encodings", "encode_run", "run_dataset", "run_fingerprint",
    "Explorer", "interpolate", "lerp", "slerp",
    "METHODS", "MIN_POINTS", "map_table", "nearest_neighbours", "project", "warm_umap",
    "ViewState", "parse_view",
]
