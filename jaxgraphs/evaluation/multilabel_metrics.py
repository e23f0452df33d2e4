"""Multi-label recognition metrics (NumPy, host side): per-class AP / mAP and CP, CR, CF1, OP, OR, OF1.

Conventions shared by every function here:

- `scores` / `probs` and `targets` are (num_examples, num_classes); targets are 0/1 (or bool).
- `weights` (same shape, optional, non-negative) marks entries to ignore with 0, e.g. a VOC class present in
  an image only as "difficult" objects. An ignored entry is left out of that class's ranking and counts
  neither as predicted nor as true. Other values act as per-entry counts (as scikit-learn's `sample_weight`).
- Every metric is a fraction in [0, 1] (multiply by 100 for the percentages the papers print).

Ties in the scores: precision and recall are only read at distinct score thresholds, i.e. a group of tied
entries is retrieved all at once (as scikit-learn does). The result therefore never depends on the order of
the examples. For tie-free scores this equals the per-rank computation of the SSGRL / VOC devkit code
exactly; that code instead breaks ties by the (unstable) order of `np.argsort(-scores)`. Why the area AP and
not VOC 2007's 11-point AP, and the CF1 / OF1 conventions: (docs/paper_details.md, Multi-label metrics).
"""

from __future__ import annotations

import numpy as np

from jaxgraphs.evaluation.masked_rows import MaskedRowAccumulator

AP_MODES = ("voc_envelope", "non_interpolated")
THRESHOLD = 0.5
TOP_K = 3


def _as_matrix(name: str, value) -> np.ndarray:
  """Returns `value` as a float64 (N, C) array, or raises naming the argument."""
  value = np.asarray(value, dtype=np.float64)
  if value.ndim != 2:
    raise ValueError(f"{name} must be 2-D (num_examples, num_classes), got shape {value.shape}")
  if not np.all(np.isfinite(value)):
    raise ValueError(f"{name} contains NaN or Inf")
  return value


def _check_inputs(scores, targets, weights, scores_name: str = "scores"):
  """Validates and converts (scores, targets, weights) to float64 arrays of one (N, C) shape."""
  scores = _as_matrix(scores_name, scores)
  targets = _as_matrix("targets", targets)
  weights = np.ones_like(scores) if weights is None else _as_matrix("weights", weights)
  if not scores.shape == targets.shape == weights.shape:
    raise ValueError(
      f"{scores_name}, targets and weights must have one shape, got {scores.shape}, {targets.shape}, {weights.shape}"
    )
  if not np.all((targets == 0) | (targets == 1)):
    raise ValueError("targets must be 0 or 1 (mark ignored entries with weights=0, not with -1)")
  if np.any(weights < 0):
    raise ValueError("weights must be non-negative (0 = ignored entry)")
  return scores, targets, weights


def _class_average_precision(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray, mode: str) -> float:
  """AP of one class from 1-D arrays; NaN when the class has no (non-ignored) positive."""
  kept = weights > 0
  scores, targets, weights = scores[kept], targets[kept], weights[kept]
  if not np.any(targets > 0):
    return float("nan")
  order = np.argsort(-scores, kind="stable")
  scores, targets, weights = scores[order], targets[order], weights[order]
  true_positives = np.cumsum(weights * targets)
  false_positives = np.cumsum(weights * (1.0 - targets))
  # The last entry of each group of tied scores: a threshold retrieves its whole tie group at once.
  thresholds = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
  true_positives, false_positives = true_positives[thresholds], false_positives[thresholds]
  num_positives = true_positives[-1]
  precision = true_positives / (true_positives + false_positives)
  recall_steps = np.diff(true_positives, prepend=0.0) / num_positives
  if mode == "voc_envelope":
    # VOC2010+ all-point interpolation: precision at recall r is the best precision at any recall >= r.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
  return float(np.sum(recall_steps * precision))


def average_precision(scores, targets, weights=None, mode: str = "voc_envelope") -> np.ndarray:
  """Per-class average precision, shape (C,), NaN for classes without a positive."""
  if mode not in AP_MODES:
    raise ValueError(f"mode must be one of {AP_MODES}, got {mode!r}")
  scores, targets, weights = _check_inputs(scores, targets, weights)
  return np.array(
    [_class_average_precision(scores[:, c], targets[:, c], weights[:, c], mode) for c in range(scores.shape[1])]
  )


def mean_over_defined(values: np.ndarray) -> float:
  """Mean over the non-NaN entries (e.g. classes with a positive); NaN when there is none."""
  values = np.asarray(values, dtype=np.float64)
  defined = ~np.isnan(values)
  return float(values[defined].mean()) if defined.any() else float("nan")


def f1(precision: float, recall: float) -> float:
  """Harmonic mean 2PR/(P+R); 0 when both are 0, NaN when either is NaN."""
  if precision + recall == 0:
    return 0.0
  return 2.0 * precision * recall / (precision + recall)


def predicted_labels(probs, threshold: float = THRESHOLD, top_k: int | None = None) -> np.ndarray:
  """Boolean (N, C): prob >= threshold and, with `top_k`, among the image's top_k classes.

  Ties for the last top-k place go to the lower class index. The top k are chosen over all classes,
  ignored entries included: the prediction cannot know which entries the evaluation ignores.
  """
  probs = np.asarray(probs, dtype=np.float64)
  predicted = probs >= threshold
  if top_k is not None and top_k < probs.shape[1]:
    top = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    in_top = np.zeros_like(predicted)
    np.put_along_axis(in_top, top, True, axis=1)
    predicted &= in_top
  return predicted


