"""Scene-graph input-pipeline ops: one predicate per pair, overlap filter, padding with masks and cut counts."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf

from jaxgraphs.data import scene_graphs

# (subject, object, predicate); pair (0, 1) has three annotations, (2, 0) two, (1, 0) one.
RELATIONS = np.array([[0, 1, 5], [2, 0, 7], [0, 1, 9], [1, 0, 5], [0, 1, 11], [2, 0, 3]])


def _relations(rows=RELATIONS):
  """A relations dict of int32 / int64 tensors as the TFDS builder stores them."""
  rows = np.asarray(rows).reshape(-1, 3)
  return {
    "subject": tf.constant(rows[:, 0], tf.int32),
    "object": tf.constant(rows[:, 1], tf.int32),
    "predicate": tf.constant(rows[:, 2], tf.int64),
  }


def _rows(relations):
  """A relations dict back to a list of (subject, object, predicate) tuples."""
  return list(zip(*(relations[k].numpy().tolist() for k in ("subject", "object", "predicate"))))


def test_sample_one_predicate_per_pair_keeps_every_pair_once_in_first_seen_order():
  sampled = _rows(scene_graphs.sample_one_predicate_per_pair(_relations(), seed=tf.constant([3, 4])))
  assert [(s, o) for s, o, _ in sampled] == [(0, 1), (2, 0), (1, 0)]
  candidates = collections.defaultdict(set)
  for s, o, p in RELATIONS.tolist():
    candidates[(s, o)].add(p)
  assert all(p in candidates[(s, o)] for s, o, p in sampled)


def test_sample_one_predicate_per_pair_is_deterministic_per_seed_and_uniform():
  relations = _relations()
  first = _rows(scene_graphs.sample_one_predicate_per_pair(relations, seed=tf.constant([1, 2])))
  again = _rows(scene_graphs.sample_one_predicate_per_pair(relations, seed=tf.constant([1, 2])))
  assert first == again
  picks = collections.Counter(
    _rows(scene_graphs.sample_one_predicate_per_pair(relations, seed=tf.constant([0, i])))[0][2] for i in range(600)
  )
  # Pair (0, 1) has predicates 5, 9, 11: each ~200 times out of 600 (binomial sd ~11.5).
  assert set(picks) == {5, 9, 11}
  assert all(140 < count < 260 for count in picks.values())


def test_sample_one_predicate_per_pair_empty_and_inside_tf_data():
  empty = scene_graphs.sample_one_predicate_per_pair(_relations(np.zeros((0, 3), np.int64)), seed=tf.constant([0, 0]))
  assert empty["predicate"].shape == (0,)
  dataset = tf.data.Dataset.from_tensors(_relations()).map(
    lambda r: scene_graphs.sample_one_predicate_per_pair(r, seed=tf.constant([5, 6]))
  )
  from_graph = _rows(next(iter(dataset)))
  assert from_graph == _rows(scene_graphs.sample_one_predicate_per_pair(_relations(), seed=tf.constant([5, 6])))


def test_keep_overlapping_relations_matches_plus_one_iou_on_integer_boxes():
  boxes_1024 = np.array([[0, 0, 10, 10], [10, 10, 20, 20], [11, 0, 30, 5], [5, 5, 8, 8]], np.float32)
  rows = [[0, 1, 1], [1, 2, 2], [0, 2, 3], [3, 0, 4], [2, 3, 5]]

  def plus_one_iou_positive(a, b):
    # neural-motifs' bbox_overlaps: intersection widths with +1 on the integer boxes.
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    return w > 0 and h > 0

  expected = [tuple(r) for r in rows if plus_one_iou_positive(boxes_1024[r[0]], boxes_1024[r[1]])]
  assert expected == [(0, 1, 1), (3, 0, 4)]  # touching corners count; a 1-unit gap does not
  kept = scene_graphs.keep_overlapping_relations(_relations(rows), tf.constant(boxes_1024))
  assert _rows(kept) == expected
  # Same answer in pixels of a 640 x 480 image (one positive scale factor).
  kept_pixels = scene_graphs.keep_overlapping_relations(_relations(rows), tf.constant(boxes_1024 * (640 / 1024)))
  assert _rows(kept_pixels) == expected


def _example(num_objects, relation_rows):
  """An example with `num_objects` objects (label i + 1, box rows of 4 x i) and the given relations."""
  i = np.arange(num_objects, dtype=np.float32)
  return {
    "image/id": tf.constant(7, tf.int64),
    "objects": {"bbox": tf.constant(np.stack([i, i, i, i], 1) / 10), "label": tf.constant(np.arange(num_objects) + 1)},
    "relations": _relations(relation_rows),
  }


def test_pad_scene_graph_pads_with_masks_and_no_cuts():
  padded = scene_graphs.pad_scene_graph(_example(3, [[0, 1, 4], [2, 0, 6]]), max_objects=5, max_relations=4)
  assert padded["objects"]["bbox"].shape == (5, 4) and padded["objects"]["label"].shape == (5,)
  np.testing.assert_array_equal(padded["objects"]["label"], [1, 2, 3, 0, 0])
  np.testing.assert_array_equal(padded["objects"]["mask"], [True, True, True, False, False])
  np.testing.assert_array_equal(padded["relations"]["predicate"], [4, 6, 0, 0])
  np.testing.assert_array_equal(padded["relations"]["subject"], [0, 2, 0, 0])
  np.testing.assert_array_equal(padded["relations"]["mask"], [True, True, False, False])
  assert int(padded["num_cut_objects"]) == 0 and int(padded["num_cut_relations"]) == 0
  assert int(padded["image/id"]) == 7


def test_pad_scene_graph_counts_cut_objects_and_the_relations_they_take_along():
  # 4 objects, max 2: objects 2, 3 are cut, so relations touching them go; then max 1 relation of the rest.
  rows = [[0, 2, 1], [0, 1, 2], [3, 1, 3], [1, 0, 4]]
  padded = scene_graphs.pad_scene_graph(_example(4, rows), max_objects=2, max_relations=1)
  np.testing.assert_array_equal(padded["objects"]["label"], [1, 2])
  assert padded["objects"]["mask"].numpy().all()
  assert _rows({k: padded["relations"][k] for k in ("subject", "object", "predicate")}) == [(0, 1, 2)]
  assert int(padded["num_cut_objects"]) == 2
  assert int(padded["num_cut_relations"]) == 3  # two to cut objects, one over max_relations


def test_pad_scene_graph_in_tf_data_gives_static_shapes():
  def generator():
    yield {"objects": {"label": np.arange(1, 4)}, "relations": {k: v.numpy() for k, v in _relations().items()}}
    yield {"objects": {"label": np.arange(1, 9)}, "relations": {k: v.numpy()[:0] for k, v in _relations().items()}}

  signature = {
    "objects": {"label": tf.TensorSpec([None], tf.int64)},
    "relations": {
      "subject": tf.TensorSpec([None], tf.int32),
      "object": tf.TensorSpec([None], tf.int32),
      "predicate": tf.TensorSpec([None], tf.int64),
    },
  }
  dataset = (
    tf.data.Dataset.from_generator(generator, output_signature=signature)
    .map(lambda ex: scene_graphs.pad_scene_graph(ex, max_objects=6, max_relations=4))
    .batch(2)
  )
  assert dataset.element_spec["objects"]["label"].shape.as_list() == [None, 6]
  assert dataset.element_spec["relations"]["mask"].shape.as_list() == [None, 4]
  batch = next(iter(dataset))
  np.testing.assert_array_equal(batch["num_cut_objects"], [0, 2])
  np.testing.assert_array_equal(batch["num_cut_relations"], [2, 0])  # 6 relations, 4 fit
  np.testing.assert_array_equal(batch["relations"]["mask"].numpy().sum(1), [4, 0])


def test_pad_scene_graph_rejects_bad_sizes():
  with pytest.raises(ValueError, match="max_relations must be a positive int"):
    scene_graphs.pad_scene_graph(_example(1, []), max_objects=3, max_relations=0)
