"""Scene-graph task: eq. (18) loss vs NumPy, evaluation through SceneGraphEvaluator, pictures and predict hooks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from jaxgraphs.tasks import scene_graph

CLASSES = ("__background__", "cat", "dog", "hat")
PREDICATES = ("__background__", "on", "near")


def _softmax(x):
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _ce(logits, labels):
  return -np.log(np.take_along_axis(_softmax(logits), labels[..., None], axis=-1)[..., 0])


def _batch_and_outputs(seed=0):
  rng = np.random.default_rng(seed)
  batch = {
    "image": rng.normal(size=(2, 16, 16, 3)).astype(np.float32),
    "mask": np.array([1.0, 0.0], np.float32),  # the second image is padding
    "object_boxes": np.array([[[0, 0, 5, 5], [6, 6, 12, 12], [2, 8, 6, 14]]] * 2, np.float32),
    "object_labels": np.array([[1, 2, 3], [2, 2, 0]], np.int32),
    "object_mask": np.array([[1, 1, 1], [1, 1, 0]], np.float32),
    "relations": np.array([[[0, 1, 1], [2, 0, 2]], [[1, 0, 1], [0, 0, 0]]], np.int32),
    "relation_mask": np.array([[1, 1], [1, 0]], np.float32),
    "labels": np.array([[0, 1, 1, 1], [0, 0, 1, 0]], np.float32),
    "pairs": np.array([[[0, 1], [2, 0], [1, 2], [0, 0]]] * 2, np.int32),
    "pair_labels": np.array([[1, 2, 0, 0], [1, 0, 0, 0]], np.int32),
    "pair_mask": np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.float32),
    "num_cut_objects": np.array([2, 5], np.int32),
    "num_cut_relations": np.array([1, 7], np.int32),
  }
  outputs = {
    "object_logits": rng.normal(size=(2, 3, 4)).astype(np.float32),
    "relation_logits": rng.normal(size=(2, 4, 3)).astype(np.float32),
    "global_logits": rng.normal(size=(2, 4)).astype(np.float32),
    "detector_logits": rng.normal(size=(2, 3, 4)).astype(np.float32),
  }
  return batch, outputs


def _task(mode="sgcls", **kwargs):
  return scene_graph.SceneGraphTask(mode, CLASSES, PREDICATES, **kwargs)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_loss_is_equation_18_over_real_entries(activation):
  batch, outputs = _batch_and_outputs()
  weights = dict(object_weight=0.5, relation_weight=2.0, global_weight=0.3, detector_weight=0.7)
  total, metrics = _task(global_activation=activation, **weights).loss(outputs, batch)
  objects = _ce(outputs["object_logits"][0], batch["object_labels"][0]).mean()  # image 1 is padding
  relations = _ce(outputs["relation_logits"][0, :3], batch["pair_labels"][0, :3]).mean()  # pair 3 is padding
  detector = _ce(outputs["detector_logits"][0], batch["object_labels"][0]).mean()
  y = batch["labels"][0]
  p = (
    1 / (1 + np.exp(-outputs["global_logits"][0])) if activation == "sigmoid" else _softmax(outputs["global_logits"][0])
  )
  global_ = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
  np.testing.assert_allclose(metrics["object_loss"], objects, rtol=1e-5)
  np.testing.assert_allclose(metrics["relation_loss"], relations, rtol=1e-5)
  np.testing.assert_allclose(metrics["global_loss"], global_, rtol=1e-5)
  np.testing.assert_allclose(metrics["detector_loss"], detector, rtol=1e-5)
  np.testing.assert_allclose(total, 0.5 * objects + 2.0 * relations + 0.3 * global_ + 0.7 * detector, rtol=1e-5)
  assert float(metrics["cut_objects"]) == 2 and float(metrics["cut_relations"]) == 1


def test_loss_without_sampled_pairs_says_what_to_add():
  batch, outputs = _batch_and_outputs()
  del batch["pair_labels"]
  with pytest.raises(ValueError, match="sample_relation_pairs"):
    _task().loss(outputs, batch)


def _dense_outputs(batch, correct: bool):
  """Relation logits over all 3 x 3 pairs that put the GT predicate (or a wrong one) first."""
  logits = np.zeros((2, 9, 3), np.float32)
  for b in range(2):
    for s, o, p in batch["relations"][b][batch["relation_mask"][b] > 0]:
      logits[b, s * 3 + o, p if correct else 3 - p] = 10.0
  pairs = np.stack(np.divmod(np.arange(9), 3), axis=1)
  pair_mask = (
    (pairs[:, 0] != pairs[:, 1])[None]
    & (batch["object_mask"][:, pairs[:, 0]] > 0)
    & (batch["object_mask"][:, pairs[:, 1]] > 0)
  )
  object_logits = np.full((2, 3, 4), -5.0, np.float32)
  for b in range(2):
    object_logits[b, np.arange(3), batch["object_labels"][b]] = 5.0
  return {
    "relation_logits": logits,
    "object_logits": object_logits,
    "pairs": np.broadcast_to(pairs, (2, 9, 2)),
    "pair_mask": pair_mask,
    "boxes": batch["object_boxes"],
    "box_mask": batch["object_mask"] > 0,
    "k1_labels": batch["object_labels"],
  }


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_evaluation_of_perfect_and_wrong_predictions(mode):
  batch, _ = _batch_and_outputs()
  task = _task(mode, train_triplets=np.array([[1, 2, 1]]))
  for correct, recall in ((True, 1.0), (False, 0.0)):
    evaluator = task.make_evaluator()
    evaluator.update({k: np.asarray(v) for k, v in task.eval_outputs(_dense_outputs(batch, correct), batch).items()})
    result = evaluator.result()
    assert result[f"{mode}/R@20"] == recall and result[f"{mode}/num_images"] == 1
    # (hat, cat, near) never occurs in training: one zero-shot image.
    assert result[f"{mode}/zR@20"] == recall and result[f"{mode}/num_zero_shot_images"] == 1
    assert result["num_cut_objects"] == 2 and result["num_cut_relations"] == 1  # the padded image is not counted
  assert task.default_metric == f"{mode}/R@50"


def test_evaluation_warns_when_packing_cut_relations(caplog):
  batch, _ = _batch_and_outputs()
  task = _task("predcls")
  caplog.set_level(logging.WARNING, logger="absl")
  evaluator = task.make_evaluator()
  evaluator.update({k: np.asarray(v) for k, v in task.eval_outputs(_dense_outputs(batch, True), batch).items()})
  result = evaluator.result()
  # Only the real image counts: 2 objects and 1 relation cut, 2 relations kept.
  assert (result["num_cut_objects"], result["num_cut_relations"], result["num_images_cut"]) == (2, 1, 1)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and "cut 2 objects and 1 of 3 ground-truth relations (33.33%) in 1 images" in warnings[0]

  caplog.clear()
  batch["num_cut_objects"][0] = batch["num_cut_relations"][0] = 0
  evaluator = task.make_evaluator()
  evaluator.update({k: np.asarray(v) for k, v in task.eval_outputs(_dense_outputs(batch, True), batch).items()})
  assert evaluator.result()["num_images_cut"] == 0
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing cut, nothing said


def test_sgcls_wrong_labels_miss_even_with_the_right_predicates():
  batch, _ = _batch_and_outputs()
  outputs = _dense_outputs(batch, True)
  outputs["object_logits"] = outputs["object_logits"][:, ::-1]  # object 0 predicted as object 2's class
  task = _task("sgcls")
  evaluator = task.make_evaluator()
  evaluator.update({k: np.asarray(v) for k, v in task.eval_outputs(outputs, batch).items()})
  assert evaluator.result()["sgcls/R@20"] < 1.0


def test_pictures_and_predict_hooks():
  batch, _ = _batch_and_outputs()
  outputs = _dense_outputs(batch, True)
  outputs["relational_matrices"] = {"object_re2": np.full((2, 3, 3), 1 / 3, np.float32)}
  task = _task("predcls")
  pictures = task.eval_images(outputs, batch)
  graphs = pictures["eval/scene_graphs"]
  # The 16 px input enlarged 16x to 256 px, a legend beside it and a title above.
  assert graphs.dtype == np.uint8 and graphs.shape[0] == 1 and graphs.shape[1] > 256 and graphs.shape[2] > 256 + 100
  matrices = pictures["eval/relational_embedding"]
  assert matrices.shape[0] == 1 and min(matrices.shape[1:3]) >= 256
  prediction = task.predict_json(outputs, 0, top_k=2)
  assert [o["label"] for o in prediction["objects"]] == ["cat", "dog", "hat"]
  assert prediction["relations"][0]["predicate"] in ("on", "near") and len(prediction["relations"]) == 2
  assert {(r["subject"], r["object"]) for r in prediction["relations"]} == {(0, 1), (2, 0)}
  drawn = task.predict_pictures(outputs, batch["image"][0], 0)["scene_graph"]
  assert drawn.dtype == np.uint8 and drawn.shape[1] > 256 + 100 and drawn.shape[0] > 256


def test_relation_matrix_panel_folds_to_the_upper_triangle():
  from jaxgraphs.tasks.display import text_width
  from jaxgraphs.tasks.scene_graph_pictures import RELATED_SCALE, UNUSED_CELL, _matrix_panel, triangular_fold

  np.testing.assert_array_equal(triangular_fold(np.array([[0, 1], [3, 0]])), [[0, 4], [0, 0]])
  adjacency = np.zeros((3, 3))
  adjacency[1, 0] = 1
  related = (triangular_fold(adjacency) > 0).astype(float)
  panel = _matrix_panel(related, RELATED_SCALE, cell=20)
  margin = text_width("3") + 6  # the object numbers' column and row
  centre = lambda row, col: panel[margin + 20 * row + 10, margin + 20 * col + 10]
  np.testing.assert_array_equal(centre(0, 1), [255, 255, 255])  # GT (1, 0) shows at (0, 1), at 1 on the scale
  np.testing.assert_array_equal(centre(0, 2), [0, 0, 0])  # unrelated: 0 on the scale
  np.testing.assert_array_equal(centre(1, 0), UNUSED_CELL)  # each pair once, above the diagonal