def precision_recall_f1(
  probs, targets, weights=None, threshold: float = THRESHOLD, top_k: int | None = None
) -> dict[str, float]:
  """CP, CR, CF1, OP, OR, OF1 as in ML-GCN's evaluation (a class is predicted when prob >= threshold).

  Per class: Nc = predicted and true, Np = predicted with 0 replaced by 1, Ng = true (ignored entries
  count in none). OP = sum Nc / sum Np, OR = sum Nc / sum Ng; CP = mean Nc/Np, CR = mean Nc/Ng;
  OF1 and CF1 are the F1 of those (CF1 from the means, not a mean of per-class F1s).
  As in ML-GCN, the 0 -> 1 replacement of Np also enters OP's denominator (one per never-predicted class).
  ML-GCN's CR is NaN when a class has no positive; here CP and CR average over the classes with at least
  one positive (the classes mAP averages over), which equals ML-GCN whenever every class has one.
  """
  probs, targets, weights = _check_inputs(probs, targets, weights, scores_name="probs")
  if np.any((probs < 0) | (probs > 1)):
    raise ValueError("probs must be probabilities in [0, 1]: apply a sigmoid to the logits first")
  predicted = predicted_labels(probs, threshold, top_k)
  num_correct = np.sum(weights * predicted * targets, axis=0)
  num_predicted = np.sum(weights * predicted, axis=0)
  num_predicted = np.where(num_predicted == 0, 1.0, num_predicted)
  num_true = np.sum(weights * targets, axis=0)
  has_positive = num_true > 0
  overall_precision = num_correct.sum() / num_predicted.sum()
  overall_recall = num_correct.sum() / num_true.sum() if has_positive.any() else float("nan")
  if has_positive.any():
    class_precision = float(np.mean(num_correct[has_positive] / num_predicted[has_positive]))
    class_recall = float(np.mean(num_correct[has_positive] / num_true[has_positive]))
  else:
    class_precision = class_recall = float("nan")
  return {
    "CP": class_precision,
    "CR": class_recall,
    "CF1": f1(class_precision, class_recall),
    "OP": float(overall_precision),
    "OR": float(overall_recall),
    "OF1": f1(float(overall_precision), float(overall_recall)),
  }


def multilabel_metrics(probs, targets, weights=None) -> dict:
  """All multi-label metrics as fractions in [0, 1]: mAP (VOC envelope), mAP_non_interpolated,
  CP..OF1 at threshold 0.5, their `_top3` variants, and `per_class_AP` (list, NaN = no positive)."""
  per_class_ap = average_precision(probs, targets, weights, mode="voc_envelope")
  per_class_ap_non_interpolated = average_precision(probs, targets, weights, mode="non_interpolated")
  metrics = {
    "mAP": mean_over_defined(per_class_ap),
    "mAP_non_interpolated": mean_over_defined(per_class_ap_non_interpolated),
  }
  metrics.update(precision_recall_f1(probs, targets, weights))
  top_k_metrics = precision_recall_f1(probs, targets, weights, top_k=TOP_K)
  metrics.update({f"{name}_top{TOP_K}": value for name, value in top_k_metrics.items()})
  metrics["per_class_AP"] = [float(ap) for ap in per_class_ap]
  return metrics


def hidden_label_metrics(probs, labels, hidden, weights=None) -> dict[str, float]:
  """mAP on labels whose object is hidden and on the visible ones, each ranked against the true negatives.

  `hidden` (N, C) marks the positive labels with no visible object (a subset of `labels`). mAP_hidden leaves
  the visible positives out of every class's ranking, mAP_visible the hidden ones; negatives count in both.
  """
  scores, targets, weights = _check_inputs(probs, labels, weights, scores_name="probs")
  hidden = np.asarray(hidden, np.float64)
  if hidden.shape != targets.shape or np.any(hidden > targets):
    raise ValueError("hidden must have the labels' shape and mark a subset of the positive labels")
  visible = targets - hidden
  return {
    "mAP_hidden": mean_over_defined(average_precision(scores, hidden, weights * (1.0 - visible))),
    "mAP_visible": mean_over_defined(average_precision(scores, visible, weights * (1.0 - hidden))),
  }


class MultiLabelEvaluator:
  """Streaming `multilabel_metrics`: `update` per batch (rows with mask 0 are padding), then `result`."""

  def __init__(self):
    self._rows = MaskedRowAccumulator("probs", "targets", "weights")

  @property
  def num_examples(self) -> int:
    """Number of (unpadded) examples seen so far."""
    return self._rows.num_rows

  def update(self, probs, targets, weights=None, mask=None) -> None:
    """Adds a batch: probs and targets (B, C), optional weights (B, C) and mask (B,)."""
    probs = np.asarray(probs)
    if weights is None:
      weights = np.ones(probs.shape, dtype=np.float32)
    self._rows.add(mask=mask, probs=probs, targets=targets, weights=weights)

  def result(self) -> dict:
    """`multilabel_metrics` over every example added so far."""
    return multilabel_metrics(**self._rows.concatenated())

  def reset(self) -> None:
    """Forgets every example added so far."""
    self._rows.reset()
