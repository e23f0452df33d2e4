"""Scene-graph preprocessing: box frames after resize/pad/flip, packing with cut counts, training pairs, sources."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from jaxgraphs.data import pipeline, scene_graphs, sources, transforms


def _example(height=30, width=60):
  """5 objects (normalised ymin, xmin, ymax, xmax), 4 relations, one to the last object."""
  boxes = np.array(
    [[0.1, 0.1, 0.5, 0.4], [0.2, 0.5, 0.9, 0.9], [0.0, 0.0, 1.0, 1.0], [0.6, 0.1, 0.8, 0.3], [0.3, 0.3, 0.4, 0.4]],
    np.float32,
  )
  return {
    "image": tf.zeros([height, width, 3], tf.uint8),
    "boxes": tf.constant(boxes),
    "box_labels": tf.constant([3, 1, 2, 5, 4], tf.int32),
    "relations": {
      "subject": tf.constant([0, 1, 3, 2], tf.int32),
      "object": tf.constant([1, 2, 4, 0], tf.int32),
      "predicate": tf.constant([1, 2, 3, 2], tf.int32),
    },
    transforms.SEED_KEY: tf.constant([1, 2], tf.int64),
  }, boxes


def test_pack_gives_pixel_boxes_of_the_resized_padded_image_and_cut_counts():
  example, boxes = _example()
  out = transforms.build("resize_long(120)|pad_bottom_right(120)|pack_scene_graph(4, 3)")(example)
  assert out["image"].shape == (120, 120, 3)  # 30 x 60 -> 60 x 120, padded below to 120 x 120
  np.testing.assert_array_equal(out["image"][60:], np.broadcast_to([124, 116, 104], (60, 120, 3)))  # uint8: mean colour
  expected = np.stack([boxes[:4, 1] * 120, boxes[:4, 0] * 60, boxes[:4, 3] * 120, boxes[:4, 2] * 60], axis=1)
  np.testing.assert_allclose(out["object_boxes"], expected, rtol=1e-5, atol=1e-4)
  np.testing.assert_array_equal(out["object_labels"], [3, 1, 2, 5])
  np.testing.assert_array_equal(out["object_mask"], [1, 1, 1, 1])
  # The relation to object 4 is cut with the object; the other three fit exactly.
  np.testing.assert_array_equal(out["relations"], [[0, 1, 1], [1, 2, 2], [2, 0, 2]])
  np.testing.assert_array_equal(out["relation_mask"], [1, 1, 1])
  assert int(out["num_cut_objects"]) == 1 and int(out["num_cut_relations"]) == 1
  assert "boxes" not in out and "box_labels" not in out


def test_flip_mirrors_boxes_and_remaps_predicates():
  example, boxes = _example()
  out = transforms.build("flip_lr(p=1.0, predicate_map=(0, 2, 1, 3, 4, 5))|pack_scene_graph(8, 8)")(example)
  np.testing.assert_allclose(out["object_boxes"][:5, 0], (1 - boxes[:, 3]) * 60, rtol=1e-5)
  np.testing.assert_array_equal(out["relations"][:4, 2], [2, 1, 3, 1])
  kept = transforms.build("flip_lr(p=0.0, predicate_map=(0, 2, 1, 3, 4, 5))|pack_scene_graph(8, 8)")(_example()[0])
  np.testing.assert_array_equal(kept["relations"][:4, 2], [1, 2, 3, 2])


def test_flip_predicate_map_without_relations_fails_clearly():
  with pytest.raises(KeyError, match="scene-graph source"):
    transforms.build("flip_lr(predicate_map=(0, 1))")(
      {"image": tf.zeros([4, 4, 3], tf.uint8), transforms.SEED_KEY: tf.constant([0, 1], tf.int64)}
    )


def test_sample_relation_pairs_keeps_a_share_of_foreground_and_fills_with_background():
  relations = tf.constant([[0, 1, 4], [1, 2, 5], [3, 0, 6], [0, 0, 0]], tf.int32)
  relation_mask = tf.constant([1, 1, 1, 0], tf.float32)
  object_mask = tf.constant([1, 1, 1, 1, 0, 0], tf.float32)  # 4 real objects of 6
  pairs, labels, mask = scene_graphs.sample_relation_pairs(
    relations, relation_mask, object_mask, 10, 0.2, tf.constant([3, 4], tf.int64)
  )
  pairs, labels, mask = pairs.numpy(), labels.numpy(), mask.numpy()
  assert mask.all()
  annotated = {(0, 1): 4, (1, 2): 5, (3, 0): 6}
  foreground = [(tuple(p), l) for p, l in zip(pairs, labels) if l > 0]
  assert len(foreground) == 2 and all(annotated[p] == l for p, l in foreground)  # floor(10 * 0.2)
  background = [tuple(p) for p, l in zip(pairs, labels) if l == 0]
  assert len(background) == 8 and len(set(background)) == 8
  assert all(s != o and s < 4 and o < 4 and (s, o) not in annotated for s, o in background)
  # Too few candidates: 2 real objects have 2 ordered pairs, one of them annotated.
  pairs, labels, mask = scene_graphs.sample_relation_pairs(
    relations, tf.constant([1, 0, 0, 0]), tf.constant([1, 1, 0, 0, 0, 0]), 6, 0.5, tf.constant([0, 0], tf.int64)
  )
  assert mask.numpy().sum() == 2
  assert sorted(map(tuple, pairs.numpy()[:2].tolist())) == [(0, 1), (1, 0)]
  assert sorted(labels.numpy()[:2].tolist()) == [0, 4]


def test_sampling_is_a_function_of_the_seed():
  example = _example()[0]
  ops = transforms.build("one_predicate_per_pair|pack_scene_graph(8, 8)|sample_relation_pairs(12, 0.25)")
  first, second = ops(dict(example)), ops(dict(example))
  np.testing.assert_array_equal(first["pairs"], second["pairs"])
  assert first["pairs"].shape == (12, 2) and int(first["pair_mask"].numpy().sum()) == 12


def test_sample_relation_pairs_needs_packed_examples():
  with pytest.raises(KeyError, match="after pack_scene_graph"):
    transforms.build("sample_relation_pairs(4)")(_example()[0])


def test_scene_graph_sources_put_the_background_at_zero():
  vg = sources.get_source("vg150")
  assert isinstance(vg, sources.SceneGraphSource)
  assert vg.num_classes == 151 and len(vg.predicate_names) == 51
  assert vg.class_names[0] == vg.predicate_names[0] == "__background__"
  shapes = sources.get_source("builtin_shapes/tiny:scene_graph")
  assert shapes.num_classes == 13 and shapes.predicate_names[1:3] == ("left of", "right of")
  assert "predicate_map=(0, 2, 1, 3, 4, 5, 6, 7, 8)" in shapes.pp_train


def test_builtin_shapes_scene_graph_batches(tmp_path):
  config = pipeline.default_data_config()
  config.source = "builtin_shapes/tiny:scene_graph"
  config.data_dir = str(tmp_path)
  batch = next(pipeline.build_train_dataset(config, local_batch_size=4, seed=0))
  assert batch["image"].shape == (4, 64, 64, 3) and batch["object_boxes"].shape == (4, 8, 4)
  real = batch["object_mask"] > 0
  assert batch["object_labels"][real].min() >= 1 and batch["object_labels"][real].max() <= 12
  assert np.all(batch["object_labels"][~real] == 0)
  rel = batch["relations"][batch["relation_mask"] > 0]
  assert rel[:, 2].min() >= 1 and rel[:, 2].max() <= 8
  # labels: the multi-hot of the object classes (background column never set).
  for b in range(4):
    present = np.zeros(13)
    present[batch["object_labels"][b][real[b]]] = 1
    np.testing.assert_array_equal(batch["labels"][b], present)
  # Foreground training pairs carry the predicate of their relation (one per pair after sampling).
  for b in range(4):
    annotated = {(s, o): p for s, o, p in batch["relations"][b][batch["relation_mask"][b] > 0]}
    for (s, o), label, used in zip(batch["pairs"][b], batch["pair_labels"][b], batch["pair_mask"][b]):
      if used and label:
        assert annotated[(s, o)] == label
      elif used:
        assert (s, o) not in annotated and s != o and real[b, s] and real[b, o]
  triplets = sources.get_source("builtin_shapes/tiny:scene_graph").train_triplets(str(tmp_path))
  assert triplets.shape[1] == 3 and triplets[:, :2].min() >= 1 and triplets[:, 2].max() <= 8
