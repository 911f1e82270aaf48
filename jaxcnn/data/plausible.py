"""Whether a data set's labels can train a classifier for its test set.

A labels file can be valid IDX and still make training meaningless: every training
label 11 while the test labels are 0-9 loads as 12 classes, trains, and scores 0. Here
``label_problems`` says what is implausible, from the label counts alone:

* serious (``jaxcnn train`` refuses unless ``--ignore-label-warnings``): a single
  training class; a test set none of whose classes occur in training;
* minor (a warning): some test classes never occur in training; classes with no image
  in either split (the class count then comes from a declared name list or the
  largest label), except a number the mapping file itself skips (``"(unused)"``).

``jaxcnn data`` shows both kinds as warnings.
"""

from __future__ import annotations

import numpy as np

UNUSED = "(unused)"  # a label number a mapping file skips (idx_layout.UNUSED): no warning


def _names(class_names, indices, limit: int = 8) -> str:
    shown = [class_names[i] for i in indices[:limit]]
    return ", ".join(shown) + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


def label_problems(train_labels: np.ndarray, test_labels: np.ndarray,
                   class_names) -> tuple[list[str], list[str]]:
    """``(serious, minor)`` problems of int labels ``train_labels`` (N,) and
    ``test_labels`` (M,) in ``range(len(class_names))``, each a phrase for one line."""
    k = len(class_names)
    train = np.bincount(train_labels, minlength=k)
    test = np.bincount(test_labels, minlength=k)
    serious: list[str] = []
    minor: list[str] = []
    seen = np.flatnonzero(train)
    if len(seen) == 1:
        serious.append(f"all {len(train_labels):,} training labels are class "
                       f"{class_names[seen[0]]}: a model trained on one class predicts it for "
                       "every image")
    unseen = np.flatnonzero((test > 0) & (train == 0))
    if len(unseen):
        n = int(test[unseen].sum())
        phrase = (f"{n:,} of the {len(test_labels):,} test images belong to classes that no "
                  f"training image has ({_names(class_names, unseen)}), so they can never be "
                  "classified correctly")
        (serious if n == len(test_labels) else minor).append(phrase)
    empty = np.array([i for i in np.flatnonzero((train == 0) & (test == 0))
                      if class_names[i] != UNUSED], int)  # EMNIST letters' label 0: declared
    if len(empty):
        minor.append(f"{len(empty)} of the {k} classes have no image in either split "
                     f"({_names(class_names, empty)})")
    return serious, minor
