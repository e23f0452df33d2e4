"""Tests of jaxgraphs/evaluation/scene_graph_recall.py: hand-built cases and a loop-based cross-check."""

import math

import numpy as np
import pytest

from jaxgraphs.evaluation.scene_graph_recall import (
  SceneGraphEvaluator,
  box_iou,
  stable_top_k,
  training_triplets,
  unpad_batch,
)

NUM_PREDICATES = 5


def far_apart_boxes(n):
  """n disjoint 10x10 boxes, so a box only matches itself."""
  return np.array([[100.0 * i, 0.0, 100.0 * i + 9, 9.0] for i in range(n)])


def one_hot_scores(predicates, num_predicates=NUM_PREDICATES, high=0.9):
  """Pair-score rows putting `high` on the given predicate (1-based) and a little on the others."""
  scores = np.full((len(predicates), num_predicates + 1), 0.01)
  scores[np.arange(len(predicates)), predicates] = high
  return scores


def predcls_image(labels, relations, pairs, pair_scores):
  return {
    "gt_boxes": far_apart_boxes(len(labels)),
    "gt_labels": np.asarray(labels),
    "gt_relations": np.asarray(relations).reshape(-1, 3),
    "pairs": np.asarray(pairs).reshape(-1, 2),
    "pair_scores": np.asarray(pair_scores, dtype=np.float64),
  }


def evaluate(images, ks=(1, 2, 3, 100), modes=("predcls",), **kwargs):
  evaluator = SceneGraphEvaluator(modes, ks=ks, num_predicates=NUM_PREDICATES, **kwargs)
  for image in images:
    evaluator.update(image)
  return evaluator.result()


def test_box_iou_uses_plus_one_pixel_convention():
  iou = box_iou(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([[0.0, 0.0, 9.0, 4.0], [0.0, 0.0, 4.0, 4.0]]))
  # +1 convention: 50/100 and 25/100; the continuous convention would give 36/81 and 16/81.
  np.testing.assert_allclose(iou, [[0.5, 0.25]])


@pytest.mark.parametrize("object_y2, expected_recall", [(4.0, 1.0), (4.0 - 1e-6, 0.0)])
def test_iou_exactly_half_hits_and_just_below_misses(object_y2, expected_recall):
  gt_boxes = np.array([[0.0, 0.0, 9.0, 9.0], [50.0, 0.0, 59.0, 9.0]])
  pred_boxes = np.array([[0.0, 0.0, 9.0, 9.0], [50.0, 0.0, 59.0, object_y2]])  # object IoU 0.5 / just below
  image = {
    "gt_boxes": gt_boxes,
    "gt_labels": np.array([1, 2]),
    "gt_relations": np.array([[0, 1, 3]]),
    "pred_boxes": pred_boxes,
    "pred_labels": np.array([1, 2]),
    "pred_scores": np.array([0.9, 0.8]),
    "pairs": np.array([[0, 1]]),
    "pair_scores": one_hot_scores([3]),
  }
  assert box_iou(gt_boxes[1:], pred_boxes[1:])[0, 0] == pytest.approx(0.5, abs=1e-6)
  result = evaluate([image], modes=("sgdet",))
  assert result["sgdet/R@100"] == expected_recall
  assert result["sgdet/ngR@100"] == expected_recall


def test_several_gt_predicates_for_one_pair():
  # Pair (0, 1) carries predicates 3 and 4: with graph constraint it predicts only its argmax (3).
  scores = np.full((1, NUM_PREDICATES + 1), 0.01)
  scores[0, 3], scores[0, 4] = 0.6, 0.3
  image = predcls_image([1, 2], [[0, 1, 3], [0, 1, 4]], [[0, 1]], scores)
  result = evaluate([image])
  assert result["predcls/R@100"] == 0.5
  assert result["predcls/ngR@1"] == 0.5
  assert result["predcls/ngR@2"] == 1.0


