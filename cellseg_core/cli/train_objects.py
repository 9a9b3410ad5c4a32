"""``cellseg train DATASET --method objects``: an object classifier (cell classes) from a
dataset's ``classes/<stem>.csv`` files (:mod:`cellseg_core.data.classes`), scored on the
test split's labelled nuclei."""
from __future__ import annotations

from ..data import dataset_from_spec, split_ids
from ..data.classes import classes_reader
from ..learn.objects import score_object_classifier, train_object_classifier
from ._common import EXIT_OK, say


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
    classes_of = classes_reader(dataset)
    say(f"training an object classifier on the labelled nuclei of {len(ids)} image(s) of "
        f"{dataset.name} ({args.split})")
    classifier = train_object_classifier(dataset, ids, classes_of,
                                         n_estimators=args.n_estimators, rng=args.seed)
    classifier.save(args.out)
    counts = ", ".join(f"{k} {v}" for k, v in classifier.training_counts_.items())
    say(f"fitted in {classifier.fit_seconds_:.1f} s on {counts}; saved to {args.out}; use it "
        f"with: cellseg segment ... --object-classifier {args.out}")
    test = list((dataset.split or {}).get("test") or [])
    if test and args.split != "test":
        scores = score_object_classifier(classifier, dataset, test, classes_of)
        if scores is None:
            say("no image of the test split has a class file: not scored")
        else:
            width = max(map(len, scores))
            for key, value in scores.items():
                shown = f"{value:.4f}" if isinstance(value, float) else value
                print(f"{key:<{width}}  {shown}")
    return EXIT_OK
