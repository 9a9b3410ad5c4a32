"""The lesson "Why supervision pays" walked through in AppTest: every step's numbers
against the core (the study's methods), its questions answered."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")

from app_support import lessons  # noqa: E402
from app_support import supervision as S  # noqa: E402
from cellseg_core.data import open_dataset  # noqa: E402
from cellseg_core.learn.clusters import (kmeans_clusters, match_clusters,  # noqa: E402
                                         meanshift_clusters, study_features)
from cellseg_core.learn.forests import StudyForest, study_scores  # noqa: E402
from tests._support.apptest import page_app  # noqa: E402
from tests._support.data import shared_set  # noqa: E402

P = "lesson_sup"


def _run(at):
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if not e.value.startswith("Not quite")], \
        [e.value for e in at.error]
    return at


def _metric(at, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; shown: {[m.label for m in at.metric]}"
    return found[0]


def _text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def _next(at):
    return _run(at.button(key=f"{P}.next").click())


@pytest.mark.slow
def test_supervision_lesson_on_voced(monkeypatch):
    folder = shared_set("voced")
    ds = open_dataset(folder)
    at = page_app(monkeypatch, "lesson_supervision.py", folder, timeout=300)
    at = _run(at)
    assert at.session_state[lessons.step_key(P)] == 0
    id = S.lesson_ids(ds)[0]
    image, truth = ds.image(id), ds.mask(id)
    features = study_features(image)
    # Step 1: k-means K = 3, then K = 5 (two surplus clusters, scored 0).
    match = match_clusters(kmeans_clusters(None, 3, rng=S.SEED, features=features), truth)
    assert _metric(at, "Study Dice") == f"{match.score:.4f}"
    assert f"study Dice **{match.score:.3f}**" in _text(at)
    at.select_slider(key=f"{P}.w.k").set_value(5)
    at = _run(at)
    match5 = match_clusters(kmeans_clusters(None, 5, rng=S.SEED, features=features), truth)
    assert _metric(at, "Surplus clusters") == "2" == str(match5.n_surplus)
    assert _metric(at, "Study Dice") == f"{match5.score:.4f}"
    assert match5.score < match.score

    at = _next(at)                                               # 2 the sweep
    table = at.dataframe[0].value
    assert table["setting"].tolist() == ["K=3", "K=4", "K=5", "quantile=0.3", "K=3"]
    k = table[table["method"] == "k-means"].set_index(["features", "setting"])["study_dice"]
    assert k[("rgb", "K=3")] > k[("rgb", "K=4")] > k[("rgb", "K=5")]
    at.radio(key=f"{P}.quiz_k").set_value("K = 3")
    at = _run(at)
    assert at.success and "K = 3" in at.success[0].value

    at = _next(at)                                               # 3 mean-shift
    at.slider(key=f"{P}.w.quantile").set_value(0.8)
    at = _run(at)
    clusters, bandwidth = meanshift_clusters(None, quantile=0.8, rng=S.SEED, features=features)
    assert _metric(at, "Bandwidth") == f"{bandwidth:.2f}"
    assert _metric(at, "Clusters found") == str(int(clusters.max()) + 1)

    at = _next(at)                                               # 4 forests
    images = [ds.image(i) for i in S.train_ids(ds)]
    masks = [ds.mask(i) for i in S.train_ids(ds)]
    test = [ds.image(i) for i in S.lesson_ids(ds)], [ds.mask(i) for i in S.lesson_ids(ds)]
    patch = StudyForest("patch", **S.FOREST).fit(images, masks, rng=S.SEED)
    patch_err = study_scores(patch, *test)["misclassification"].mean()
    assert _metric(at, "Misclassification, patches") == f"{patch_err:.4f}"
    forests = at.dataframe[0].value.set_index("forest on")["misclassification"]
    assert forests["9×9 patches + mode filter"] < forests["raw gray pixels"]

    at = _next(at)                                               # 5 learned models
    learned = at.dataframe[0].value.set_index("method")
    unsupervised = learned[learned["supervision"] == "none"]["mean_dice"]
    supervised = learned[learned["supervision"] == "train masks"]["mean_dice"]
    assert supervised.min() > unsupervised.max()  # why supervision pays
    best = learned["mean_dice"].idxmax()
    at.radio(key=f"{P}.quiz_best").set_value(best)
    at = _run(at)
    assert at.success and best in at.success[0].value
    assert "ImageNet" in _text(at)
    assert at.button(key=f"{P}.next").disabled


@pytest.mark.slow
def test_supervision_lesson_on_demo_data(monkeypatch):
    at = _run(page_app(monkeypatch, "lesson_supervision.py", None, timeout=300))
    for _ in range(4):
        at = _next(at)
    assert at.session_state[lessons.step_key(P)] == 4
    assert len(at.dataframe[0].value) >= 4


def test_lesson_is_listed_in_the_app():
    from tests._support.apptest import REPO

    assert "pages/lesson_supervision.py" in (REPO / "app.py").read_text()