def test_duplicate_gt_rows_are_separate_relations_hit_by_one_prediction():
  image = predcls_image([1, 2], [[0, 1, 3], [0, 1, 3]], [[0, 1]], one_hot_scores([3]))
  assert evaluate([image])["predcls/R@1"] == 1.0


def test_ties_between_pairs_keep_the_earlier_pair():
  # Both pairs score 0.9 * 1 * 1; only pair (1, 0) is in the GT. K = 1 keeps the first pair listed.
  gt = [[1, 0, 2]]
  scores = one_hot_scores([2, 2])
  first = predcls_image([1, 2], gt, [[0, 1], [1, 0]], scores)
  second = predcls_image([1, 2], gt, [[1, 0], [0, 1]], scores)
  assert evaluate([first])["predcls/R@1"] == 0.0
  assert evaluate([second])["predcls/R@1"] == 1.0
  assert evaluate([first])["predcls/ngR@1"] == 0.0
  assert evaluate([second])["predcls/ngR@1"] == 1.0


def test_argmax_tie_goes_to_the_lower_predicate():
  scores = np.full((1, NUM_PREDICATES + 1), 0.01)
  scores[0, 2] = scores[0, 4] = 0.4
  for predicate, graph_recall in ((2, 1.0), (4, 0.0)):
    image = predcls_image([1, 2], [[0, 1, predicate]], [[0, 1]], scores)
    result = evaluate([image])
    assert result["predcls/R@100"] == graph_recall
    assert result["predcls/ngR@1"] == graph_recall  # ng ties: lower predicate first
    assert result["predcls/ngR@2"] == 1.0


def test_background_column_is_never_predicted():
  scores = np.array([[0.9, 0.02, 0.05, 0.01, 0.01, 0.01]])
  image = predcls_image([1, 2], [[0, 1, 2]], [[0, 1]], scores)
  result = evaluate([image])
  assert result["predcls/R@1"] == 1.0 and result["predcls/ngR@1"] == 1.0


def test_k_truncation():
  # Five pairs with decreasing scores; the GT relation is the third.
  pairs = [[0, 1], [1, 0], [0, 2], [2, 0], [1, 2]]
  scores = one_hot_scores([1] * 5) * np.array([1.0, 0.9, 0.8, 0.7, 0.6])[:, None]
  image = predcls_image([1, 1, 1], [[0, 2, 1]], pairs, scores)
  result = evaluate([image], ks=(1, 2, 3, 5))
  assert [result[f"predcls/R@{k}"] for k in (1, 2, 3, 5)] == [0.0, 0.0, 1.0, 1.0]
  # Without graph constraint every pair's five entries compete: each pair's best entry still comes first.
  assert [result[f"predcls/ngR@{k}"] for k in (1, 2, 3, 5)] == [0.0, 0.0, 1.0, 1.0]


def test_images_without_relations_are_not_counted():
  hit = predcls_image([1, 2], [[0, 1, 3]], [[0, 1]], one_hot_scores([3]))
  miss = predcls_image([1, 2], [[0, 1, 4]], [[0, 1]], one_hot_scores([3]))
  empty = predcls_image([1, 2], np.zeros((0, 3), dtype=int), [[0, 1]], one_hot_scores([3]))
  result = evaluate([hit, empty, miss, {"gt_relations": []}])
  assert result["predcls/num_images"] == 2
  assert result["predcls/R@100"] == 0.5


def test_image_without_candidate_pairs_scores_zero():
  image = predcls_image([1, 2], [[0, 1, 3]], np.zeros((0, 2), int), np.zeros((0, NUM_PREDICATES + 1)))
  result = evaluate([image])
  assert result["predcls/R@100"] == 0.0 and result["predcls/ngR@100"] == 0.0


