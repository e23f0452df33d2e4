"""Object detection (the Faster R-CNN behind LinkNet): losses, COCO-style evaluation, pictures of detections.

Loss, every term over what is real (padded images and boxes are masked out), as py-faster-rcnn's layers that
neural-motifs trains its VG detector with:
  rpn_class: sigmoid cross-entropy over the sampled anchors (label 0 or 1), mean over them;
  rpn_box: smooth L1 (beta 1/9, py-faster-rcnn's sigma 3) of the positive anchors' deltas, summed and divided
    by the number of sampled anchors;
  class: softmax cross-entropy over the sampled RoIs (background 0), mean over them;
  box: smooth L1 (beta 1) of the foreground RoIs' deltas for their own class, summed and divided by the number
    of sampled RoIs.
An image without boxes contributes negatives to the RPN and background RoIs to the box head; no count is ever
zero in a denominator (each is at least 1).

Evaluation: pycocotools' COCOeval on the detections (at most `max_detections` per image) against the ground
truth boxes in the network input's pixels: AP@[.5:.95], AP50 (the number neural-motifs reports for its
detector), AP75 and AP50 per class; best checkpoint by AP50.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from PIL import Image, ImageDraw

from jaxgraphs.errors import ConfigError
from jaxgraphs.evaluation.detection_metrics import DetectionEvaluator
from jaxgraphs.tasks import base
from jaxgraphs.tasks.display import (
  GREEN,
  GREY,
  LINE_HEIGHT,
  WHITE,
  YELLOW,
  as_uint8_image,
  draw_tag,
  free_spot,
  images_for_display,
  resize_for_display,
  same_size,
  side_by_side,
  text_panel,
  text_width,
  titled,
)
from jaxgraphs.tasks.input_frame import InputFrame

RPN_BETA = 1.0 / 9.0
BOX_BETA = 1.0
MIN_DRAWN_SCORE = 0.3  # detections below this score are not drawn
MAX_DRAWN = 20


def default_task_config() -> ml_collections.ConfigDict:
  """`config.task` of the detection task with its defaults."""
  return ml_collections.ConfigDict(
    {
      "name": "detection",
      "rpn_class_weight": 1.0,
      "rpn_box_weight": 1.0,
      "class_weight": 1.0,
      "box_weight": 1.0,
      "num_pictures": 4,  # eval pictures per evaluation
    }
  )


def smooth_l1(difference: jax.Array, beta: float) -> jax.Array:
  """Elementwise smooth L1 (Huber with slope 1) with transition point `beta`."""
  size = jnp.abs(difference)
  return jnp.where(size < beta, 0.5 * size**2 / beta, size - 0.5 * beta)


def _sum_over(values: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.sum(values * mask.astype(jnp.float32))


class _Evaluator(base.Evaluator):
  """DetectionEvaluator (COCOeval) on the padded evaluation batches."""

  def __init__(self, class_names):
    self._coco = DetectionEvaluator(class_names)

  def update(self, outputs: Mapping[str, np.ndarray]) -> None:
    self._coco.update_batch(outputs)

  def result(self) -> dict[str, Any]:
    return self._coco.result()


class DetectionTask(base.Task):
  """Images in; RPN and box-head losses in training, detections scored by COCOeval in evaluation."""

  default_metric = "AP50"
  default_metric_mode = "max"
  required_outputs = ("detection_boxes", "detection_labels", "detection_scores", "detection_mask")

  def __init__(
    self, class_names, *, rpn_class_weight=1.0, rpn_box_weight=1.0, class_weight=1.0, box_weight=1.0, num_pictures=4
  ):
    self.class_names = tuple(class_names)
    self.weights = {"rpn_class": rpn_class_weight, "rpn_box": rpn_box_weight, "class": class_weight, "box": box_weight}
    self.num_pictures = int(num_pictures)

  def model_inputs(self, batch):
    inputs = {
      "images": batch["image"],
      "gt_boxes": batch["object_boxes"],
      "gt_labels": batch["object_labels"],
      "gt_mask": batch["object_mask"],
    }
    if "image_size" in batch:
      inputs["image_size"] = batch["image_size"]
    return inputs

  def loss(self, outputs, batch):
    image_mask = batch["mask"].astype(jnp.float32)
    rpn_labels = outputs["rpn_labels"]
    sampled = (rpn_labels >= 0) * image_mask[:, None]
    positive = (rpn_labels == 1) * image_mask[:, None]
    num_sampled = jnp.maximum(jnp.sum(sampled), 1.0)
    rpn_bce = optax.sigmoid_binary_cross_entropy(outputs["rpn_logits"], (rpn_labels == 1).astype(jnp.float32))
    terms = {
      "rpn_class_loss": _sum_over(rpn_bce, sampled) / num_sampled,
      "rpn_box_loss": _sum_over(
        jnp.sum(smooth_l1(outputs["rpn_deltas"] - outputs["rpn_targets"], RPN_BETA), -1), positive
      )
      / num_sampled,
    }
    roi_mask = outputs["roi_mask"] * image_mask[:, None]
    labels = outputs["roi_labels"]
    num_rois = jnp.maximum(jnp.sum(roi_mask), 1.0)
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs["class_logits"], labels)
    terms["class_loss"] = _sum_over(ce, roi_mask) / num_rois
    own_deltas = jnp.take_along_axis(outputs["box_deltas"], labels[..., None, None], axis=2)[..., 0, :]
    foreground = roi_mask * (labels > 0)
    terms["box_loss"] = (
      _sum_over(jnp.sum(smooth_l1(own_deltas - outputs["roi_targets"], BOX_BETA), -1), foreground) / num_rois
    )
    total = sum(self.weights[name.removesuffix("_loss")] * value for name, value in terms.items())
    metrics = dict(terms)
    metrics["rpn_positives"] = jnp.sum(positive) / jnp.maximum(jnp.sum(image_mask), 1.0)
    metrics["foreground_rois"] = jnp.sum(foreground) / jnp.maximum(jnp.sum(image_mask), 1.0)
    metrics["roi_accuracy"] = base.masked_mean(jnp.argmax(outputs["class_logits"], -1) == labels, roi_mask)
    return total, metrics

  def eval_outputs(self, outputs, batch):
    return {
      "gt_boxes": batch["object_boxes"],
      "gt_labels": batch["object_labels"],
      "gt_box_mask": batch["object_mask"],
      "det_boxes": outputs["detection_boxes"],
      "det_labels": outputs["detection_labels"],
      "det_scores": outputs["detection_scores"],
      "det_mask": outputs["detection_mask"],
      "mask": batch["mask"],
    }

  def make_evaluator(self):
    return _Evaluator(self.class_names)

  def summary_images(self, batch):
    return {"train/images": images_for_display(batch["image"][: self.num_pictures])}

  # ---- pictures ------------------------------------------------------------------------------------------------
  def detection_picture(
    self,
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    gt_boxes: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
    frame: InputFrame | None = None,
  ) -> np.ndarray:
    """uint8 picture: detections with score >= MIN_DRAWN_SCORE (at most MAX_DRAWN, yellow, numbered) over
    `image` (the photo with `frame` placing the network input on it, or the input), ground truth in green,
    and a legend naming each detection with its score."""
    image = as_uint8_image(image)
    frame = frame or InputFrame.identity(image.shape[:2])
    canvas, scale = resize_for_display(image)
    frame = frame.resized(scale)
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    bounds = canvas.shape[:2]
    width = max(2, round(min(bounds) / 200))
    lines = [(f"detections (yellow), score >= {MIN_DRAWN_SCORE:.1f}", WHITE)]
    if gt_boxes is not None:
      for box in frame.boxes_to_canvas(gt_boxes):
        draw.rectangle([tuple(box[:2]), tuple(box[2:])], outline=GREEN, width=width)
      names = ", ".join(self.class_names[int(label)] for label in gt_labels)
      lines.insert(0, (f"ground truth (green): {names or 'none'}", GREEN))
    shown = [i for i in np.argsort(-np.asarray(scores), kind="stable") if scores[i] >= MIN_DRAWN_SCORE][:MAX_DRAWN]
    canvas_boxes = frame.boxes_to_canvas(np.asarray(boxes)[shown]) if shown else np.zeros((0, 4))
    for box in canvas_boxes:
      draw.rectangle([tuple(box[:2]), tuple(box[2:])], outline=YELLOW, width=width)
    taken = []
    for number, (index, box) in enumerate(zip(shown, canvas_boxes), 1):
      text = str(number)
      size = (text_width(text) + 4, LINE_HEIGHT - 2)
      corners = [(box[0], box[1]), (box[0], box[1] - size[1]), (box[2] - size[0], box[1])]
      taken.append(draw_tag(draw, free_spot(corners, size, taken, bounds), text, YELLOW))
      lines.append((f"  {number} {self.class_names[int(labels[index])]}  {float(scores[index]):.2f}", YELLOW))
    if not shown:
      lines.append(("  none", GREY))
    legend = text_panel(lines, height=bounds[0])
    return titled(side_by_side([np.asarray(picture), legend]), "Faster R-CNN detections")

  def _image_detections(self, outputs: Mapping[str, np.ndarray], index: int):
    keep = np.asarray(outputs["detection_mask"][index]) > 0
    return (
      np.asarray(outputs["detection_boxes"][index])[keep],
      np.asarray(outputs["detection_labels"][index])[keep],
      np.asarray(outputs["detection_scores"][index])[keep],
    )

  def eval_images(self, outputs, batch):
    real = np.flatnonzero(np.asarray(batch["mask"]) > 0)[: self.num_pictures]
    pictures = []
    for index in real:
      gt = np.asarray(batch["object_mask"][index]) > 0
      pictures.append(
        self.detection_picture(
          batch["image"][index],
          *self._image_detections(outputs, index),
          gt_boxes=np.asarray(batch["object_boxes"][index])[gt],
          gt_labels=np.asarray(batch["object_labels"][index])[gt],
        )
      )
    return {"eval/detections": same_size(pictures)} if pictures else {}

  # ---- jaxgraphs.predict hooks ---------------------------------------------------------------------------
  needs_boxes_file = False  # the detector finds the objects: jaxgraphs.predict takes no --boxes for it

  def prediction_fields(self, annotation: Mapping[str, Any], image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """A detector needs nothing but the image: empty ground truth for `pp_eval`'s `pack_scene_graph`."""
    no_relations = np.zeros(0, np.int32)
    return {
      "boxes": np.zeros((0, 4), np.float32),
      "box_labels": np.zeros(0, np.int32),
      "relations": {"subject": no_relations, "object": no_relations, "predicate": no_relations},
    }

  def predict_json(self, outputs, index, frame=None) -> dict[str, Any]:
    """One image's detections: box (inclusive corners in photo pixels with `frame`, else input's), label, score."""
    boxes, labels, scores = self._image_detections(outputs, index)
    if frame is not None:
      # The detector's corners are inclusive (+1 convention): the box covers [x1, x2 + 1) of the input, mapped
      # as such and made inclusive again, so a box up to the input's last pixel ends at the photo's last one.
      edges = frame.boxes_to_canvas(np.asarray(boxes, np.float64) + [0.0, 0.0, 1.0, 1.0]) - [0.0, 0.0, 1.0, 1.0]
      height, width = frame.canvas_hw
      low = np.clip(edges[:, :2], 0.0, [width - 1.0, height - 1.0])
      boxes = np.concatenate([low, np.clip(edges[:, 2:], low, [width - 1.0, height - 1.0])], axis=1)
    return {
      "detections": [
        {"box": [float(v) for v in box], "label": self.class_names[int(label)], "score": float(score)}
        for box, label, score in zip(boxes, labels, scores)
      ]
    }

  def predict_pictures(self, outputs, image, index, frame=None) -> dict[str, np.ndarray]:
    """The detections with score >= MIN_DRAWN_SCORE drawn over the photo (or the network input)."""
    return {"detections": self.detection_picture(image, *self._image_detections(outputs, index), frame=frame)}


def detection_task(config: ml_collections.ConfigDict, data_info) -> DetectionTask:
  """The task for `config.task` on a dataset with boxes (a scene-graph source's objects)."""
  cfg = default_task_config()
  unknown = set(config.task.keys()) - set(cfg.keys())
  if unknown:
    raise ConfigError(f"config.task has keys the detection task does not know: {sorted(unknown)}")
  cfg.update(config.task)
  return DetectionTask(
    data_info.class_names,
    rpn_class_weight=cfg.rpn_class_weight,
    rpn_box_weight=cfg.rpn_box_weight,
    class_weight=cfg.class_weight,
    box_weight=cfg.box_weight,
    num_pictures=cfg.num_pictures,
  )
