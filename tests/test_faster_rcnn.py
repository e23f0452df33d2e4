"""Faster R-CNN: test-time detections vs a NumPy transcription of the rule, losses with an image without boxes.
(Training, COCO evaluation and its pictures through the CLI: tests/test_detector_runs.py.)"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from training_helpers import config_file

from jaxgraphs import models
from jaxgraphs.models.detection import faster_rcnn
from jaxgraphs.tasks.detection import DetectionTask


def _iou(a, b):
  """+1-pixel IoU of two boxes."""
  w = min(a[2], b[2]) - max(a[0], b[0]) + 1
  h = min(a[3], b[3]) - max(a[1], b[1]) + 1
  inter = max(w, 0.0) * max(h, 0.0)
  return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)


def _reference_detections(logits, deltas, rois, roi_mask, image_hw, nms_iou, threshold, candidates, limit):
  """The rule written out: decode and clip class-specific boxes, per class keep the `candidates` best RoIs with
  probability >= threshold and run greedy NMS (+1 IoU, suppress above nms_iou), give each RoI its best surviving
  class, return the `limit` best (box, label, score) with score > 0."""
  logits = np.asarray(logits, np.float64)
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  height, width = image_hw
  w = rois[:, 2] - rois[:, 0] + 1
  h = rois[:, 3] - rois[:, 1] + 1
  cx, cy = rois[:, 0] + 0.5 * w, rois[:, 1] + 0.5 * h
  boxes = np.zeros(deltas.shape)
  for c in range(deltas.shape[1]):
    px, py = cx + deltas[:, c, 0] * w, cy + deltas[:, c, 1] * h
    pw, ph = np.exp(deltas[:, c, 2]) * w, np.exp(deltas[:, c, 3]) * h
    box = np.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw - 1, py + 0.5 * ph - 1], 1)
    boxes[:, c] = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])
  surviving = np.zeros(probs.shape)
  for c in range(1, probs.shape[1]):
    order = [r for r in np.argsort(-probs[:, c], kind="stable") if roi_mask[r] and probs[r, c] >= threshold]
    kept = []
    for r in order[:candidates]:
      if all(_iou(boxes[r, c], boxes[k, c]) <= nms_iou for k in kept):
        kept.append(r)
    surviving[kept, c] = probs[kept, c]
  label = np.argmax(surviving[:, 1:], 1) + 1
  score = surviving[np.arange(len(label)), label]
  order = [r for r in np.argsort(-score, kind="stable") if score[r] > 0][:limit]
  return [(tuple(np.round(boxes[r, label[r]], 3)), int(label[r]), round(float(score[r]), 6)) for r in order]


def test_detections_match_the_reference_rule():
  rng = np.random.default_rng(0)
  num_rois, num_classes = 40, 5
  corners = rng.uniform(0, 60, (num_rois, 2))
  rois = np.concatenate([corners, corners + rng.uniform(4, 30, (num_rois, 2))], 1).astype(np.float32)
  logits = rng.normal(0, 2, (num_rois, num_classes)).astype(np.float32)
  deltas = rng.normal(0, 0.1, (num_rois, num_classes, 4)).astype(np.float32)
  roi_mask = rng.uniform(size=num_rois) > 0.1
  kwargs = dict(nms_iou=0.3, score_threshold=0.05, candidates=12, limit=10)
  out = jax.jit(lambda *a: faster_rcnn.detections(*a, **kwargs))(
    logits, deltas, rois, roi_mask, jnp.asarray([64, 80], jnp.int32)
  )
  out = {k: np.asarray(v) for k, v in out.items()}
  got = [
    (tuple(np.round(b.astype(np.float64), 3)), int(l), round(float(s), 6))
    for b, l, s, m in zip(out["boxes"], out["labels"], out["scores"], out["mask"])
    if m
  ]
  expected = _reference_detections(
    logits, deltas, rois, roi_mask, (64, 80), 0.3, kwargs["score_threshold"], kwargs["candidates"], kwargs["limit"]
  )
  assert len(expected) >= 5  # the case exercises NMS and the one-label rule, not an empty output
  assert [g[1:] for g in got] == [e[1:] for e in expected]
  np.testing.assert_allclose([g[0] for g in got], [e[0] for e in expected], atol=2e-3)
  probs = np.asarray(jax.nn.softmax(logits, -1))
  assert np.allclose(out["distributions"][out["mask"]].sum(-1), 1.0, atol=1e-5)
  assert set(map(tuple, np.round(out["distributions"][out["mask"]], 5))) <= set(map(tuple, np.round(probs, 5)))


def _tiny_model_and_task():
  config = config_file("faster_rcnn_shapes", "tiny")
  class_names = ("__background__",) + tuple(f"class{i}" for i in range(12))
  info = types.SimpleNamespace(num_classes=len(class_names), class_names=class_names)
  return models.build_model(config.model, info), DetectionTask(class_names)


@pytest.mark.slow  # ~25 s: compiling the tiny detector's train step with its gradient
def test_image_without_boxes_trains_the_rpn_on_negatives_and_every_loss_stays_finite():
  model, task = _tiny_model_and_task()
  images = jax.random.normal(jax.random.key(0), (2, 64, 64, 3))
  batch = {
    "image": images,
    "object_boxes": jnp.asarray([[[4, 4, 30, 30], [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]]], jnp.float32),
    "object_labels": jnp.asarray([[3, 0], [0, 0]], jnp.int32),
    "object_mask": jnp.asarray([[1, 0], [0, 0]], jnp.float32),
    "image_size": jnp.asarray([[64, 64], [48, 64]], jnp.int32),
    "mask": jnp.ones(2),
  }
  variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, **task.model_inputs(batch))

  def loss_fn(params):
    outputs = model.apply(
      {**variables, "params": params}, **task.model_inputs(batch), train=True, rngs={"dropout": jax.random.key(2)}
    )
    return task.loss(outputs, batch)[0], outputs

  (loss, outputs), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
  assert np.isfinite(float(loss)) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  rpn_labels = np.asarray(outputs["rpn_labels"])
  assert np.sum(rpn_labels[0] == 1) >= 1 and np.sum(rpn_labels[1] == 1) == 0 and np.sum(rpn_labels[1] == 0) > 0
  assert np.all(np.asarray(outputs["roi_labels"])[1] == 0)
  # The second image's real pixels stop at row 48: no proposal and no anchor target reaches the padding.
  assert np.all(np.asarray(outputs["rois"])[1][np.asarray(outputs["roi_mask"])[1]][:, 3] <= 47)
