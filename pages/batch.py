"""Batch: one method over many images, every output in one zip.

Images (a configured dataset's, read through the dataset, or uploaded files held in
memory) + a method (a preset, the current Explore parameters, a saved JSON, or a
learned model) → a background run of :func:`cellseg_core.batch.run_batch` into a
private temporary folder (see :mod:`app_support.runs`) → the zip of its outputs from
:func:`cellseg_core.batch.zip_outputs`, after which the folder is removed → the
per-image table (``images.csv``), the failed images and one download button.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from app_support import disk, exports, methods, quotas, runs, sources, state, wording
from app_support.assets import read_asset
from app_support.safe_text import md
from app_support.router import require_frame
from cellseg_core import batch, units
from cellseg_core.presets import PRESETS

require_frame()  # a deep link on a fresh server must still go through app.py

PAGE = "batch"
K_INPUT = f"{PAGE}.input"
K_DATASET = f"{PAGE}.dataset"
K_SPLIT = f"{PAGE}.split"
K_LIMIT = f"{PAGE}.limit"
K_PICKED = f"{PAGE}.picked"
K_FILES = f"{PAGE}.files"
K_METHOD = f"{PAGE}.method"
K_PRESET = f"{PAGE}.preset"
K_JSON = f"{PAGE}.params_json"
K_MODEL = f"{PAGE}.model"
K_RUN = f"{PAGE}.run_button"
K_TABLE = f"{PAGE}.table"
K_DOWNLOAD = f"{PAGE}.download"

INPUTS = ("Dataset", "Upload")
SPLITS = ("all", "test", "train", "lab02-test", "lab02-train")  # lab02-*: split_lab02.json
METHODS = ("Preset", "Explore (current)", "Saved JSON", "Learned model")
UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "npy"]


# --- the run (background thread: core calls only, never Streamlit) ------------------------
def _batch_work(run: runs.Run, inputs, method) -> dict:
    """Work of a batch run: outputs in a private temporary folder, returned as a zip.

    `inputs` is a dataset plus ids, ``("dataset", Dataset, ids)``, or
    ``("files", [(name, bytes), ...])``. Dataset images are read here, in the thread
    (the first half of the progress), then segmented (the second half).
    """
    if inputs[0] == "dataset":
        _, ds, ids = inputs
        n = len(ids)
        items = []
        # The dataset's dataset.json pixel size (µm²-columns, TIFF tags); none for demo sets.
        size = units.dataset_pixel_size(ds.source) if Path(ds.source).is_dir() else None
        for i, image_id in enumerate(ids):
            run.progress(i, 2 * n, f"reading {image_id}")
            items.append(batch.BatchItem(image_id, ds.image(image_id), ds.mask(image_id),
                                         image_id, size))
        offset = n
    else:
        items = batch.find_inputs(inputs[1])
        n, offset = len(items), 0

    with tempfile.TemporaryDirectory(prefix="cellseg-batch-") as tmp:
        def progress(done, total, name):
            run.progress(offset + done, offset + total, f"image {done} of {total}"
                         + (f" ({name})" if name else ""))
            if done < total:
                disk.check_free(tmp, done, total)  # before the next image's outputs

        disk.check_free(tmp, 0, len(items))
        result = batch.run_batch(items, tmp, method, progress=progress)
        archive = batch.zip_outputs(tmp)
        page = exports.run_report_bytes(tmp, items)
    return {"images": result.images, "failed": list(result.failed), "zip": archive,
            "report": page,
            "seconds": result.seconds, "n_objects": len(result.objects)}


# --- pickers -------------------------------------------------------------------------------
def _pick_inputs():
    """The images: ``("dataset", ds, ids)``, ``("files", pairs)`` or None; and a name."""
    kind = st.radio("Images", INPUTS, key=K_INPUT, horizontal=True,
                    help="A configured dataset's images, or files from your computer.")
    if kind == "Upload":
        files = quotas.accepted(st.file_uploader(  # quotas: issue 21 point 5
            "Images", type=UPLOAD_TYPES, accept_multiple_files=True, key=K_FILES,
            help="Held in memory for this run only."))
        if not files:
            st.info("Upload one or more images.")
            return None, ""
        # Outputs are named after the file (labels/<name>.tif): files of the same name
        # get -2, -3... rather than a refusal (issue 22 point 7).
        names, renamed = wording.unique_upload_names([f.name for f in files])
        if renamed:
            st.info("Some files have the same name, so their results are saved under new "
                    "names: " + ", ".join(f"{md(old)} → {md(new)}" for old, new in renamed)
                    + ".")
        return ("files", [(n, f.getvalue()) for n, f in zip(names, files)]), "upload"
    c1, c2, c3 = st.columns([2, 1, 1])
    ds = sources.pick_dataset(K_DATASET, container=c1)
    splits = [s for s in SPLITS if s == "all" or (ds.split and s in ds.split)]
    if st.session_state.get(K_SPLIT) not in splits:
        st.session_state[K_SPLIT] = splits[0]
    split = c2.radio("Split", splits, key=K_SPLIT, horizontal=True)
    ids = list(ds.ids if split == "all" else ds.split[split])
    if not ids:
        st.info(f"The {split} split of {ds.name} is empty.")
        return None, ""
    picked = (ds.name, split)
    if st.session_state.get(K_PICKED) != picked or not 1 <= st.session_state.get(
            K_LIMIT, 0) <= len(ids):
        st.session_state[K_PICKED] = picked  # another dataset or split: all its images
        st.session_state[K_LIMIT] = len(ids)
    limit = c3.number_input("Images (first N)", min_value=1, max_value=len(ids), step=1,
                            key=K_LIMIT)
    return ("dataset", ds, ids[:int(limit)]), f"{ds.name}_{split}"


def _pick_method():
    """The method (a Segmenter, see :mod:`app_support.methods`), or None with st.error."""
    offered = methods.catalogue()
    presets = [n for n in offered if n in PRESETS]
    models = {n.removeprefix("model:"): m for n, m in methods.learned_methods().items()}
    choices = [m for m in METHODS if m != "Learned model" or models]
    if st.session_state.get(K_METHOD) not in choices:
        st.session_state[K_METHOD] = choices[0]
    kind = st.radio("Method", choices, key=K_METHOD, horizontal=True)
    if kind == "Preset":
        if st.session_state.get(K_PRESET) not in presets:
            st.session_state[K_PRESET] = state.current_preset()
        return offered[st.selectbox("Preset", presets, key=K_PRESET)]
    if kind == "Explore (current)":
        st.caption("The parameters now set on the Explore page.")
        return offered[methods.EXPLORE]
    if kind == "Learned model":
        return models[st.selectbox("Model", list(models), key=K_MODEL)]
    up = quotas.accepted(st.file_uploader(  # quotas: issue 21 point 5
        "Parameters (JSON)", type=["json"], key=K_JSON,
        help="A file saved from Explore, or a batch run's params.json."))
    if up is None:
        st.info("Upload a parameters file.")
        return None
    try:
        return methods.uploaded_params(up.name, up.getvalue())
    except (ValueError, UnicodeDecodeError) as err:
        st.error(f"{md(up.name)} is not a parameters file: {md(err)}")
        return None


# --- display -------------------------------------------------------------------------------
def _results(run: runs.Run) -> None:
    res = run.result
    images = res["images"]
    ok = int((images["status"] == "ok").sum())
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images", len(images))
    c2.metric("Failed", len(res["failed"]))
    c3.metric("Objects", res["n_objects"])
    scored = images["mean_dice"].dropna()
    c4.metric("Mean Dice", f"{scored.mean():.4f}" if len(scored) else "—",
              help="Over the images with ground truth" if len(scored) else
              "No image had ground truth")
    st.caption(f"{md(run.label)} · {ok} segmented in {res['seconds']:.1f} s")
    st.download_button("Download all outputs (zip)", res["zip"],
                       file_name=wording.download_name(
                           "batch", "zip", image=run.config["name"],
                           method=run.config["method"]),
                       mime="application/zip", key=K_DOWNLOAD, type="primary",
                       on_click="ignore",
                       help="labels/ and nuclei/ TIFFs, images.csv, objects.csv, params.json")
    exports.render_run_report_download(PAGE, res.get("report"), run.config["name"])
    if res["failed"]:
        st.error("Failed images:\n" + "\n".join(f"- **{md(name)}**: {md(message)}"
                                                for name, message in res["failed"]))
    st.dataframe(wording.readable(images), hide_index=True, key=K_TABLE)
    st.caption("The CSV files in the zip keep short column names (`mean_dice`, "
               "`nc_ratio`...); the README's column dictionary says what each holds.")


def main() -> None:
    st.title("Batch")
    st.caption("One method over many images: label TIFFs, tables and parameters in one zip.")
    with st.expander("How to use this page"):
        st.markdown(read_asset("batch.md"))
    inputs, name = _pick_inputs()
    method = _pick_method()
    ready = inputs is not None and method is not None
    if st.button("Run batch", key=K_RUN, type="primary", disabled=not ready):
        n = len(inputs[2]) if inputs[0] == "dataset" else len(inputs[1])
        runs.start(PAGE, f"batch of {n} image(s) with {method.name}", _batch_work, inputs,
                   method, config={"name": name, "method": method.name})
    run = runs.follow(PAGE, "batch", cancelled="The batch was stopped; nothing was kept.")
    if run is not None:
        _results(run)


main()
