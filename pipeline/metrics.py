"""Task metrics, computed with scikit-learn (the conventions of the public baselines).

- multi-label: a class is predicted when its sigmoid probability is > 0.5; F1 macro is the
  headline (MM-IMDb), micro, weighted and samples averages are reported beside it. Every class
  column counts in the macro average, including a class with no positives in the split and no
  predictions: sklearn scores it 0 (`zero_division=0`), so a split missing a class is visibly
  penalised rather than silently averaged over fewer classes.
- single-label: accuracy of the arg-max class.
- binary tasks with metric `auroc` (Hateful Memes): ROC AUC of the positive class probability;
  NaN on a split that holds one class only. A task of more than two classes cannot ask for it
  (`DatasetInfo` refuses it).

scikit-learn is imported where a score is computed (in the decoder processes): it takes about
2 s, which a run that finds every evaluation in the store would spend for nothing.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5


def multilabel_scores(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    predictions = (probabilities > THRESHOLD).astype(int)
    return {
        f"f1_{average}": float(f1_score(targets, predictions, average=average, zero_division=0))
        for average in ("macro", "micro", "weighted", "samples")
    }


def single_label_scores(targets: np.ndarray, probabilities: np.ndarray, metric: str) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, roc_auc_score

    scores = {"accuracy": float(accuracy_score(targets, probabilities.argmax(axis=1)))}
    if metric == "auroc":  # undefined (NaN) when the split holds one class only
        if probabilities.shape[1] != 2:  # DatasetInfo refuses such a task: this is a bug, not bad data
            raise ValueError(f"auroc scores a two-class task, not one with {probabilities.shape[1]} classes")
        defined = len(np.unique(targets)) == 2
        scores["auroc"] = float(roc_auc_score(targets, probabilities[:, 1])) if defined else float("nan")
    return scores


def task_scores(
    label_kind: str, metric: str, targets: np.ndarray, probabilities: np.ndarray
) -> dict[str, float]:
    """All scores of a task; the dataset's headline metric is among the keys."""
    if label_kind == "multi":
        return multilabel_scores(targets, probabilities)
    return single_label_scores(targets, probabilities, metric)


def gap_closed(restorer: float, zero: float, oracle: float) -> float:
    """(restorer - zero) / (oracle - zero): 0 is zero-filling, 1 is the complete-data bound.

    Undefined (NaN) unless the oracle beats zero-filling: with no gap (oracle == zero) there is
    nothing to close, and with oracle < zero the ratio flips sign, so a restorer worse than zero
    would read as more than closing the gap (0.45 vs zero 0.50 and oracle 0.48: 2.5).
    """
    if not oracle > zero:
        return float("nan")
    return (restorer - zero) / (oracle - zero)
