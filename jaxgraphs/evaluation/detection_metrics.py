"""COCO-style detection AP (host side, NumPy): pycocotools' COCOeval on in-memory ground truth and detections.

COCOeval is the field's standard detection evaluation (neural-motifs reports its Visual Genome detector's
AP@0.5 as COCOeval's `stats[1]`), so this module hands it the boxes instead of reimplementing it:

- Boxes here are (x1, y1, x2, y2) pixels with inclusive corners (py-faster-rcnn's convention, width =
  x2 - x1 + 1). COCO takes [x, y, w, h] and computes IoU from w and h as given, so converting with
  w = x2 - x1 + 1, h = y2 - y1 + 1 makes COCO's IoU equal the +1-convention IoU of
  `jaxgraphs.models.detection.boxes.pairwise_iou` (plain w = x2 - x1 would shrink small boxes' IoU).
- Every ground-truth box has iscrowd 0 and area w * h (the same +1 w and h, which is also the area loadRes
  gives detections), so the small / medium / large ranges (32^2, 96^2) are read on that area.
- maxDets are COCO's default (1, 10, 100) detections per image and class; AP uses 100.
- Label 0 is the background and not a category; categories are the ids 1..len(class_names) - 1.

Edge cases:

- An image without detections still counts: its ground truth boxes are misses. An image without ground
  truth boxes still counts: its detections are false positives.
- COCOeval marks undefined entries with -1 (e.g. no ground truth box in an area range, or a class without
  ground truth); they are NaN here, never averaged as -1.
- No detections at all: pycocotools' loadRes fails on an empty list, so the evaluation then runs on an
  empty detection set built directly. AP and AR are 0.0 wherever ground truth exists (and NaN where it does
  not, as above) instead of a crash.

pycocotools prints its progress and summary to stdout; that is captured and the summary goes to
absl.logging.info instead, so evaluation never writes to the console directly.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# COCOeval's stats order for iouType 'bbox' (see COCOeval.summarize).
_STATS_KEYS = {"AP": 0, "AP50": 1, "AP75": 2, "AP_small": 3, "AP_medium": 4, "AP_large": 5, "AR100": 8}
_BATCH_KEYS = ("gt_boxes", "gt_labels", "gt_box_mask", "det_boxes", "det_labels", "det_scores", "det_mask", "mask")


def _undefined_to_nan(value: float) -> float:
  """COCOeval's -1 (undefined) as NaN; any other value as a float."""
  value = float(value)
  return float("nan") if value == -1 else value


def _coco_boxes(boxes: np.ndarray) -> np.ndarray:
  """Inclusive-corner (x1, y1, x2, y2) boxes as COCO [x, y, w, h] with the +1 width and height."""
  return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], axis=1)


