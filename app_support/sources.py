"""The shared sidebar: where the image comes from.

:func:`image_source_sidebar` draws the source picker in the sidebar and returns an
:class:`ImageSource` (or None when there is nothing to show yet). Four kinds:
a dataset (the demo ones always, plus ``CELLSEG_DATA`` / ``CELLSEG_CONFIG``), an
uploaded file with an optional ground-truth mask, a synthetic image with the
generator's knobs, and scikit-image's bundled samples that load offline.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from skimage import data as skimage_data

from cellseg_core.data import available_datasets, resolve_id, synthetic
from cellseg_core.io import as_float_image, read_ground_truth, read_image

from . import quotas, state
from .safe_text import md

__all__ = ["ImageSource", "SOURCE_KINDS", "SAMPLES", "datasets", "first_dataset", "image_source_sidebar",
           "select_dataset_image", "shared_sidebar"]

SOURCE_KINDS = ("Dataset", "Upload", "Synthetic", "Sample")
#: Samples that load offline: name -> (loader name, kind). scikit-image's loaders whose
#: file ships inside the wheel (:data:`BUNDLED_FILES`; ``human_mitosis`` and the like are
#: downloaded by pooch on first use, so they are not offered), and the fluorescence
#: tutorial's seed image, generated here (:data:`SEED_SAMPLE`).
SAMPLES = {
    "immunohistochemistry (IHC, 512²)": ("immunohistochemistry", "cytology"),
    "cell (660×550)": ("cell", "cytology"),
    "fluorescence nuclei (the tutorial's seed image, 128²)": ("seed-fluorescence",
                                                              "fluorescence"),
}
#: The loader that generates the tutorial's seed image instead of reading a file.
SEED_SAMPLE = "seed-fluorescence"
#: scikit-image loader -> the file it reads from the installed package (no download).
BUNDLED_FILES = {"immunohistochemistry": "ihc.png", "cell": "cell.png"}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "npy"]

# Session keys of the sidebar (shared by every page).
K_SYNTH_KIND = "source.synthetic.kind"
K_SAMPLE = "source.sample"
K_UPLOAD = "source.upload.image"
K_UPLOAD_MASK = "source.upload.mask"


@dataclass(frozen=True, eq=False)
class ImageSource:
    """One image to segment, with its ground truth when there is one.

    Attributes
    ----------
    name : str
        Shown to the user (e.g. ``"voced / 007"``).
    image : (M, N[, 3]) ndarray of float32 in [0, 1]
    mask : (M, N) ndarray of uint8 or None
        Class ground truth 0/1/2 (fluorescence: 0/2).
    instances : (M, N) ndarray of int32 or None
        Instance ground truth (fluorescence).
    digest : str
        Names the pixels in cache keys (same digest, same image).
    kind : {'cytology', 'fluorescence'}
        What the image looks like, to suggest a preset.
    dataset, image_id : str or None
        Set for a dataset image (mirrored in the URL).
    pixel_size : float or None
        Micrometres per pixel in force on the page (Explore sets it:
        :func:`app_support.pathology.with_pixel_size`); None: unknown, pixels.
    """

    name: str
    image: np.ndarray
    digest: str
    mask: np.ndarray | None = None
    instances: np.ndarray | None = None
    kind: str = "cytology"
    dataset: str | None = None
    image_id: str | None = None
    pixel_size: float | None = None

    @property
    def shape(self) -> tuple:
        return self.image.shape[:2]


# --- loaders (cached) -------------------------------------------------------------------
def _env_key() -> tuple:
    return (os.environ.get("CELLSEG_DATA", ""), os.environ.get("CELLSEG_CONFIG", ""))


@st.cache_resource(max_entries=4, show_spinner=False)
def _datasets(env: tuple):
    return available_datasets()


def datasets() -> dict:
    """Name -> Dataset of every configured dataset (demo ones first)."""
    return _datasets(_env_key())


def first_dataset(usable: dict) -> str:
    """The name a picker opens on: the first configured (real) dataset, else the first
    demo one (issue 22 point 4: a server with real data does not open on demo data)."""
    names = list(usable)
    return next((n for n in names if not usable[n].source.startswith("demo:")), names[0])


def pick_dataset(key: str, *, container=st, where=None, empty: str = "No dataset with "
                 "ground truth is configured: set CELLSEG_DATA to a dataset folder."):
    """A dataset selectbox (label "Dataset") over the datasets that pass `where`.

    A configured dataset (real data) is preselected before the built-in demo ones.
    Returns the chosen Dataset, or None (after `st.info(empty)`) when none qualifies.
    """
    usable = {n: d for n, d in datasets().items() if where is None or where(d)}
    if not usable:
        st.info(empty)
        return None
    names = list(usable)
    if st.session_state.get(key) not in usable:
        st.session_state[key] = first_dataset(usable)
    return usable[container.selectbox("Dataset", names, key=key)]


# Images are cached as read-only shared arrays (``cache_resource``), not with
# ``cache_data``: that keeps a pickled copy *and* unpickles a fresh copy on every rerun,
# 2 x 192 MB per rerun for a 4096² RGB image (issue 21 point 3, the page's memory).
def _frozen(value):
    """`value` with every ndarray in it (or itself) made read-only, for sharing."""
    for array in value if isinstance(value, tuple) else (value,):
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return value


@st.cache_resource(max_entries=16, show_spinner=False)
def _dataset_item(name: str, source: str, image_id: str, env: tuple):
    ds = datasets()[name]
    return _frozen((ds.image(image_id), ds.mask(image_id), ds.instances(image_id)))


@st.cache_resource(max_entries=8, show_spinner=False)
def _read_upload(digest: str, _data: bytes, filename: str):
    return _frozen(read_image(_data if filename is None else _named(_data, filename)))


@st.cache_resource(max_entries=8, show_spinner=False)
def _read_upload_mask(digest: str, _data: bytes, filename: str, shape: tuple):
    """(class mask, instances or None): a uint16/uint32 file is nucleus instances."""
    return _frozen(read_ground_truth(_named(_data, filename), shape=shape))


def _named(data: bytes, filename: str):
    buf = io.BytesIO(data)
    buf.name = filename
    return buf


@st.cache_data(max_entries=16, show_spinner=False)
def _synthetic(kind: str, knobs_json: str):
    knobs = json.loads(knobs_json)
    if kind == "cytology":
        sample = synthetic.cytology_image(**knobs)
        return sample.image, sample.mask, None
    sample = synthetic.fluorescence_image(**knobs)
    labels = sample.labels.astype(np.int32)
    return sample.image, (labels > 0).astype(np.uint8) * np.uint8(2), labels


@st.cache_data(max_entries=4, show_spinner=False)
def _sample(loader: str):
    if loader == SEED_SAMPLE:
        return synthetic.fluorescence_image(synthetic.SEED).image.astype(np.float32)
    if not bundled(loader):
        raise ValueError(f"scikit-image sample {loader!r} is not bundled (it would be "
                         "downloaded); only bundled samples are offered")
    return as_float_image(getattr(skimage_data, loader)(), name=loader)


def bundled(loader: str) -> bool:
    """Whether `loader`'s image ships with the project or inside scikit-image (so it loads
    without a network); never calls a loader that could download."""
    if loader == SEED_SAMPLE:
        return True
    name = BUNDLED_FILES.get(loader)
    return name is not None and (Path(skimage_data.__file__).parent / name).is_file()


@st.cache_data(max_entries=1, show_spinner=False)
def available_samples() -> list:
    """The entries of :data:`SAMPLES` that are bundled and load on this machine."""
    ok = []
    for label, (loader, _) in SAMPLES.items():
        if not bundled(loader):
            continue
        try:
            _sample(loader)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001  a sample needing pooch fails in many ways
            continue            # (under pytest, skimage even raises pytest's Skipped)
        ok.append(label)
    return ok


# --- widgets ----------------------------------------------------------------------------
def _step(delta: int) -> None:
    ds = datasets().get(st.session_state.get(state.SOURCE_DATASET))
    if ds is None or not ds.ids:
        return
    current = st.session_state.get(state.SOURCE_ID)
    i = ds.ids.index(current) if current in ds.ids else 0
    st.session_state[state.SOURCE_ID] = ds.ids[(i + delta) % len(ds.ids)]


def _on_dataset_change() -> None:
    ds = datasets().get(st.session_state.get(state.SOURCE_DATASET))
    if ds is not None and st.session_state.get(state.SOURCE_ID) not in ds.ids:
        st.session_state[state.SOURCE_ID] = ds.ids[0] if ds.ids else None


def select_dataset_image(dataset: str, image_id: str) -> None:
    """Point the sidebar at `image_id` of `dataset` (call before the sidebar is drawn).

    Raises
    ------
    ValueError
        For an unknown dataset or id (ids are checked by ``resolve_id``).
    """
    all_ds = datasets()
    if dataset not in all_ds:
        raise ValueError(f"unknown dataset {dataset!r}; available: {sorted(all_ds)}")
    resolve_id(all_ds[dataset], str(image_id))
    st.session_state[state.SOURCE_KIND] = "Dataset"
    st.session_state[state.SOURCE_DATASET] = dataset
    st.session_state[state.SOURCE_ID] = str(image_id)


def _init_from_query() -> None:
    if st.session_state.get("source.query_loaded"):
        return
    st.session_state["source.query_loaded"] = True
    query = st.query_params.to_dict()
    if state.QUERY_DATASET in query:
        try:
            state.check_link(query, (state.QUERY_DATASET, state.QUERY_IMAGE))
            select_dataset_image(query[state.QUERY_DATASET], query.get(state.QUERY_IMAGE) or
                                 datasets()[query[state.QUERY_DATASET]].ids[0])
        except (ValueError, KeyError, IndexError) as err:
            st.session_state["source.error"] = f"the link's image was not found: {md(err)}"


def _dataset_source() -> ImageSource | None:
    all_ds = datasets()
    names = list(all_ds)
    if st.session_state.get(state.SOURCE_DATASET) not in all_ds:
        st.session_state[state.SOURCE_DATASET] = first_dataset(all_ds)
    st.selectbox("Dataset", names, key=state.SOURCE_DATASET, on_change=_on_dataset_change,
                 help="Demo datasets are built in; add folders with the CELLSEG_DATA "
                      "environment variable (see the Help in the page).")
    ds = all_ds[st.session_state[state.SOURCE_DATASET]]
    if not ds.ids:
        st.warning(f"dataset {ds.name!r} holds no images")
        return None
    if st.session_state.get(state.SOURCE_ID) not in ds.ids:
        st.session_state[state.SOURCE_ID] = ds.ids[0]
    st.selectbox("Image id", ds.ids, key=state.SOURCE_ID)
    prev, nxt = st.columns(2)
    prev.button("◀ previous", key="source.prev", on_click=_step, args=(-1,),
                use_container_width=True)
    nxt.button("next ▶", key="source.next", on_click=_step, args=(1,),
               use_container_width=True)
    image_id = st.session_state[state.SOURCE_ID]
    try:
        image, mask, instances = _dataset_item(ds.name, ds.source, image_id, _env_key())
    except ValueError as err:
        st.error(f"cannot read {ds.name} / {image_id}: {err}")
        return None
    split = next((part for part, ids in (ds.split or {}).items() if image_id in ids), None)
    st.caption(f"{ds.kind}, {len(ds.ids)} images"
               + (f"; this one is in the {split} split" if split else "")
               + ("" if mask is not None else "; no ground truth"))
    return ImageSource(name=f"{ds.name} / {image_id}", image=image, mask=mask,
                       instances=instances, digest=f"ds:{ds.name}:{ds.source}:{image_id}",
                       kind=ds.kind, dataset=ds.name, image_id=image_id)


def _upload_source() -> ImageSource | None:
    up = quotas.accepted(st.file_uploader(  # quotas: issue 21 point 5
        "Image (PNG, JPEG, TIFF 8/16-bit, NPY)", type=UPLOAD_TYPES, key=K_UPLOAD))
    up_mask = quotas.accepted(st.file_uploader(
        "Ground truth (optional: a 0/1/2 class mask, or nucleus instances as a uint16 "
        "TIFF)", type=["png", "tif", "tiff", "npy"],
        key=K_UPLOAD_MASK))
    if up is None:
        st.info("Upload an image to segment it.")
        return None
    data = up.getvalue()
    digest = "up:" + hashlib.sha256(data).hexdigest()[:32]
    try:
        image = _read_upload(digest, data, up.name)
    except ValueError as err:
        st.error(f"Cannot use this image: {md(err)}")
        return None
    mask = instances = None
    if up_mask is not None:
        mdata = up_mask.getvalue()
        try:
            mask, instances = _read_upload_mask(hashlib.sha256(mdata).hexdigest(), mdata,
                                                up_mask.name, image.shape[:2])
        except ValueError as err:
            st.error(f"Cannot use this mask: {md(err)}")
    return ImageSource(name=up.name, image=image, mask=mask, instances=instances,
                       digest=digest, kind=_upload_kind(digest, image))


def upload_kind(image: np.ndarray) -> str:
    """"fluorescence" or "cytology" for an uploaded image: fluorescence when the
    background is dark, the median of each pixel's brightest channel under 0.3 (so an
    RGB DAPI export counts too, as a gray one always did: issue 22 point 5)."""
    brightest = image if image.ndim == 2 else image.max(axis=-1)
    return "fluorescence" if float(np.median(brightest)) < 0.3 else "cytology"


@st.cache_data(max_entries=64, show_spinner=False)
def _upload_kind(digest: str, _image: np.ndarray) -> str:
    return upload_kind(_image)


def _synthetic_source() -> ImageSource | None:
    kind = st.radio("Kind", ["cytology", "fluorescence"], key=K_SYNTH_KIND, horizontal=True)
    seed = st.number_input("Seed", 0, 2**31 - 1, synthetic.SEED, key="source.synthetic.seed")
    if kind == "cytology":
        size = st.select_slider("Size", [128, 256, 512, 1024, 2048], 256,
                                key="source.synthetic.c_size")
        fixed = st.checkbox("Choose the N/C ratio", key="source.synthetic.fix_nc")
        nc = st.slider("N/C ratio", 0.1, 2.0, 0.6, 0.05, key="source.synthetic.nc",
                       disabled=not fixed)
        knobs = {"rng": int(seed), "size": int(size), "nc_ratio": float(nc) if fixed else None}
    else:
        size = st.select_slider("Size", [64, 128, 256, 512, 1024, 2048], synthetic.IMAGE_SIZE,
                                key="source.synthetic.f_size")
        knobs = {
            "rng": int(seed), "size": int(size),
            "n_cells": st.slider("Cells", 1, 60, synthetic.N_CELLS, key="source.synthetic.n"),
            "sigma": st.slider("Cell sigma (px)", 1.0, 20.0, synthetic.CELL_SIGMA, 0.5,
                               key="source.synthetic.sigma"),
            "brightness": st.slider("Brightness", 0.1, 2.0, synthetic.CELL_BRIGHTNESS, 0.05,
                                    key="source.synthetic.brightness"),
            "noise": st.slider("Noise", 0.0, 0.5, synthetic.NOISE_SCALE, 0.01,
                               key="source.synthetic.noise"),
            "min_separation": st.slider("Min separation (px)", 0, 64,
                                        int(synthetic.MIN_SEPARATION),
                                        key="source.synthetic.sep"),
            "n_dim": st.slider("Dim cells", 0, 20, 0, key="source.synthetic.n_dim"),
            "dim_brightness": st.slider("Dim brightness", 0.05, 1.0,
                                        synthetic.DIM_BRIGHTNESS, 0.05,
                                        key="source.synthetic.dim_b"),
            "gradient": st.slider("Illumination gradient", 0.0, 1.0, 0.0, 0.05,
                                  key="source.synthetic.gradient"),
        }
    knobs_json = json.dumps(knobs, sort_keys=True)
    try:
        image, mask, instances = _synthetic(kind, knobs_json)
    except ValueError as err:
        st.error(f"Cannot generate this image: {err}")
        return None
    return ImageSource(name=f"synthetic {kind} (seed {seed})", image=image, mask=mask,
                       instances=instances, digest=f"syn:{kind}:{knobs_json}", kind=kind)


def _sample_source() -> ImageSource | None:
    names = available_samples()
    if not names:
        st.warning("No scikit-image sample loads on this machine.")
        return None
    label = st.selectbox("Sample", names, key=K_SAMPLE)
    loader, kind = SAMPLES[label]
    if loader == SEED_SAMPLE:
        st.caption("Generated by the fluorescence tutorial's model (seed "
                   f"{synthetic.SEED}); its true cells are on the Synthetic source.")
        return ImageSource(name="the tutorial's seed image", image=_sample(loader),
                           digest=f"sample:{loader}", kind=kind)
    st.caption("Bundled with scikit-image; no ground truth.")
    return ImageSource(name=f"scikit-image {loader}", image=_sample(loader),
                       digest=f"skimage:{loader}", kind=kind)


def image_source_sidebar() -> ImageSource | None:
    """Draw the image-source picker in the sidebar and return the chosen image."""
    _init_from_query()
    with st.sidebar:
        st.header("Image")
        if "source.error" in st.session_state:
            st.warning(st.session_state.pop("source.error"))
        if st.session_state.get(state.SOURCE_KIND) not in SOURCE_KINDS:
            st.session_state[state.SOURCE_KIND] = SOURCE_KINDS[0]
        kind = st.radio("Source", SOURCE_KINDS, key=state.SOURCE_KIND, horizontal=True)
        build = {"Dataset": _dataset_source, "Upload": _upload_source,
                 "Synthetic": _synthetic_source, "Sample": _sample_source}[kind]
        try:
            return build()
        except ValueError as err:
            st.error(str(err))
            return None


def shared_sidebar() -> ImageSource | None:
    """What every page shares: draw the image source and keep the chosen image
    under ``state.SOURCE_CURRENT`` for the page."""
    quotas.enforce_upload_limits()  # issue 21 point 5: before any uploader reads its files
    source = image_source_sidebar()
    st.session_state[state.SOURCE_CURRENT] = source
    return source