def test_mean_recall_and_zero_shot_recall_by_hand():
  # Image A: predicates {1, 1, 2}, hits (0,1,1) and (0,2,2)  -> predicate 1: 1/2, predicate 2: 1/1.
  # Image B: predicates {1, 3}, hits (0,1,1) only          -> predicate 1: 1/1, predicate 3: 0/1.
  pairs = [[0, 1], [1, 2], [0, 2]]
  image_a = predcls_image([1, 2, 3], [[0, 1, 1], [1, 2, 1], [0, 2, 2]], pairs, one_hot_scores([1, 3, 2]))
  image_b = predcls_image([1, 2, 3], [[0, 1, 1], [1, 2, 3]], pairs, one_hot_scores([1, 5, 2]))
  # Seen in training: (1, 2, 1) and (2, 3, 1). Zero-shot: A (1, 3, 2) hit; B (2, 3, 3) missed.
  train = np.array([[1, 2, 1], [2, 3, 1]])
  result = evaluate([image_a, image_b], train_triplets=train)
  assert result["predcls/R@100"] == pytest.approx((2 / 3 + 1 / 2) / 2)
  per_predicate = result["predcls/per_predicate_R@100"]
  assert per_predicate[:3] == [pytest.approx(0.75), 1.0, 0.0]
  assert all(math.isnan(r) for r in per_predicate[3:])  # predicates 4, 5 never occur
  assert result["predcls/mR@100"] == pytest.approx((0.75 + 1.0 + 0.0 + 0.0 + 0.0) / NUM_PREDICATES)
  assert result["predcls/num_zero_shot_images"] == 2
  assert result["predcls/zR@100"] == pytest.approx((1.0 + 0.0) / 2)
  # At K = 1 only each image's first pair, (0, 1) with predicate 1, is kept.
  assert result["predcls/mR@1"] == pytest.approx(((0.5 + 1.0) / 2) / NUM_PREDICATES)
  assert result["predcls/zR@1"] == 0.0


def test_training_triplets_are_subject_object_predicate_rows():
  triplets = training_triplets([np.array([4, 5, 6])], [np.array([[0, 1, 2], [2, 0, 1], [0, 1, 2]])])
  np.testing.assert_array_equal(triplets, [[4, 5, 2], [6, 4, 1]])


def test_predcls_uses_gt_labels_and_unit_object_scores():
  image = predcls_image([1, 2], [[0, 1, 3]], [[0, 1]], one_hot_scores([3]))
  image.update(pred_labels=np.array([7, 7]), pred_scores=np.array([0.0, 0.0]))  # ignored in predcls
  assert evaluate([image])["predcls/R@1"] == 1.0


def test_sgcls_uses_predicted_labels_and_scores_in_the_ranking():
  # Pair (0, 1) has the better predicate score but a low object score; GT is on pair (1, 0).
  image = predcls_image([1, 2], [[1, 0, 3]], [[0, 1], [1, 0]], one_hot_scores([3, 3]) * [[1.0], [0.5]])
  image.update(pred_labels=np.array([1, 2]), pred_scores=np.array([0.9, 0.9]))
  assert evaluate([image], modes="sgcls")["sgcls/R@1"] == 0.0
  image["pair_scores"] = one_hot_scores([3, 3]) * [[0.5], [1.0]]
  assert evaluate([image], modes="sgcls")["sgcls/R@1"] == 1.0
  image["pred_labels"] = np.array([1, 3])  # wrong subject class
  assert evaluate([image], modes="sgcls")["sgcls/R@1"] == 0.0


