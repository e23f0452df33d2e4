"""Aesthetics metrics against scipy / scikit-learn, a loop transcription of NIMA's EMD, and hand cases."""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score

from jaxgraphs.evaluation.aesthetics_metrics import (
  AestheticsEvaluator,
  average_ranks,
  binary_accuracy,
  binary_metrics,
  distribution_mean,
  distribution_metrics,
  earth_movers_distance,
  mean_squared_error,
  pearson_r,
  ranking_average_precision,
  regression_metrics,
  spearman_rho,
)
from jaxgraphs.evaluation.multilabel_metrics import average_precision


def nima_emd(p, q, r=2):
  """EMD(p, q) = (1/N sum_k |CDF_p(k) - CDF_q(k)|^r)^(1/r) for one pair of histograms, as loops."""
  p = [v / sum(p) for v in p]
  q = [v / sum(q) for v in q]
  cdf_p = cdf_q = total = 0.0
  for k in range(len(p)):
    cdf_p += p[k]
    cdf_q += q[k]
    total += abs(cdf_p - cdf_q) ** r
  return (total / len(p)) ** (1 / r)


def test_average_ranks_match_scipy_rankdata():
  values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0, 7.0])
  np.testing.assert_array_equal(average_ranks(values), stats.rankdata(values, method="average"))
  # By hand: the two 1s share ranks 1,2 -> 1.5; 2 -> 3; the three 3s share 4,5,6 -> 5; 7 -> 7.
  np.testing.assert_array_equal(average_ranks(values), [5, 1.5, 5, 3, 5, 1.5, 7])


def test_spearman_matches_scipy_with_ties():
  rng = np.random.default_rng(0)
  x = np.round(rng.random(200) * 10)  # integer-valued: many ties
  y = np.round(x + rng.normal(0, 3, 200))
  assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)


def test_pearson_matches_scipy():
  rng = np.random.default_rng(1)
  x = rng.random(100)
  y = 2 * x + rng.normal(0, 0.3, 100)
  assert pearson_r(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, rel=1e-12)


def test_correlation_of_constant_input_is_nan_without_warnings():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert np.isnan(pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(spearman_rho([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert np.isnan(pearson_r([1.0], [2.0]))


def test_binary_accuracy_hand_case():
  # predicted high: [1, 1, 0, 0] (0.5 counts as high); labels [1, 0, 0, 1] -> 2 of 4 right.
  assert binary_accuracy([0.9, 0.5, 0.49, 0.1], [1, 0, 0, 1]) == 0.5


def test_ranking_ap_matches_sklearn_and_reuses_the_multilabel_ap():
  rng = np.random.default_rng(2)
  p_high = rng.random(150)
  labels = (rng.random(150) < p_high).astype(int)
  assert ranking_average_precision(p_high, labels) == pytest.approx(average_precision_score(labels, p_high))
  voc = average_precision(p_high[:, None], labels[:, None])[0]
  assert ranking_average_precision(p_high, labels, mode="voc_envelope") == pytest.approx(voc)


def test_mse_hand_case():
  assert mean_squared_error([0.5, 0.2, 0.9], [0.3, 0.2, 0.6]) == pytest.approx((0.04 + 0 + 0.09) / 3)


def test_emd_hand_case_and_loop_transcription():
  # All mass on 1 vs all mass on 10: CDFs differ by 1 at the first 9 bins -> sqrt(9/10).
  first, last = np.eye(10)[[0]], np.eye(10)[[9]]
  assert earth_movers_distance(first, last) == pytest.approx(np.sqrt(0.9))
  assert earth_movers_distance(first, first) == 0.0
  rng = np.random.default_rng(3)
  counts_p = rng.integers(0, 50, (6, 10)) + 1
  counts_q = rng.integers(0, 50, (6, 10)) + 1
  expected = np.mean([nima_emd(list(a), list(b)) for a, b in zip(counts_p, counts_q)])
  assert earth_movers_distance(counts_p, counts_q) == pytest.approx(expected, rel=1e-12)
  # Counts and the probabilities they normalise to give one EMD.
  probs_p = counts_p / counts_p.sum(1, keepdims=True)
  assert earth_movers_distance(probs_p, counts_q) == pytest.approx(expected, rel=1e-12)
  expected_r1 = np.mean([nima_emd(list(a), list(b), r=1) for a, b in zip(counts_p, counts_q)])
  assert earth_movers_distance(counts_p, counts_q, r=1) == pytest.approx(expected_r1, rel=1e-12)


def test_distribution_mean_and_metrics_on_means():
  # One vote each on 5 and 6 -> mean 5.5; all votes on 3 -> mean 3.
  assert distribution_mean(np.eye(10)[[4]] + np.eye(10)[[5]]) == pytest.approx([5.5])
  rng = np.random.default_rng(4)
  predicted, target = rng.random((40, 10)), rng.integers(0, 30, (40, 10)) + 1
  pred_mean, target_mean = distribution_mean(predicted), distribution_mean(target)
  metrics = distribution_metrics(predicted, target)
  assert metrics["spearman_rho"] == pytest.approx(stats.spearmanr(pred_mean, target_mean).statistic)
  assert metrics["accuracy"] == pytest.approx(np.mean((pred_mean >= 5) == (target_mean >= 5)))
  assert metrics["mse"] == pytest.approx(np.mean((pred_mean - target_mean) ** 2))


def masked_batches(predictions, targets, batch_size, padding_value):
  """Splits into fixed-size batches, padding the last one with rows that would change any metric."""
  for start in range(0, len(predictions), batch_size):
    real = min(batch_size, len(predictions) - start)
    pad = batch_size - real
    pad_shape = (pad,) + predictions.shape[1:]
    yield (
      np.concatenate([predictions[start : start + real], np.full(pad_shape, padding_value)]),
      np.concatenate([targets[start : start + real], np.full(pad_shape, padding_value)]),
      np.r_[np.ones(real), np.zeros(pad)],
    )


@pytest.mark.parametrize("kind", ["binary", "regression", "distribution"])
def test_evaluator_drops_padded_rows(kind):
  rng = np.random.default_rng(5)
  if kind == "distribution":
    predictions, targets = rng.random((23, 10)), rng.integers(1, 20, (23, 10)).astype(float)
    expected = distribution_metrics(predictions, targets)
  elif kind == "regression":
    predictions, targets = rng.random(23), rng.random(23)
    expected = regression_metrics(predictions, targets)
  else:
    predictions, targets = rng.random(23), (rng.random(23) < 0.6).astype(float)
    expected = binary_metrics(predictions, targets)
  evaluator = AestheticsEvaluator(kind)
  for batch_predictions, batch_targets, mask in masked_batches(predictions, targets, 8, padding_value=1.0):
    evaluator.update(batch_predictions, batch_targets, mask=mask)
  assert evaluator.num_examples == 23
  result = evaluator.result()
  assert set(result) == set(expected)
  for key in expected:
    assert result[key] == pytest.approx(expected[key], rel=1e-12), key


def test_evaluator_rejects_wrong_shapes_and_kinds():
  with pytest.raises(ValueError, match="kind must be one of"):
    AestheticsEvaluator("ranking")
  with pytest.raises(ValueError, match=r"kind='binary'\) expects 1-D predictions"):
    AestheticsEvaluator("binary").update(np.ones((4, 2)), np.ones(4))
  with pytest.raises(ValueError, match="softmax"):
    binary_accuracy([1.5, 0.2], [1, 0])
  with pytest.raises(ValueError, match="sums to 0"):
    earth_movers_distance(np.zeros((1, 10)), np.ones((1, 10)))
