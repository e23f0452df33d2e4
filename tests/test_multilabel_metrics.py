"""Multi-label metrics against scikit-learn, a loop transcription of the VOC devkit's VOCap, and hand counts."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from jaxgraphs.evaluation.masked_rows import MaskedRowAccumulator
from jaxgraphs.evaluation.multilabel_metrics import (
  MultiLabelEvaluator,
  average_precision,
  multilabel_metrics,
  precision_recall_f1,
  predicted_labels,
)


def voc_devkit_ap(scores, labels):
  """VOCap of the VOC2010+ devkit, transcribed loop by loop (tie-free scores only)."""
  order = sorted(range(len(scores)), key=lambda i: -scores[i])
  tp, fp, running_tp, running_fp = [], [], 0, 0
  for i in order:
    if labels[i] == 1:
      running_tp += 1
    else:
      running_fp += 1
    tp.append(running_tp)
    fp.append(running_fp)
  num_positives = sum(labels)
  rec = [t / num_positives for t in tp]
  prec = [t / (t + f) for t, f in zip(tp, fp)]
  # mrec=[0; rec; 1]; mpre=[0; prec; 0]; for i=numel(mpre)-1:-1:1, mpre(i)=max(mpre(i),mpre(i+1)).
  mrec = [0.0] + rec + [1.0]
  mpre = [0.0] + prec + [0.0]
  for i in range(len(mpre) - 2, -1, -1):
    mpre[i] = max(mpre[i], mpre[i + 1])
  # i=find(mrec(2:end)~=mrec(1:end-1))+1; ap=sum((mrec(i)-mrec(i-1)).*mpre(i)).
  ap = 0.0
  for i in range(1, len(mrec)):
    if mrec[i] != mrec[i - 1]:
      ap += (mrec[i] - mrec[i - 1]) * mpre[i]
  return ap


def random_problem(seed, num_examples=60, num_classes=7, positive_rate=0.3):
  rng = np.random.default_rng(seed)
  probs = rng.random((num_examples, num_classes))
  targets = (rng.random((num_examples, num_classes)) < positive_rate).astype(np.int32)
  targets[0] = 1  # every class has at least one positive
  return probs, targets


# A 4-image x 3-class case, predicted = prob >= 0.5:
#   probs                targets     predicted
#   [0.9, 0.6, 0.2]      [1, 0, 0]   [1, 1, 0]
#   [0.7, 0.4, 0.8]      [1, 1, 1]   [1, 0, 1]
#   [0.3, 0.55, 0.1]     [0, 1, 0]   [0, 1, 0]
#   [0.6, 0.2, 0.3]      [0, 0, 0]   [1, 0, 0]
# class 0: Np=3 Ng=2 Nc=2; class 1: Np=2 Ng=2 Nc=1; class 2: Np=1 Ng=1 Nc=1; sums Nc=4 Np=6 Ng=5.
HAND_PROBS = np.array([[0.9, 0.6, 0.2], [0.7, 0.4, 0.8], [0.3, 0.55, 0.1], [0.6, 0.2, 0.3]])
HAND_TARGETS = np.array([[1, 0, 0], [1, 1, 1], [0, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("seed", [0, 1])
def test_non_interpolated_ap_matches_sklearn(seed):
  probs, targets = random_problem(seed)
  ours = average_precision(probs, targets, mode="non_interpolated")
  expected = [average_precision_score(targets[:, c], probs[:, c]) for c in range(probs.shape[1])]
  np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_non_interpolated_ap_matches_sklearn_with_tied_scores():
  probs, targets = random_problem(2, num_examples=80)
  probs = np.round(probs, 1)  # many ties
  ours = average_precision(probs, targets, mode="non_interpolated")
  expected = [average_precision_score(targets[:, c], probs[:, c]) for c in range(probs.shape[1])]
  np.testing.assert_allclose(ours, expected, rtol=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_voc_envelope_ap_matches_devkit_transcription(seed):
  probs, targets = random_problem(seed)
  ours = average_precision(probs, targets)
  expected = [voc_devkit_ap(list(probs[:, c]), list(targets[:, c])) for c in range(probs.shape[1])]
  np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_envelope_differs_from_non_interpolated_on_a_hand_case():
  # Ranked labels [0, 1, 1]: precision at the positives 1/2 and 2/3.
  # Non-interpolated: (1/2 + 2/3) / 2 = 7/12. Envelope: the first positive gets max(1/2, 2/3): 2/3.
  scores = np.array([[0.9], [0.8], [0.7]])
  targets = np.array([[0], [1], [1]])
  assert average_precision(scores, targets, mode="non_interpolated")[0] == pytest.approx(7 / 12)
  assert average_precision(scores, targets)[0] == pytest.approx(2 / 3)


def test_tied_scores_are_retrieved_together_and_order_does_not_matter():
  # Threshold 0.9 retrieves a negative; 0.5 retrieves the tied pair: TP=1, FP=2, recall 1 -> AP = 1/3.
  # (A per-rank count that put the positive first would give 1/2.)
  scores = np.array([[0.9], [0.5], [0.5]])
  targets = np.array([[0], [1], [0]])
  for mode in ("voc_envelope", "non_interpolated"):
    assert average_precision(scores, targets, mode=mode)[0] == pytest.approx(1 / 3)
    assert average_precision(scores[[0, 2, 1]], targets[[0, 2, 1]], mode=mode)[0] == pytest.approx(1 / 3)


def test_ignored_entries_are_left_out_of_the_ranking():
  probs, targets = random_problem(5)
  rng = np.random.default_rng(6)
  weights = (rng.random(probs.shape) < 0.8).astype(np.float64)
  weights[0] = 1
  for mode in ("voc_envelope", "non_interpolated"):
    ours = average_precision(probs, targets, weights, mode=mode)
    for c in range(probs.shape[1]):
      kept = weights[:, c] > 0
      subset = average_precision(probs[kept, c : c + 1], targets[kept, c : c + 1], mode=mode)[0]
      assert ours[c] == pytest.approx(subset, rel=1e-12)
  ours = average_precision(probs, targets, weights, mode="non_interpolated")
  expected = [
    average_precision_score(targets[:, c], probs[:, c], sample_weight=weights[:, c]) for c in range(probs.shape[1])
  ]
  np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_an_ignored_top_scored_positive_does_not_count():
  scores = np.array([[0.9], [0.8], [0.7]])
  targets = np.array([[1], [0], [1]])
  weights = np.array([[0.0], [1.0], [1.0]])
  # Left: [neg 0.8, pos 0.7] -> precision 1/2 at the one positive.
  assert average_precision(scores, targets, weights)[0] == pytest.approx(0.5)


def test_class_without_positive_is_nan_and_left_out_of_map():
  probs, targets = random_problem(7)
  targets[:, 3] = 0
  weights = np.ones_like(probs)
  targets[:, 5] = 0
  targets[10, 5] = 1
  weights[10, 5] = 0  # its only positive is ignored
  metrics = multilabel_metrics(probs, targets, weights)
  per_class = np.array(metrics["per_class_AP"])
  assert np.isnan(per_class[3]) and np.isnan(per_class[5])
  defined = [c for c in range(probs.shape[1]) if c not in (3, 5)]
  assert metrics["mAP"] == pytest.approx(per_class[defined].mean())
  assert not np.isnan(metrics["mAP_non_interpolated"])


def test_no_positive_anywhere_gives_nan_map_without_warnings():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    metrics = multilabel_metrics(np.full((3, 2), 0.7), np.zeros((3, 2)))
  assert np.isnan(metrics["mAP"]) and np.isnan(metrics["CR"]) and np.isnan(metrics["OR"])
  assert metrics["OP"] == 0.0


def test_precision_recall_f1_hand_counts():
  m = precision_recall_f1(HAND_PROBS, HAND_TARGETS)
  assert m["OP"] == pytest.approx(4 / 6)
  assert m["OR"] == pytest.approx(4 / 5)
  assert m["OF1"] == pytest.approx(8 / 11)  # 2 (2/3)(4/5) / (2/3 + 4/5)
  assert m["CP"] == pytest.approx(13 / 18)  # mean(2/3, 1/2, 1)
  assert m["CR"] == pytest.approx(5 / 6)  # mean(1, 1/2, 1)
  assert m["CF1"] == pytest.approx(65 / 84)  # 2 (13/18)(5/6) / (13/18 + 5/6), not a mean of F1s


def test_precision_recall_f1_respects_weights():
  weights = np.ones_like(HAND_PROBS)
  weights[3, 0] = 0  # a false positive of class 0, ignored
  weights[1, 1] = 0  # a missed positive of class 1, ignored
  # class 0: Np=2 Ng=2 Nc=2; class 1: Np=2 Ng=1 Nc=1; class 2: Np=1 Ng=1 Nc=1; sums Nc=4 Np=5 Ng=4.
  m = precision_recall_f1(HAND_PROBS, HAND_TARGETS, weights)
  assert (m["OP"], m["OR"]) == (pytest.approx(4 / 5), pytest.approx(1.0))
  assert (m["CP"], m["CR"]) == (pytest.approx(5 / 6), pytest.approx(1.0))


def test_top3_counts_only_the_top_three_classes_above_threshold():
  # image 0: c3 (0.6, a positive) is 4th -> dropped by top-3; image 1: top 3 = c1, c4, c3 (0.5 >= 0.5).
  probs = np.array([[0.9, 0.8, 0.7, 0.6, 0.1], [0.2, 0.95, 0.3, 0.5, 0.55]])
  targets = np.array([[1, 0, 0, 1, 0], [0, 1, 1, 0, 1]])
  # top-3: Nc=[1,1,0,0,1] Np=[1,2,1,1,1] Ng=[1,1,1,1,1]: OP=3/6, OR=3/5, CP=mean(1,1/2,0,0,1), CR=3/5.
  top3 = precision_recall_f1(probs, targets, top_k=3)
  assert (top3["OP"], top3["OR"], top3["OF1"]) == (pytest.approx(1 / 2), pytest.approx(3 / 5), pytest.approx(6 / 11))
  assert (top3["CP"], top3["CR"], top3["CF1"]) == (pytest.approx(1 / 2), pytest.approx(3 / 5), pytest.approx(6 / 11))
  # threshold only: c3 of image 0 is also predicted: Nc=[1,1,0,1,1] Np=[1,2,1,2,1].
  plain = precision_recall_f1(probs, targets)
  assert (plain["OP"], plain["OR"]) == (pytest.approx(4 / 7), pytest.approx(4 / 5))
  assert (plain["CP"], plain["CR"]) == (pytest.approx(3 / 5), pytest.approx(4 / 5))
  metrics = multilabel_metrics(probs, targets)
  assert metrics["OP_top3"] == top3["OP"] and metrics["CF1_top3"] == top3["CF1"]


def test_top_k_ties_go_to_the_lower_class_index():
  np.testing.assert_array_equal(predicted_labels(np.full((1, 4), 0.6), top_k=3), [[True, True, True, False]])


def test_all_zero_predictions_use_np_one_without_division_by_zero():
  probs, targets = random_problem(8)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    m = multilabel_metrics(np.zeros_like(probs), targets)
  for name in ("CP", "CR", "CF1", "OP", "OR", "OF1", "CP_top3", "OF1_top3"):
    assert m[name] == 0.0, name


def test_never_predicted_class_adds_one_to_op_denominator_as_in_ml_gcn():
  # Nc=[1,0], Np=[1,0->1], Ng=[1,1]: OP = 1/2 (not 1/1), CP = mean(1, 0), CR = mean(1, 0).
  m = precision_recall_f1(np.array([[0.9, 0.1], [0.2, 0.3]]), np.array([[1, 0], [0, 1]]))
  assert (m["OP"], m["OR"], m["CP"], m["CR"]) == (0.5, 0.5, 0.5, 0.5)


def test_class_without_positive_is_left_out_of_cp_and_cr():
  probs = np.array([[0.9, 0.8], [0.2, 0.7]])
  targets = np.array([[1, 0], [0, 0]])  # class 1 has no positive but two false positives
  m = precision_recall_f1(probs, targets)
  assert (m["CP"], m["CR"]) == (1.0, 1.0)
  assert m["OP"] == pytest.approx(1 / 3)  # its false positives still count overall


def test_metric_keys_and_fraction_range():
  probs, targets = random_problem(9)
  metrics = multilabel_metrics(probs, targets)
  names = ["CP", "CR", "CF1", "OP", "OR", "OF1"]
  assert set(metrics) == {"mAP", "mAP_non_interpolated", "per_class_AP", *names, *[n + "_top3" for n in names]}
  assert all(isinstance(v, float) and 0 <= v <= 1 for k, v in metrics.items() if k != "per_class_AP")
  assert len(metrics["per_class_AP"]) == probs.shape[1]


def assert_same_metrics(got, expected):
  assert set(got) == set(expected)
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, err_msg=key)


def test_evaluator_drops_padded_rows():
  probs, targets = random_problem(10, num_examples=25)
  weights = (np.random.default_rng(11).random(probs.shape) < 0.9).astype(np.float32)
  evaluator = MultiLabelEvaluator()
  for start in range(0, 25, 8):  # batches of 8, the last padded from 1 real row
    stop = min(start + 8, 25)
    pad = 8 - (stop - start)
    mask = np.r_[np.ones(stop - start), np.zeros(pad)]
    # Padding that would change every metric if it were counted.
    evaluator.update(
      np.r_[probs[start:stop], np.full((pad, 7), 0.99)],
      np.r_[targets[start:stop], np.ones((pad, 7))],
      np.r_[weights[start:stop], np.ones((pad, 7))],
      mask=mask,
    )
  assert evaluator.num_examples == 25
  assert_same_metrics(evaluator.result(), multilabel_metrics(probs, targets, weights))


def test_evaluator_accepts_jax_arrays_and_default_weights():
  jnp = pytest.importorskip("jax.numpy")
  probs, targets = random_problem(12, num_examples=10)
  evaluator = MultiLabelEvaluator()
  evaluator.update(jnp.asarray(probs[:6], jnp.float32), jnp.asarray(targets[:6]))
  evaluator.update(jnp.asarray(probs[6:], jnp.float32), jnp.asarray(targets[6:]), mask=jnp.ones(4))
  assert_same_metrics(evaluator.result(), multilabel_metrics(probs.astype(np.float32), targets))
  evaluator.reset()
  with pytest.raises(ValueError, match="call update"):
    evaluator.result()


def test_bad_inputs_raise_clear_errors():
  probs, targets = HAND_PROBS, HAND_TARGETS
  with pytest.raises(ValueError, match="targets must be 0 or 1"):
    multilabel_metrics(probs, np.where(targets == 0, -1, 1))
  with pytest.raises(ValueError, match="sigmoid"):
    multilabel_metrics(probs * 4 - 2, targets)
  with pytest.raises(ValueError, match="one shape"):
    average_precision(probs, targets[:, :2])
  with pytest.raises(ValueError, match="mode must be one of"):
    average_precision(probs, targets, mode="11point")
  with pytest.raises(ValueError, match="mask must have shape"):
    MultiLabelEvaluator().update(probs, targets, mask=np.ones(3))


def test_accumulator_keeps_masked_rows_in_order():
  rows = MaskedRowAccumulator("a", "b")
  rows.add(a=np.arange(4), b=np.arange(8).reshape(4, 2), mask=np.array([1, 0, 1, 0]))
  rows.add(a=np.arange(4, 6), b=np.arange(8, 12).reshape(2, 2))
  out = rows.concatenated()
  np.testing.assert_array_equal(out["a"], [0, 2, 4, 5])
  np.testing.assert_array_equal(out["b"], [[0, 1], [4, 5], [8, 9], [10, 11]])
  with pytest.raises(ValueError, match="expected arrays"):
    rows.add(a=np.arange(2))