def test_several_modes_read_nested_predictions():
  image = predcls_image([1, 2], [[0, 1, 3]], [], np.zeros((0, NUM_PREDICATES + 1)))
  image["predcls"] = {"pairs": np.array([[0, 1]]), "pair_scores": one_hot_scores([3])}
  image["sgcls"] = {**image["predcls"], "pred_labels": np.array([2, 2]), "pred_scores": np.ones(2)}
  result = evaluate([image], modes=("predcls", "sgcls"))
  assert result["predcls/R@1"] == 1.0 and result["sgcls/R@1"] == 0.0


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("pair_scores", np.zeros((1, NUM_PREDICATES)), "background in column 0"),
    ("gt_relations", np.array([[0, 1, 0]]), "predicates"),
    ("pairs", np.array([[0, 5]]), "pairs holds indices"),
    ("pair_scores", -np.ones((1, NUM_PREDICATES + 1)), "probabilities, not logits"),
  ],
)
def test_bad_input_names_the_field(field, value, message):
  image = predcls_image([1, 2], [[0, 1, 3]], [[0, 1]], one_hot_scores([3]))
  image[field] = value
  with pytest.raises(ValueError, match=message):
    evaluate([image])


def test_missing_field_is_named():
  image = predcls_image([1, 2], [[0, 1, 3]], [[0, 1]], one_hot_scores([3]))
  del image["pair_scores"]
  with pytest.raises(ValueError, match="'pair_scores'"):
    evaluate([image])


def test_stable_top_k_equals_stable_argsort():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 4, 200).astype(float)
  for k in (1, 7, 50, 199, 200, 300):
    np.testing.assert_array_equal(stable_top_k(scores, k), np.argsort(-scores, kind="stable")[:k])


# ---- randomized cross-check against an independent loop implementation -------------------------------


def loop_iou(a, b):
  inter_w = min(a[2], b[2]) - max(a[0], b[0]) + 1
  inter_h = min(a[3], b[3]) - max(a[1], b[1]) + 1
  inter = max(inter_w, 0.0) * max(inter_h, 0.0)
  area = lambda box: (box[2] - box[0] + 1) * (box[3] - box[1] + 1)  # noqa: E731
  return inter / (area(a) + area(b) - inter)


def loop_hits(image, predictions, k):
  """Per GT relation, whether it is hit, from plain Python loops (graph, no graph)."""
  gt_boxes, gt_labels = image["gt_boxes"], image["gt_labels"]
  boxes, labels, obj_scores = predictions["pred_boxes"], predictions["pred_labels"], predictions["pred_scores"]
  graph, no_graph = [], []
  for i, (s, o) in enumerate(predictions["pairs"]):
    row = [float(x) for x in predictions["pair_scores"][i]]
    best = 1
    for p in range(2, len(row)):
      if row[p] > row[best]:
        best = p
    pair_score = float(obj_scores[s]) * float(obj_scores[o])
    graph.append((pair_score * row[best], s, o, best))
    no_graph.extend((pair_score * row[p], s, o, p) for p in range(1, len(row)))
  results = []
  for triplets in (graph, no_graph):
    kept = sorted(triplets, key=lambda t: -t[0])[:k]  # Python's sort is stable
    hits = []
    for gs, go, gp in image["gt_relations"]:
      hits.append(
        any(
          p == gp
          and labels[s] == gt_labels[gs]
          and labels[o] == gt_labels[go]
          and loop_iou(gt_boxes[gs], boxes[s]) >= 0.5
          and loop_iou(gt_boxes[go], boxes[o]) >= 0.5
          for _, s, o, p in kept
        )
      )
    results.append(hits)
  return results


def loop_metrics(images, ks, train):
  metrics = {}
  train = {tuple(t) for t in train}
  for prefix, which in (("", 0), ("ng", 1)):
    for k in ks:
      recalls, zero_shot, per_predicate = [], [], {}
      for image in images:
        if len(image["gt_relations"]) == 0:
          continue
        hits = loop_hits(image, image, k)[which]
        recalls.append(sum(hits) / len(hits))
        labels = image["gt_labels"]
        unseen = [h for h, (s, o, p) in zip(hits, image["gt_relations"]) if (labels[s], labels[o], p) not in train]
        if unseen:
          zero_shot.append(sum(unseen) / len(unseen))
        for p in set(int(p) for p in image["gt_relations"][:, 2]):
          mine = [h for h, rel in zip(hits, image["gt_relations"]) if rel[2] == p]
          per_predicate.setdefault(p, []).append(sum(mine) / len(mine))
      metrics[f"{prefix}R@{k}"] = np.mean(recalls)
      metrics[f"{prefix}zR@{k}"] = np.mean(zero_shot)
      metrics[f"{prefix}mR@{k}"] = sum(np.mean(v) for v in per_predicate.values()) / NUM_PREDICATES
  return metrics


