"""Image aesthetics metrics (NumPy, host side): AVA binary accuracy and AP, AADB Spearman rho, Pearson r,
MSE, and the EMD between rating distributions.

Every metric is a plain float (accuracy and AP as fractions in [0, 1]). Correlations of a constant input
are undefined and come back as NaN.
"""

from __future__ import annotations

import numpy as np

from jaxgraphs.evaluation.masked_rows import MaskedRowAccumulator
from jaxgraphs.evaluation.multilabel_metrics import AP_MODES, average_precision

KINDS = ("binary", "regression", "distribution")
# AVA (RGNet, NIMA): an image is "high" aesthetics when its mean rating on the 1..10 scale is >= 5.
HIGH_MEAN_RATING = 5.0


def _as_vector(name: str, value) -> np.ndarray:
  """Returns `value` as a finite float64 (N,) array, or raises naming the argument."""
  value = np.asarray(value, dtype=np.float64)
  if value.ndim != 1:
    raise ValueError(f"{name} must be 1-D (num_examples,), got shape {value.shape}")
  if not np.all(np.isfinite(value)):
    raise ValueError(f"{name} contains NaN or Inf")
  return value


def _as_pair(x, y, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
  """Two finite (N,) float64 vectors of one length."""
  x, y = _as_vector(names[0], x), _as_vector(names[1], y)
  if x.shape != y.shape:
    raise ValueError(f"{names[0]} and {names[1]} must have one length, got {x.size} and {y.size}")
  return x, y


def _as_binary_labels(labels) -> np.ndarray:
  """Labels as a float64 (N,) vector of 0/1, or raises."""
  labels = _as_vector("labels", labels)
  if not np.all((labels == 0) | (labels == 1)):
    raise ValueError("labels must be 0 (low aesthetics) or 1 (high aesthetics)")
  return labels


def binary_accuracy(p_high, labels, threshold: float = 0.5) -> float:
  """Fraction of images whose predicted class (high when p_high >= threshold) equals the 0/1 label."""
  p_high, labels = _as_pair(p_high, _as_binary_labels(labels), ("p_high", "labels"))
  if np.any((p_high < 0) | (p_high > 1)):
    raise ValueError("p_high must be probabilities in [0, 1]: apply the softmax to the logits first")
  return float(np.mean((p_high >= threshold) == (labels == 1)))


def ranking_average_precision(scores, labels, mode: str = "non_interpolated") -> float:
  """AP of ranking the images by score (e.g. p(high)) against the 0/1 high-aesthetics labels."""
  scores, labels = _as_pair(scores, _as_binary_labels(labels), ("scores", "labels"))
  return float(average_precision(scores[:, None], labels[:, None], mode=mode)[0])


def average_ranks(values) -> np.ndarray:
  """Ranks 1..N of `values`, tied values sharing the average of their ranks."""
  values = _as_vector("values", values)
  order = np.argsort(values, kind="stable")
  sorted_values = values[order]
  starts_group = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
  group_starts = np.flatnonzero(starts_group)
  group_ends = np.r_[group_starts[1:], values.size]
  group_rank = (group_starts + group_ends + 1) / 2.0  # mean of the 1-based ranks start+1 .. end
  ranks = np.empty(values.size)
  ranks[order] = group_rank[np.cumsum(starts_group) - 1]
  return ranks


def pearson_r(x, y) -> float:
  """Pearson's linear correlation coefficient; NaN when either input is constant or has < 2 entries."""
  x, y = _as_pair(x, y, ("x", "y"))
  if x.size < 2:
    return float("nan")
  x_centered, y_centered = x - x.mean(), y - y.mean()
  norm = np.sqrt(np.sum(x_centered**2) * np.sum(y_centered**2))
  if norm == 0:
    return float("nan")
  return float(np.clip(np.sum(x_centered * y_centered) / norm, -1.0, 1.0))


def spearman_rho(x, y) -> float:
  """Spearman's rank correlation: Pearson's r of the average ranks (ties share their mean rank)."""
  x, y = _as_pair(x, y, ("x", "y"))
  return pearson_r(average_ranks(x), average_ranks(y))


def mean_squared_error(predictions, targets) -> float:
  """Mean of (prediction - target)^2."""
  predictions, targets = _as_pair(predictions, targets, ("predictions", "targets"))
  return float(np.mean((predictions - targets) ** 2))


def _as_distributions(name: str, value) -> np.ndarray:
  """Rows of non-negative histogram counts or probabilities, normalised to sum 1."""
  value = np.asarray(value, dtype=np.float64)
  if value.ndim != 2:
    raise ValueError(f"{name} must be 2-D (num_examples, num_bins), got shape {value.shape}")
  if not np.all(np.isfinite(value)) or np.any(value < 0):
    raise ValueError(f"{name} must be finite and non-negative (rating counts or probabilities)")
  totals = value.sum(axis=1, keepdims=True)
  if np.any(totals == 0):
    raise ValueError(f"{name} has a row that sums to 0 (an image without ratings)")
  return value / totals


def distribution_mean(distributions) -> np.ndarray:
  """Mean rating of each row of a rating histogram over the scores 1..num_bins."""
  distributions = _as_distributions("distributions", distributions)
  return distributions @ np.arange(1, distributions.shape[1] + 1)


def earth_movers_distance(predicted, target, r: float = 2.0) -> float:
  """NIMA's EMD averaged over images: (mean_k |CDF_pred(k) - CDF_target(k)|^r)^(1/r), r = 2 by default.

  The mean runs over the num_bins CDF values and the r-th root is taken per image (Talebi & Milanfar,
  NIMA); without the root this is the squared EMD loss of Hou et al. Rows are normalised to sum 1.
  """
  predicted = _as_distributions("predicted", predicted)
  target = _as_distributions("target", target)
  if predicted.shape != target.shape:
    raise ValueError(f"predicted and target must have one shape, got {predicted.shape} and {target.shape}")
  cdf_gap = np.abs(np.cumsum(predicted, axis=1) - np.cumsum(target, axis=1))
  return float(np.mean(np.mean(cdf_gap**r, axis=1) ** (1.0 / r)))


def binary_metrics(p_high, labels, ap_mode: str = "non_interpolated") -> dict[str, float]:
  """AVA classification: `accuracy` (p_high >= 0.5) and `AP` of the ranking by p_high."""
  return {"accuracy": binary_accuracy(p_high, labels), "AP": ranking_average_precision(p_high, labels, ap_mode)}


def regression_metrics(predictions, targets) -> dict[str, float]:
  """AADB regression: `spearman_rho` (the standard AADB metric), `pearson_r` and `mse`."""
  return {
    "spearman_rho": spearman_rho(predictions, targets),
    "pearson_r": pearson_r(predictions, targets),
    "mse": mean_squared_error(predictions, targets),
  }


def distribution_metrics(predicted, target, ap_mode: str = "non_interpolated") -> dict[str, float]:
  """Rating histograms over 1..num_bins: `emd` (r=2), plus on the mean ratings `accuracy` and `AP`
  (high = mean >= 5), `spearman_rho`, `pearson_r` and `mse`."""
  predicted_mean, target_mean = distribution_mean(predicted), distribution_mean(target)
  target_high = (target_mean >= HIGH_MEAN_RATING).astype(np.float64)
  return {
    "emd": earth_movers_distance(predicted, target),
    "accuracy": float(np.mean((predicted_mean >= HIGH_MEAN_RATING) == (target_high == 1))),
    "AP": ranking_average_precision(predicted_mean, target_high, ap_mode),
    **regression_metrics(predicted_mean, target_mean),
  }


class AestheticsEvaluator:
  """Streaming aesthetics metrics of one `kind`: `update` per batch (rows with mask 0 are padding), then `result`.

  binary: predictions = p(high) (B,), targets = 0/1 labels (B,) -> `binary_metrics`.
  regression: predictions and target scores (B,) -> `regression_metrics`.
  distribution: predicted and target rating histograms (B, num_bins) -> `distribution_metrics`.
  """

  def __init__(self, kind: str = "binary", ap_mode: str = "non_interpolated"):
    if kind not in KINDS:
      raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if ap_mode not in AP_MODES:
      raise ValueError(f"ap_mode must be one of {AP_MODES}, got {ap_mode!r}")
    self.kind = kind
    self.ap_mode = ap_mode
    self._rows = MaskedRowAccumulator("predictions", "targets")

  @property
  def num_examples(self) -> int:
    """Number of (unpadded) examples seen so far."""
    return self._rows.num_rows

  def update(self, predictions, targets, mask=None) -> None:
    """Adds a batch of predictions and targets (shapes as in the class docstring) and optional mask (B,)."""
    expected_ndim = 2 if self.kind == "distribution" else 1
    for name, value in (("predictions", predictions), ("targets", targets)):
      if np.ndim(value) != expected_ndim:
        raise ValueError(
          f"AestheticsEvaluator(kind={self.kind!r}) expects {expected_ndim}-D {name}, got shape {np.shape(value)}"
        )
    self._rows.add(mask=mask, predictions=predictions, targets=targets)

  def result(self) -> dict[str, float]:
    """The metrics of `kind` over every example added so far."""
    rows = self._rows.concatenated()
    if self.kind == "binary":
      return binary_metrics(rows["predictions"], rows["targets"], self.ap_mode)
    if self.kind == "regression":
      return regression_metrics(rows["predictions"], rows["targets"])
    return distribution_metrics(rows["predictions"], rows["targets"], self.ap_mode)

  def reset(self) -> None:
    """Forgets every example added so far."""
    self._rows.reset()
