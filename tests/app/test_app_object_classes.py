"""Explore's "Classify cells" section through AppTest: examples given by cell id (the
clicks' other door), Train, every cell's predicted class, counts, the model file out and
back in, a foreign file refused."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")

from app_support import object_classes  # noqa: E402
from cellseg_core.data.synthetic import two_type_cells  # noqa: E402
from cellseg_core.learn.objects import ObjectClassifier  # noqa: E402
from cellseg_core.measure import region_stats  # noqa: E402
from tests._support.apptest import page_app, run  # noqa: E402
from tests._support.cells import QUERY, found_cells, write_two_type_dataset  # noqa: E402

K = "explore.cls"
NAMES = ["round", "long"]


@pytest.fixture
def at(monkeypatch, tmp_path):
    root, samples = write_two_type_dataset(tmp_path / "cells")
    app = page_app(monkeypatch, "explore.py", data=root)
    for name, value in (pair.split("=") for pair in QUERY.split("&")):
        app.query_params[name] = value
    app = run(app)
    app.segmented_control(key="explore.tab").set_value("Classify cells")
    return run(app), samples[0]


def _counts(at) -> pd.DataFrame:
    """The table of counts per class the section shows."""
    tables = [d.value for d in at.dataframe if {"class", "count"} <= set(d.value.columns)]
    assert len(tables) == 1, [list(d.value.columns) for d in at.dataframe]
    return tables[0]


@pytest.mark.slow
def test_classify_cells_by_id_train_and_see_counts(at, tmp_path):
    at, sample = at
    assert at.text_input(key=f"{K}.names_text").value == "tumour, lymphocyte, stroma, other"
    at.text_input(key=f"{K}.names_text").set_value(", ".join(NAMES))
    at = run(at)
    assert at.radio(key=f"{K}.current").options == [*NAMES, "(remove class)"]
    # The nuclei Explore measures, typed by the ground truth under their centroids.
    image, seg, labels, truth = found_cells(tmp_path / "cells", sample)
    picks = [*labels[truth == 0][:3], *labels[truth == 1][:3]]
    for label, kind in zip(picks, [0, 0, 0, 1, 1, 1]):
        at.radio(key=f"{K}.current").set_value(NAMES[kind])
        at.number_input(key=f"{K}.cell_id").set_value(int(label))
        at = run(at.button(key=f"{K}.assign").click())
    assert len(at.session_state[f"{K}.examples"]) == 6
    # Train: a forest on the six examples.
    at = run(at.button(key=f"{K}.train").click())
    model = at.session_state[f"{K}.model"]
    assert isinstance(model, ObjectClassifier) and model.class_names == tuple(NAMES)
    assert model.training_counts_ == {"round": 3, "long": 3}
    counts = _counts(at)
    assert counts["class"].tolist() == NAMES
    assert counts["count"].sum() == len(labels)
    # Six examples tell the two types apart on every other cell of the image.
    predicted = model.predict(model.features(image, seg.nuclei, seg.labels)[1])
    known = truth >= 0
    assert (predicted[known] == np.array(NAMES, object)[truth[known]]).mean() >= 0.95
    assert counts.set_index("class")["count"].to_dict() == pd.Series(predicted).value_counts(
        ).reindex(NAMES, fill_value=0).to_dict()
    assert "cells_per_megapixel" in counts
    assert any("per megapixel" in c.value for c in at.caption)
    # The model file: what the download gives loads and predicts the same.
    data = model.to_bytes()
    back = ObjectClassifier.load(data)
    x = model.features(image, seg.nuclei, seg.labels)[1]
    assert np.array_equal(back.predict_proba(x), model.predict_proba(x))


def test_rename_keeps_examples_and_renames_the_model(at):
    at, _ = at
    at.text_input(key=f"{K}.names_text").set_value("a, b")
    at = run(at)
    ids = sorted(at.session_state[f"{K}.examples"]) or None
    assert ids is None
    first = at.number_input(key=f"{K}.cell_id").value
    at.radio(key=f"{K}.current").set_value("a")
    at = run(at.button(key=f"{K}.assign").click())
    at = run(at.button(key=f"{K}.train").click())
    assert at.session_state[f"{K}.model"] is None
    assert any("at least two classes" in w.value for w in at.warning)
    at.number_input(key=f"{K}.cell_id").set_value(first + 1)
    at.radio(key=f"{K}.current").set_value("b")
    at = run(at.button(key=f"{K}.assign").click())
    at = run(at.button(key=f"{K}.train").click())
    assert at.session_state[f"{K}.model"].class_names == ("a", "b")
    at.text_input(key=f"{K}.names_text").set_value("tumour, lymphocyte")
    at = run(at)
    assert at.session_state[f"{K}.model"].class_names == ("tumour", "lymphocyte")
    assert len(at.session_state[f"{K}.examples"]) == 2
    assert _counts(at)["class"].tolist() == [
        "tumour", "lymphocyte"]
    at.text_input(key=f"{K}.names_text").set_value("lymphocyte, tumour")  # a swap
    at = run(at)
    assert at.session_state[f"{K}.model"].class_names == ("lymphocyte", "tumour")
    at.text_input(key=f"{K}.names_text").set_value("only one")
    at = run(at)
    assert any("2 to 8 class names" in e.value for e in at.error)


def test_parse_class_names():
    assert object_classes.parse_class_names("a,b, c") == ["a", "b", "c"]
    for bad in ("a", "a, a", ",".join("abcdefghi")):
        with pytest.raises(ValueError):
            object_classes.parse_class_names(bad)


def test_classes_figure_points_carry_labels():
    s = two_type_cells(1, size=64)
    stats = region_stats(s.nuclei)
    centres = stats[["centroid_row", "centroid_col"]].to_numpy()
    ids = stats["label"].to_numpy()
    fig = object_classes.classes_figure(
        s.image, centres, ids, colors=["#E69F00"] * len(ids), hover=["h"] * len(ids),
        annotated=[True] + [False] * (len(ids) - 1), legend={"a": "#E69F00", "b": "#56B4E9"})
    fig.to_dict()  # valid plotly
    cells = fig.data[0]
    assert [c[0] for c in cells.customdata] == ids.tolist()
    assert list(cells.x) == pytest.approx(centres[:, 1]) and list(cells.y) == pytest.approx(
        centres[:, 0])
    assert list(cells.marker.size) == [15] + [10] * (len(ids) - 1)
    assert [t.name for t in fig.data[1:]] == ["a", "b"]
    assert fig.layout.clickmode == "event+select"


def _upload(at, name: str, data: bytes):
    at.file_uploader(key=f"{K}.upload").set_value((name, data, "application/octet-stream"))
    return run(at)


@pytest.mark.slow
def test_model_file_upload_and_foreign_files_refused(at, tmp_path):
    """A classifier file loads (classes and all); a pixel classifier's file, a text
    file and a pickle are refused with the reason, and the classifier is unchanged."""
    import re

    at, sample = at
    clf = ObjectClassifier(["small", "large"], n_estimators=10)
    ids, x, _ = clf.features(sample.image, sample.nuclei, sample.labels)
    clf.fit(x, sample.types[ids - 1], rng=0)
    at = _upload(at, "cells.cellseg-model", clf.to_bytes())
    model = at.session_state[f"{K}.model"]
    assert model.class_names == ("small", "large")
    assert at.text_input(key=f"{K}.names_text").value == "small, large"
    assert _counts(at)["count"].sum() > 0
    from cellseg_core.learn import FeatureSettings, PixelClassifier
    from cellseg_core.params import CleanupParams

    mask = sample.labels
    pixel = PixelClassifier(FeatureSettings(scale=1, sigma_max=2), n_estimators=3,
                            cleanup=CleanupParams()).fit([sample.image], [mask], rng=0)
    pickle_bomb = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R."
    for name, data, reason in [("pixel.cellseg-model", pixel.to_bytes(), "not an object"),
                               ("notes.txt", b"label,class\n1,a\n", "not a cellseg model"),
                               ("evil.pkl", pickle_bomb, "not a cellseg model")]:
        at = _upload(at, name, data)
        shown = [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]  # shown escaped
        assert any(f"{name} is not a usable object classifier" in e and reason in e
                   for e in shown), shown
        assert at.session_state[f"{K}.model"] is model


# --- the Train page -----------------------------------------------------------------------
@pytest.mark.slow
def test_train_page_fits_on_class_files_and_hands_it_to_explore(monkeypatch, tmp_path):
    """The Train page's object classifier: trained on the dataset's class files, scored on
    its test split as the core scores it, then used by Explore's section."""
    from cellseg_core.data import open_dataset
    from cellseg_core.data.classes import classes_reader
    from cellseg_core.learn.objects import score_object_classifier
    from tests._support.cells import CLASS_NAMES, write_classified_dataset

    root = write_classified_dataset(tmp_path / "cells", n=4, n_train=2)
    at = run(page_app(monkeypatch, "train.py", data=root))
    assert at.session_state["train.obj.dataset"] == "cells"
    assert any("2 of 2 training images have a class file; 2 test images" in c.value
               for c in at.caption)
    at = run(at.button(key="train.obj.train").click())
    classifier, scores, name = at.session_state["train.obj.result"]
    assert classifier.class_names == CLASS_NAMES and name == "cells"
    assert sum(classifier.training_counts_.values()) == 2 * 16
    ds = open_dataset(root)
    expected = score_object_classifier(classifier, ds, ["002", "003"], classes_reader(ds))
    assert scores == expected and scores["accuracy"] >= 0.95
    shown = " ".join(m.value for m in at.markdown)
    assert f"accuracy **{scores['accuracy']:.3f}**" in shown
    at = run(at.button(key="train.obj.use").click())
    assert at.session_state[f"{K}.model"] is classifier
    assert at.session_state[f"{K}.names"] == list(CLASS_NAMES)


def test_train_page_without_class_files_says_so(monkeypatch, tmp_path):
    root, _ = write_two_type_dataset(tmp_path / "plain", n=1, size=64)
    at = run(page_app(monkeypatch, "train.py", data=root))
    assert any("No dataset with a classes/ folder" in i.value for i in at.info)