def random_sgdet_image(rng, num_gt=4, num_det=7, num_classes=3):
  """Detections jittered around GT boxes, mostly right labels, coarse scores: hits and ties are common."""
  xy = rng.uniform(0, 60, (num_gt, 2))
  gt_boxes = np.round(np.concatenate([xy, xy + rng.uniform(5, 30, (num_gt, 2))], axis=1))
  gt_labels = rng.integers(1, num_classes + 1, num_gt)
  source = rng.integers(0, num_gt, num_det)
  pred_boxes = gt_boxes[source] + rng.integers(-4, 5, (num_det, 4))
  pred_labels = np.where(rng.random(num_det) < 0.8, gt_labels[source], rng.integers(1, num_classes + 1, num_det))
  num_rels = rng.integers(0, 8)
  relations = np.array([rng.permutation(num_gt)[:2] for _ in range(num_rels)], dtype=int).reshape(-1, 2)
  relations = np.column_stack([relations, rng.integers(1, 4, num_rels)])
  subjects, objects = np.nonzero(~np.eye(num_det, dtype=bool))
  keep = rng.random(len(subjects)) < 0.7
  pairs = np.stack([subjects[keep], objects[keep]], axis=1)
  return {
    "gt_boxes": gt_boxes,
    "gt_labels": gt_labels,
    "gt_relations": relations,
    "pred_boxes": pred_boxes,
    "pred_labels": pred_labels,
    "pred_scores": rng.integers(1, 5, num_det) / 4.0,
    "pairs": pairs,
    "pair_scores": rng.integers(0, 4, (len(pairs), NUM_PREDICATES + 1)) / 4.0,
  }


def test_random_images_match_loop_implementation():
  rng = np.random.default_rng(1234)
  images = [random_sgdet_image(rng) for _ in range(60)]
  all_triplets = [(s, o, p) for s in (1, 2, 3) for o in (1, 2, 3) for p in (1, 2, 3)]
  train = all_triplets[::2]
  ks = (1, 5, 20, 100)
  result = evaluate(images, ks=ks, modes=("sgdet",), train_triplets=train)
  expected = loop_metrics(images, ks, train)
  for name, value in expected.items():
    assert result[f"sgdet/{name}"] == pytest.approx(value, abs=1e-12), name


# ---- padded batches ---------------------------------------------------------------------------------------


