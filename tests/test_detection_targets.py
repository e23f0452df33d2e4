"""Faster R-CNN training targets on hand-built cases: IoU thresholds, the best-anchor rule, sampling caps, no boxes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.detection.boxes import encode
from jaxgraphs.models.detection.targets import anchor_targets, roi_targets

GT = np.array([[0.0, 0.0, 9.0, 9.0]], np.float32)  # 10 x 10 pixels (+1 convention)


def _anchor_labels(anchors, gt=GT, gt_mask=None, valid=None, key=0, **kwargs):
  anchors = jnp.asarray(anchors, jnp.float32)
  valid = jnp.ones(len(anchors), bool) if valid is None else jnp.asarray(valid)
  gt_mask = jnp.ones(len(gt), bool) if gt_mask is None else jnp.asarray(gt_mask)
  targets = jax.jit(lambda *args: anchor_targets(*args, **kwargs))  # one compilation, not one per op
  labels, deltas = targets(anchors, valid, jnp.asarray(gt), gt_mask, jax.random.key(key))
  return np.asarray(labels), np.asarray(deltas)


def test_iou_thresholds_are_inclusive_at_0_7_and_exclusive_at_0_3():
  anchors = [
    [0, 0, 9, 9],  # IoU 1.0: the best anchor, positive
    [0, 0, 6, 9],  # 70 / 100 = 0.7 exactly: positive (>= 0.7)
    [0, 0, 5, 9],  # 0.6: ignored
    [0, 0, 2, 9],  # 30 / 100 = 0.3 exactly: ignored (negative needs < 0.3)
    [0, 0, 1, 9],  # 0.2: negative
    [50, 50, 59, 59],  # no overlap: negative
  ]
  labels, deltas = _anchor_labels(anchors)
  np.testing.assert_array_equal(labels, [1, 1, -1, -1, 0, 0])
  expected = np.asarray(encode(jnp.asarray(GT[[0, 0]]), jnp.asarray(anchors[:2], jnp.float32)))
  np.testing.assert_allclose(deltas[:2], expected, rtol=1e-6)
  assert np.all(deltas[2:] == 0)  # only positives regress


def test_every_box_gets_its_best_anchors_even_below_0_7_ties_included():
  anchors = [
    [0, 0, 4, 9],  # 0.5: the best for the box, positive although < 0.7
    [5, 0, 9, 9],  # 0.5 as well: a tie, also positive
    [0, 0, 1, 9],  # 0.2: negative
  ]
  labels, _ = _anchor_labels(anchors)
  np.testing.assert_array_equal(labels, [1, 1, 0])


def test_anchors_outside_the_image_are_ignored_whatever_their_iou():
  labels, _ = _anchor_labels([[0, 0, 9, 9], [40, 40, 49, 49], [0, 0, 9, 9]], valid=[False, True, True])
  np.testing.assert_array_equal(labels, [-1, 0, 1])


def test_image_without_boxes_samples_negatives_only():
  anchors = np.stack([np.arange(300.0)] * 2 + [np.arange(300.0) + 8] * 2, axis=1)
  labels, deltas = _anchor_labels(anchors, gt_mask=[False], num_samples=64)
  assert np.sum(labels == 1) == 0 and np.sum(labels == 0) == 64 and np.all(deltas == 0)


def test_more_positives_than_the_sample_allows_are_capped_and_negatives_fill_the_rest():
  positives = np.tile(GT, (40, 1))
  negatives = np.stack([np.arange(100.0) + 20] * 2 + [np.arange(100.0) + 28] * 2, axis=1)
  labels, _ = _anchor_labels(np.concatenate([positives, negatives]), num_samples=32, fg_fraction=0.5)
  assert np.sum(labels == 1) == 16 and np.sum(labels == 0) == 16
  assert np.all(labels[40:] != 1) and np.all(labels[:40] != 0)
  # The draw is a function of the key: the same key, the same anchors; another key, other anchors.
  again, _ = _anchor_labels(np.concatenate([positives, negatives]), num_samples=32, fg_fraction=0.5)
  other, _ = _anchor_labels(np.concatenate([positives, negatives]), num_samples=32, fg_fraction=0.5, key=1)
  np.testing.assert_array_equal(labels, again)
  assert np.any(labels != other)


def _rois(proposals, valid, gt, gt_labels, gt_mask, key=0, **kwargs):
  out = jax.jit(lambda *args: roi_targets(*args, **kwargs))(
    jnp.asarray(proposals, jnp.float32),
    jnp.asarray(valid),
    jnp.asarray(gt, jnp.float32),
    jnp.asarray(gt_labels, jnp.int32),
    jnp.asarray(gt_mask),
    jax.random.key(key),
  )
  return {k: np.asarray(v) for k, v in out.items()}


def test_rois_foreground_first_with_classes_and_deltas_ground_truth_joins_the_candidates():
  gt = [[0, 0, 9, 9], [30, 30, 49, 49]]
  proposals = [[0, 0, 7, 9], [30, 30, 45, 49], [60, 60, 70, 70], [0, 0, 3, 9], [0, 0, 9, 9]]
  # IoUs with their best box: 0.8 (fg, class 3), 0.8 (fg, class 5), 0 (bg), 0.4 (bg), and an invalid proposal.
  out = _rois(proposals, [True, True, True, True, False], gt, [3, 5], [True, True], num_rois=8, fg_fraction=0.5)
  assert out["mask"].sum() == 6  # 2 fg proposals + 2 gt boxes + 2 bg; the invalid one never
  np.testing.assert_array_equal(out["labels"][:4] > 0, True)
  np.testing.assert_array_equal(out["labels"][4:6], 0)
  assert not out["mask"][6:].any()
  for roi, label, delta in zip(out["rois"][:4], out["labels"][:4], out["deltas"][:4]):
    target = np.asarray(gt[0] if label == 3 else gt[1], np.float32)
    np.testing.assert_allclose(delta, np.asarray(encode(jnp.asarray(target), jnp.asarray(roi))), atol=1e-6)
  assert np.all(out["deltas"][4:] == 0)
  rows = {tuple(r) for r in out["rois"][:6].tolist()}
  assert (0.0, 0.0, 9.0, 9.0) in rows and (30.0, 30.0, 49.0, 49.0) in rows  # the ground truth itself


def test_rois_cap_foreground_at_a_quarter_and_an_image_without_boxes_gives_background_only():
  gt = [[0, 0, 9, 9]]
  proposals = np.concatenate([np.tile([[0, 0, 9, 9]], (20, 1)), [[40, 40, 49, 49]] * 20])
  out = _rois(proposals, np.ones(40, bool), gt, [2], [True], num_rois=16, fg_fraction=0.25)
  assert np.sum(out["labels"] > 0) == 4 and out["mask"].sum() == 16
  empty = _rois(proposals, np.ones(40, bool), gt, [2], [False], num_rois=16)
  assert np.all(empty["labels"] == 0) and empty["mask"].sum() == 16 and np.all(empty["deltas"] == 0)


def test_fewer_candidates_than_slots_are_padded_to_the_fixed_size():
  out = _rois([[0, 0, 9, 9]], [True], [[0, 0, 9, 9]], [1], [True], num_rois=8)
  assert out["rois"].shape == (8, 4) and out["mask"].sum() == 2 and np.all(out["labels"][:2] == 1)


def test_targets_have_fixed_shapes_under_jit_and_vmap():
  anchors = jnp.asarray([[0, 0, 9, 9], [0, 0, 1, 9], [20, 20, 29, 29]], jnp.float32)
  gt = jnp.asarray([[[0, 0, 9, 9]], [[20, 20, 29, 29]]], jnp.float32)
  keys = jax.random.split(jax.random.key(0), 2)
  labels, _ = jax.jit(jax.vmap(lambda g, k: anchor_targets(anchors, jnp.ones(3, bool), g, jnp.ones(1, bool), k)))(
    gt, keys
  )
  np.testing.assert_array_equal(np.asarray(labels), [[1, 0, 0], [0, 0, 1]])


def test_no_ground_truth_slot_at_all_is_a_clear_error():
  with pytest.raises(ValueError, match="at least one"):
    _anchor_labels([[0, 0, 9, 9]], gt=np.zeros((0, 4), np.float32), gt_mask=np.zeros(0, bool))


def test_detections_take_the_class_of_a_box_they_overlap_at_iou_0_5():
  from jaxgraphs.models.detection.targets import detection_labels

  detections = jnp.asarray([[0, 0, 9, 9], [0, 0, 4, 9], [0, 0, 3, 9], [30, 30, 39, 39]], jnp.float32)
  labels = detection_labels(
    detections, jnp.asarray([True, True, True, False]), jnp.asarray(GT), jnp.asarray([7]), jnp.asarray([True])
  )
  np.testing.assert_array_equal(np.asarray(labels), [7, 7, 0, 0])  # IoU 1, 0.5, 0.4, and a padded detection


def test_sgdet_pairs_match_annotated_relations_among_overlapping_detections():
  from jaxgraphs.models.detection.targets import relation_pair_targets

  gt = jnp.asarray([[0, 0, 9, 9], [8, 0, 17, 9], [40, 40, 49, 49]], jnp.float32)
  relations = jnp.asarray([[0, 1, 4], [1, 2, 6]], jnp.int32)  # (0 -> 1 predicate 4), (1 -> 2 predicate 6)
  detections = jnp.asarray(
    [[0, 0, 9, 9], [8, 0, 17, 9], [40, 40, 49, 49], [1, 0, 9, 9], [0, 0, 0, 0]], jnp.float32
  )  # d3 is a second detection of box 0; d4 is padding
  targets = jax.jit(lambda *args: relation_pair_targets(*args, num_pairs=16, fg_fraction=0.5))
  pairs, labels, mask = targets(
    detections,
    jnp.asarray([True, True, True, True, False]),
    gt,
    jnp.ones(3, bool),
    relations,
    jnp.ones(2, bool),
    jax.random.key(0),
  )
  got = {(int(s), int(o)): int(p) for (s, o), p, m in zip(np.asarray(pairs), np.asarray(labels), np.asarray(mask)) if m}
  # Overlapping ordered pairs among d0, d1, d3 (d2 overlaps nothing, so relation 1 -> 2 has no candidate pair):
  assert set(got) == {(0, 1), (1, 0), (0, 3), (3, 0), (1, 3), (3, 1)}
  assert got[(0, 1)] == 4 and got[(3, 1)] == 4  # both detections of box 0 match the subject
  assert all(got[pair] == 0 for pair in set(got) - {(0, 1), (3, 1)})


def test_sgdet_pairs_cap_the_foreground_fraction():
  from jaxgraphs.models.detection.targets import relation_pair_targets

  detections = jnp.tile(jnp.asarray([[0, 0, 9, 9], [8, 0, 17, 9]], jnp.float32), (4, 1))  # 4 copies of each box
  targets = jax.jit(lambda *args: relation_pair_targets(*args, num_pairs=8, fg_fraction=0.25))
  pairs, labels, mask = targets(
    detections,
    jnp.ones(8, bool),
    jnp.asarray([[0, 0, 9, 9], [8, 0, 17, 9]], jnp.float32),
    jnp.ones(2, bool),
    jnp.asarray([[0, 1, 3]], jnp.int32),
    jnp.ones(1, bool),
    jax.random.key(1),
  )
  # 16 foreground candidates (copy of 0 -> copy of 1), at most 2 kept; 40 background candidates fill 6 slots.
  assert int(np.sum(np.asarray(labels)[np.asarray(mask)] == 3)) == 2 and int(np.sum(np.asarray(mask))) == 8
