"""``cellseg train DATASET --method objects``: an object classifier (cell classes) from a
dataset's ``classes/<stem>.csv`` files (:mod:`cellseg_core.data.classes`), scored on the
test split's labelled nuclei."""
from __future__ import annotations

import numpy as np

from ..data import dataset_from_spec, split_ids
from ..data.classes import classes_file, read_classes
from ..learn.objects import ObjectClassifier, dataset_nuclei, train_object_classifier
from ._common import EXIT_OK, say


def _classes_of(dataset):
    def classes_of(id):
        path = classes_file(dataset, id)
        return None if path is None else read_classes(path)
    return classes_of


def _score(classifier: ObjectClassifier, dataset, ids, classes_of) -> dict | None:
    """Accuracy over the labelled nuclei of `ids` (None when none is labelled)."""
    truth, predicted = [], []
    for id in ids:
        table = classes_of(id)
        if table is None:
            continue
        mask = dataset.mask(id)
        found = classifier.classify(dataset.image(id), dataset_nuclei(dataset, id, mask), mask)
        merged = table.merge(found, on="label", suffixes=("_true", ""))
        truth.extend(merged["class_true"])
        predicted.extend(merged["class"])
    if not truth:
        return None
    truth, predicted = np.array(truth, object), np.array(predicted, object)
    recalls = [float((predicted[truth == c] == c).mean()) for c in np.unique(truth)]
    return {"test_objects": len(truth), "accuracy": float((truth == predicted).mean()),
            "balanced_accuracy": float(np.mean(recalls))}


def run(args) -> int:
    """Fit an object classifier on the split's items that have class files, save it,
    and score it on the test split's labelled nuclei when there are any."""
    dataset = dataset_from_spec(args.dataset)
    if not dataset.has_masks:
        raise ValueError(f"{args.dataset}: has no masks (nuclei to measure)")
    ids = split_ids(dataset, args.split, note=say)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        ids = ids[:args.limit]
    classes_of = _classes_of(dataset)
    say(f"training an object classifier on the labelled nuclei of {len(ids)} image(s) of "
        f"{dataset.name} ({args.split})")
    tables = [t for t in map(classes_of, ids) if t is not None]
    if not tables:
        raise ValueError(f"{args.dataset}: no image of the {args.split} split has a class file "
                         "(classes/<stem>.csv with the columns label,class)")
    names = sorted(set().union(*(set(t["class"]) for t in tables)))
    if len(names) < 2:
        raise ValueError(f"{args.dataset}: the class files name only {names}: an object "
                         "classifier needs examples of at least two classes")
    classifier = train_object_classifier(
        dataset, ids, classes_of, ObjectClassifier(names, n_estimators=args.n_estimators),
        rng=args.seed)
    classifier.save(args.out)
    counts = ", ".join(f"{k} {v}" for k, v in classifier.training_counts_.items())
    say(f"fitted in {classifier.fit_seconds_:.1f} s on {counts}; saved to {args.out}; use it "
        f"with: cellseg segment ... --object-classifier {args.out}")
    test = list((dataset.split or {}).get("test") or [])
    if test and args.split != "test":
        scores = _score(classifier, dataset, test, classes_of)
        if scores is None:
            say("no image of the test split has a class file: not scored")
        else:
            width = max(map(len, scores))
            for key, value in scores.items():
                shown = f"{value:.4f}" if isinstance(value, float) else value
                print(f"{key:<{width}}  {shown}")
    return EXIT_OK