class DetectionEvaluator:
  """Streams ground truth and detections image by image, then scores them with COCOeval."""

  def __init__(self, class_names: Sequence[str]):
    class_names = list(class_names)
    if len(class_names) < 2:
      raise ValueError(f"class_names needs the background and at least one class, got {class_names}")
    self._class_names = class_names
    self._categories = [{"id": k, "name": name} for k, name in enumerate(class_names) if k > 0]
    self._images: list[dict] = []
    self._gt_annotations: list[dict] = []
    self._detections: list[dict] = []

  def _check(self, name: str, boxes, labels, scores=None):
    """Validates one image's boxes (n, 4), labels (n,) in 1..C-1 and scores (n,); returns them as arrays."""
    boxes = np.asarray(boxes, dtype=np.float64)
    # An empty image may come as shape (0,) or (0, 4); both mean no boxes.
    boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
    labels = np.asarray(labels).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
      raise ValueError(f"{name}_boxes must be (n, 4), got shape {boxes.shape}")
    if labels.shape != (len(boxes),):
      raise ValueError(f"{name}_labels must be ({len(boxes)},) (one per box), got shape {labels.shape}")
    if not np.all(np.isfinite(boxes)):
      raise ValueError(f"{name}_boxes contains NaN or Inf")
    num_classes = len(self._class_names)
    if len(labels) and (np.any(labels != np.round(labels)) or labels.min() < 1 or labels.max() >= num_classes):
      raise ValueError(f"{name}_labels must be integers in 1..{num_classes - 1} (0 is the background), got {labels}")
    labels = labels.astype(np.int64)
    if scores is None:
      return boxes, labels
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (len(boxes),):
      raise ValueError(f"{name}_scores must be ({len(boxes)},) (one per box), got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
      raise ValueError(f"{name}_scores contains NaN or Inf")
    return boxes, labels, scores

  def update_image(self, gt_boxes, gt_labels, det_boxes, det_labels, det_scores) -> None:
    """Adds one image's real (unpadded) ground truth and detections; any of them may have 0 rows."""
    gt_boxes, gt_labels = self._check("gt", gt_boxes, gt_labels)
    det_boxes, det_labels, det_scores = self._check("det", det_boxes, det_labels, det_scores)
    image_id = len(self._images) + 1
    self._images.append({"id": image_id})
    for box, label in zip(_coco_boxes(gt_boxes).tolist(), gt_labels.tolist()):
      self._gt_annotations.append(
        {
          "id": len(self._gt_annotations) + 1,
          "image_id": image_id,
          "category_id": label,
          "bbox": box,
          "area": box[2] * box[3],
          "iscrowd": 0,
        }
      )
    for box, label, score in zip(_coco_boxes(det_boxes).tolist(), det_labels.tolist(), det_scores.tolist()):
      self._detections.append({"image_id": image_id, "category_id": label, "bbox": box, "score": score})

  def update_batch(self, outputs: Mapping[str, np.ndarray]) -> None:
    """Adds a padded batch: rows with mask 0 are padding images, boxes with gt_box_mask / det_mask 0 are padding."""
    missing = [key for key in _BATCH_KEYS if key not in outputs]
    if missing:
      raise ValueError(f"update_batch needs the arrays {list(_BATCH_KEYS)}, missing {missing}")
    # np.asarray also copies jax.Arrays to the host; multi-host arrays must be gathered by the caller.
    arrays = {key: np.asarray(outputs[key]) for key in _BATCH_KEYS}
    batch_size = arrays["mask"].shape[0] if arrays["mask"].ndim == 1 else None
    if batch_size is None or any(value.shape[:1] != (batch_size,) for value in arrays.values()):
      raise ValueError(f"all arrays need the batch dimension of mask, got { {k: v.shape for k, v in arrays.items()} }")
    for b in np.flatnonzero(arrays["mask"]):
      gt_keep = arrays["gt_box_mask"][b] != 0
      det_keep = arrays["det_mask"][b] != 0
      self.update_image(
        arrays["gt_boxes"][b][gt_keep],
        arrays["gt_labels"][b][gt_keep],
        arrays["det_boxes"][b][det_keep],
        arrays["det_labels"][b][det_keep],
        arrays["det_scores"][b][det_keep],
      )

  def coco_ground_truth(self) -> dict:
    """The accumulated ground truth as a COCO dataset dict (image ids 1, 2, ... in update order)."""
    return {"images": list(self._images), "annotations": list(self._gt_annotations), "categories": self._categories}

  def coco_json(self) -> list[dict]:
    """The accumulated detections in COCO results format: a list of {image_id, category_id, bbox, score}."""
    return [dict(detection) for detection in self._detections]

  def result(self) -> dict:
    """COCOeval's AP / AR summary, per-class AP at IoU 0.5 and the counts, over everything added so far."""
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
      ground_truth = COCO()
      ground_truth.dataset = self.coco_ground_truth()
      ground_truth.createIndex()
      if self._detections:
        # loadRes adds area, id and iscrowd to the dicts it gets, so it gets copies.
        detections = ground_truth.loadRes(self.coco_json())
      else:
        detections = COCO()
        detections.dataset = {"images": list(self._images), "annotations": [], "categories": self._categories}
        detections.createIndex()
      evaluation = COCOeval(ground_truth, detections, iouType="bbox")
      evaluation.evaluate()
      evaluation.accumulate()
      evaluation.summarize()
    summary = [line for line in log.getvalue().splitlines() if line.lstrip().startswith("Average")]
    logging.info("COCOeval (bbox) over %d images:\n%s", len(self._images), "\n".join(summary))

    metrics = {key: _undefined_to_nan(evaluation.stats[index]) for key, index in _STATS_KEYS.items()}
    metrics["num_images"] = float(len(self._images))
    metrics["num_detections"] = float(len(self._detections))
    metrics["num_gt_boxes"] = float(len(self._gt_annotations))
    metrics["per_class_AP50"] = self._per_class_ap50(evaluation)
    return metrics

  def _per_class_ap50(self, evaluation: COCOeval) -> dict[str, float]:
    """AP at IoU 0.5, area 'all', 100 detections of each class from COCOeval's precision array; NaN without GT."""
    params = evaluation.params
    # precision is [T, R, K, A, M]: IoU thresholds, recall thresholds, classes, area ranges, maxDets.
    precision = evaluation.eval["precision"]
    iou_index = int(np.flatnonzero(np.isclose(params.iouThrs, 0.5))[0])
    area_index = params.areaRngLbl.index("all")
    max_dets_index = list(params.maxDets).index(100)
    per_class = {}
    for k, category_id in enumerate(params.catIds):
      values = precision[iou_index, :, k, area_index, max_dets_index]
      values = values[values > -1]
      per_class[self._class_names[category_id]] = float(np.mean(values)) if values.size else float("nan")
    return per_class