def pad(array, length, value=0):
  array = np.asarray(array)
  widths = [(0, length - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
  return np.pad(array, widths, constant_values=value)


def test_padded_dense_batch_equals_per_image_updates():
  rng = np.random.default_rng(7)
  max_objects, max_relations = 5, 4
  images, batch = (
    [],
    {
      key: []
      for key in (
        "gt_boxes",
        "gt_labels",
        "gt_box_mask",
        "gt_relations",
        "gt_relation_mask",
        "pair_scores",
        "pair_mask",
      )
    },
  )
  for num_objects, num_relations in ((3, 2), (5, 4), (2, 1)):
    labels = rng.integers(1, 3, num_objects)
    relations = np.stack([rng.permutation(num_objects)[:2] for _ in range(num_relations)])
    relations = np.column_stack([relations, rng.integers(1, 4, num_relations)])
    dense_scores = rng.random((max_objects, max_objects, NUM_PREDICATES + 1))
    subjects, objects = np.nonzero(~np.eye(num_objects, dtype=bool))
    images.append(
      {
        "gt_boxes": far_apart_boxes(num_objects),
        "gt_labels": labels,
        "gt_relations": relations,
        "pairs": np.stack([subjects, objects], axis=1),
        "pair_scores": dense_scores[subjects, objects],
      }
    )
    batch["gt_boxes"].append(pad(far_apart_boxes(num_objects), max_objects))
    batch["gt_labels"].append(pad(labels, max_objects))
    batch["gt_box_mask"].append(np.arange(max_objects) < num_objects)
    batch["gt_relations"].append(pad(relations, max_relations))
    batch["gt_relation_mask"].append(np.arange(max_relations) < num_relations)
    batch["pair_scores"].append(dense_scores.reshape(max_objects * max_objects, -1))
    # Leave the diagonal and the padded objects switched on: unpadding must drop them itself.
    batch["pair_mask"].append(~np.eye(max_objects, dtype=bool).ravel())
  batch = {key: np.stack(value) for key, value in batch.items()}
  batch["mask"] = np.array([True, True, True])

  expected = evaluate(images, ks=(1, 3, 10))
  evaluator = SceneGraphEvaluator("predcls", ks=(1, 3, 10), num_predicates=NUM_PREDICATES)
  evaluator.update_batch(batch)
  padded_image = {key: value[:1] for key, value in batch.items()}
  padded_image["mask"] = np.array([False])
  evaluator.update_batch(padded_image)
  result = evaluator.result()
  assert result.keys() == expected.keys()
  for name, value in expected.items():
    np.testing.assert_allclose(result[name], value, rtol=1e-12, err_msg=name)


def test_unpad_renumbers_objects_after_holes_in_the_mask():
  batch = {
    "gt_boxes": far_apart_boxes(3)[None],
    "gt_labels": np.array([[1, 9, 2]]),
    "gt_box_mask": np.array([[True, False, True]]),
    "gt_relations": np.array([[[2, 0, 3]]]),
    "gt_relation_mask": np.array([[True]]),
    "pairs": np.array([[[0, 2], [2, 0], [1, 0]]]),
    "pair_scores": np.ones((1, 3, NUM_PREDICATES + 1)),
    "pair_mask": np.array([[True, True, True]]),
  }
  (image,) = unpad_batch(batch)
  np.testing.assert_array_equal(image["gt_labels"], [1, 2])
  np.testing.assert_array_equal(image["gt_relations"], [[1, 0, 3]])
  np.testing.assert_array_equal(image["pairs"], [[0, 1], [1, 0]])


def test_rejected_image_leaves_no_trace():
  good = predcls_image([1, 2], [[0, 1, 3]], [[0, 1]], one_hot_scores([3]))
  bad = predcls_image([1, 2], [[0, 1, 4]], [[0, 1]], one_hot_scores([3]))
  bad["sgcls"] = {"pairs": np.array([[0, 1]]), "pair_scores": one_hot_scores([3])}  # lacks pred_labels
  bad["predcls"] = {"pairs": np.array([[0, 1]]), "pair_scores": one_hot_scores([3])}
  good["predcls"], good["sgcls"] = bad["predcls"], {**bad["sgcls"], "pred_labels": [1, 2], "pred_scores": [1, 1]}
  evaluator = SceneGraphEvaluator(("predcls", "sgcls"), ks=(1,), num_predicates=NUM_PREDICATES)
  with pytest.raises(ValueError, match="'pred_labels'"):
    evaluator.update(bad)
  evaluator.update(good)
  result = evaluator.result()
  assert result["predcls/num_images"] == 1
  assert result["predcls/R@1"] == 1.0 and result["sgcls/R@1"] == 1.0


@pytest.mark.parametrize("convention", ["zero", "skip"])
def test_image_without_candidate_pairs_counts_zero_or_is_skipped(convention):
  images = [
    # Hits (1, 2, on=3), misses (2, 3, 4) with a 5: recall 1/2.
    predcls_image([1, 2, 3], [[0, 1, 3], [1, 2, 4]], [[0, 1], [1, 2]], one_hot_scores([3, 5])),
    predcls_image([1, 2], [[0, 1, 3]], [[0, 1]], one_hot_scores([3])),  # recall 1
    predcls_image([1, 2], [[0, 1, 2]], np.zeros((0, 2)), np.zeros((0, NUM_PREDICATES + 1))),  # nothing to rank
  ]
  train = [[1, 2, 3], [2, 3, 4]]  # (1, 2, 2) of the third image is the only zero-shot triplet
  result = evaluate(images, ks=(100,), images_without_pairs=convention, train_triplets=train)
  assert result["predcls/num_images_without_pairs"] == 1
  per_predicate = result["predcls/per_predicate_R@100"]
  if convention == "zero":
    # (1/2 + 1 + 0) / 3; predicate 2 occurs in one image and is never hit; the zero-shot image scores 0.
    assert result["predcls/num_images"] == 3 and result["predcls/R@100"] == pytest.approx(0.5)
    assert per_predicate[1] == 0.0 and result["predcls/zR@100"] == 0.0
    assert result["predcls/num_zero_shot_images"] == 1
  else:
    # (1/2 + 1) / 2: the third image is in no mean, so predicate 2 and zR have no image at all.
    assert result["predcls/num_images"] == 2 and result["predcls/R@100"] == pytest.approx(0.75)
    assert math.isnan(per_predicate[1]) and math.isnan(result["predcls/zR@100"])
    assert result["predcls/num_zero_shot_images"] == 0
  # Either way predicate 3 is always hit, predicate 4 never: mR = (0 + 0 + 1 + 0 + 0) / 5.
  assert per_predicate[2] == 1.0 and per_predicate[3] == 0.0
  assert result["predcls/mR@100"] == pytest.approx(1 / NUM_PREDICATES)
  # Without graph constraint the 0.01 on predicate 4 is ranked too, so the first image is fully recalled.
  assert result["predcls/ngR@100"] == pytest.approx({"zero": 2 / 3, "skip": 1.0}[convention])


def test_images_without_pairs_rejects_unknown_conventions():
  with pytest.raises(ValueError, match="images_without_pairs='drop'"):
    SceneGraphEvaluator("predcls", images_without_pairs="drop")


@pytest.mark.parametrize("convention, recall", [("zero", 0.5), ("skip", 1.0)])
def test_sgdet_image_without_detections_is_evaluated_not_dropped_by_default(convention, recall):
  # A padded SGDet batch as the model emits it: image 0 has two detections matching its ground truth, image 1's
  # detector found nothing (every detection slot is padding). Its relation counts as missed (neural-motifs), or
  # the image leaves the mean (Scene-Graph-Benchmark, images_without_pairs='skip').
  boxes = far_apart_boxes(2)
  scores = np.zeros((2, 4, NUM_PREDICATES + 1))
  scores[0, 1] = one_hot_scores([3])[0]  # dense pair 1 = (subject 0, object 1)
  batch = {
    "gt_boxes": np.stack([boxes, boxes]),
    "gt_labels": np.array([[1, 2], [1, 2]]),
    "gt_box_mask": np.ones((2, 2)),
    "gt_relations": np.array([[[0, 1, 3]], [[0, 1, 3]]]),
    "gt_relation_mask": np.ones((2, 1)),
    "pair_scores": scores,
    "pred_boxes": np.stack([boxes, boxes]),
    "pred_labels": np.array([[1, 2], [1, 2]]),
    "pred_scores": np.ones((2, 2)),
    "pred_box_mask": np.array([[1, 1], [0, 0]]),
    "mask": np.ones(2),
  }
  evaluator = SceneGraphEvaluator(("sgdet",), ks=(20,), num_predicates=NUM_PREDICATES, images_without_pairs=convention)
  evaluator.update_batch(batch)
  result = evaluator.result()
  assert result["sgdet/R@20"] == recall
  assert result["sgdet/num_images_without_pairs"] == 1
