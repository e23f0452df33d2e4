"""COCO-style detection AP (DetectionEvaluator) against exact cases and a hand computation of COCO's 101-point AP."""

import math

import numpy as np
import pytest

from jaxgraphs.evaluation.detection_metrics import DetectionEvaluator

CLASS_NAMES = ["__background__", "person", "dog", "kite"]
NO_BOXES = np.zeros((0, 4))
NO_LABELS = np.zeros((0,), dtype=np.int64)
NO_SCORES = np.zeros((0,))


def iou_plus_one(a, b, plus=1.0):
  """IoU of two (x1, y1, x2, y2) boxes; plus=1 for inclusive corners, plus=0 for exclusive ones."""
  overlap_w = max(min(a[2], b[2]) - max(a[0], b[0]) + plus, 0.0)
  overlap_h = max(min(a[3], b[3]) - max(a[1], b[1]) + plus, 0.0)
  intersection = overlap_w * overlap_h
  area_a = (a[2] - a[0] + plus) * (a[3] - a[1] + plus)
  area_b = (b[2] - b[0] + plus) * (b[3] - b[1] + plus)
  return intersection / (area_a + area_b - intersection)


def coco_interpolated_ap(hits, num_gt):
  """COCO's 101-point AP from the hit flags of detections sorted by decreasing score."""
  hits = np.asarray(hits, dtype=np.float64)
  true_positives = np.cumsum(hits)
  recall = true_positives / num_gt
  precision = true_positives / np.arange(1, len(hits) + 1)
  # The precision envelope: at each rank the best precision at that recall or any higher one.
  precision = np.maximum.accumulate(precision[::-1])[::-1]
  sampled = []
  for threshold in np.linspace(0.0, 1.0, 101):
    reached = np.flatnonzero(recall >= threshold)
    sampled.append(precision[reached[0]] if reached.size else 0.0)
  return float(np.mean(sampled))


def scenes():
  """Three images of ground truth over classes 1 and 2 (class 3, 'kite', never appears), boxes of all sizes."""
  return [
    (np.array([[10, 10, 59, 79], [100, 20, 119, 39], [0, 0, 199, 149]], float), np.array([1, 2, 1])),
    (np.array([[5, 5, 14, 14]], float), np.array([2])),
    (np.array([[30, 40, 129, 139], [50, 60, 69, 99]], float), np.array([1, 1])),
  ]


def test_perfect_predictions_score_one_and_absent_class_is_nan():
  evaluator = DetectionEvaluator(CLASS_NAMES)
  for boxes, labels in scenes():
    evaluator.update_image(boxes, labels, boxes, labels, np.ones(len(boxes)))
  result = evaluator.result()
  for key in ("AP", "AP50", "AP75", "AR100"):
    assert result[key] == pytest.approx(1.0), key
  assert result["per_class_AP50"]["person"] == pytest.approx(1.0)
  assert result["per_class_AP50"]["dog"] == pytest.approx(1.0)
  assert math.isnan(result["per_class_AP50"]["kite"])
  assert set(result["per_class_AP50"]) == {"person", "dog", "kite"}
  assert (result["num_images"], result["num_detections"], result["num_gt_boxes"]) == (3.0, 6.0, 6.0)


def test_ap_matches_hand_computed_101_point_interpolation():
  gt = np.array([[0, 0, 9, 9], [20, 20, 29, 29]], float)
  detections = np.array([[0, 0, 9, 9], [40, 40, 49, 49], [22, 20, 31, 29]], float)
  scores = np.array([0.9, 0.8, 0.7])
  # Greedy matching by score, as COCO does; each detection's best GT here is unambiguous.
  ious = np.array([[iou_plus_one(d, g) for g in gt] for d in detections])
  assert ious[0, 0] == 1.0 and ious[1].max() == 0.0 and 0.5 < ious[2, 1] < 0.75
  hits_at_50 = [1, 0, 1]
  hits_at_75 = [1, 0, 0]

  evaluator = DetectionEvaluator(["__background__", "thing"])
  evaluator.update_image(gt, [1, 1], detections, [1, 1, 1], scores)
  result = evaluator.result()

  expected_50 = coco_interpolated_ap(hits_at_50, num_gt=2)
  expected_75 = coco_interpolated_ap(hits_at_75, num_gt=2)
  assert expected_50 == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
  assert expected_75 == pytest.approx(51 / 101)
  assert result["AP50"] == pytest.approx(expected_50)
  assert result["AP75"] == pytest.approx(expected_75)
  assert result["per_class_AP50"]["thing"] == pytest.approx(expected_50)


def test_iou_uses_the_inclusive_corner_convention():
  gt = np.array([[0, 0, 3, 3]], float)
  detection = np.array([[0, 0, 2, 2]], float)
  # A 3x3 box inside a 4x4 one: 9/16 with +1 widths, but 4/9 if the corners were exclusive.
  assert iou_plus_one(gt[0], detection[0]) == pytest.approx(9 / 16)
  assert iou_plus_one(gt[0], detection[0], plus=0.0) < 0.5
  evaluator = DetectionEvaluator(["__background__", "thing"])
  evaluator.update_image(gt, [1], detection, [1], [0.8])
  assert evaluator.result()["AP50"] == pytest.approx(1.0)


def test_images_without_detections_or_without_ground_truth():
  gt = np.array([[0, 0, 49, 49]], float)
  evaluator = DetectionEvaluator(["__background__", "thing"])
  evaluator.update_image(gt, [1], gt, [1], [0.9])
  evaluator.update_image(gt, [1], NO_BOXES, NO_LABELS, NO_SCORES)  # a miss
  result = evaluator.result()
  # One of two GT boxes found at precision 1: recall thresholds up to 0.5 give 1, the rest 0.
  assert result["AP50"] == pytest.approx(51 / 101)
  assert result["num_images"] == 2.0

  evaluator = DetectionEvaluator(["__background__", "thing"])
  evaluator.update_image(gt, [1], gt, [1], [0.5])
  evaluator.update_image(NO_BOXES, NO_LABELS, np.array([[0, 0, 9, 9]], float), [1], [0.9])  # a false positive
  # Ranked first, the false positive leaves precision 1/2 at full recall.
  assert evaluator.result()["AP50"] == pytest.approx(coco_interpolated_ap([0, 1], num_gt=1))
  assert evaluator.result()["AP50"] == pytest.approx(0.5)


def test_no_detections_at_all_gives_zero_not_a_crash():
  evaluator = DetectionEvaluator(CLASS_NAMES)
  for boxes, labels in scenes():
    evaluator.update_image(boxes, labels, NO_BOXES, NO_LABELS, NO_SCORES)
  evaluator.update_image(np.zeros((0,)), [], np.zeros((0,)), [], [])
  result = evaluator.result()
  for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100"):
    assert result[key] == 0.0, key
  assert result["per_class_AP50"]["person"] == 0.0
  assert math.isnan(result["per_class_AP50"]["kite"])
  assert result["num_detections"] == 0.0
  assert evaluator.coco_json() == []


def test_area_range_without_ground_truth_is_nan():
  evaluator = DetectionEvaluator(["__background__", "thing"])
  box = np.array([[0, 0, 49, 49]], float)  # 2500 pixels: a medium box only.
  evaluator.update_image(box, [1], box, [1], [0.9])
  result = evaluator.result()
  assert result["AP_medium"] == pytest.approx(1.0)
  assert math.isnan(result["AP_small"]) and math.isnan(result["AP_large"])


def random_batch(rng, batch_size=4, max_gt=5, max_det=7):
  """A padded batch: random numbers of real GT boxes and detections per image, the last image padding."""

  def boxes(n):
    corner = rng.uniform(0, 200, size=(n, 2))
    return np.concatenate([corner, corner + rng.uniform(5, 120, size=(n, 2))], axis=1)

  num_gt = rng.integers(0, max_gt + 1, size=batch_size)
  num_det = rng.integers(0, max_det + 1, size=batch_size)
  num_gt[1], num_det[2] = 0, 0
  gt_boxes, det_boxes = boxes(batch_size * max_gt).reshape(batch_size, max_gt, 4), np.zeros((batch_size, max_det, 4))
  gt_labels = rng.integers(1, len(CLASS_NAMES), size=(batch_size, max_gt))
  det_labels = rng.integers(1, len(CLASS_NAMES), size=(batch_size, max_det))
  gt_box_mask = np.arange(max_gt)[None] < num_gt[:, None]
  det_mask = np.arange(max_det)[None] < num_det[:, None]
  for b in range(batch_size):
    # Half the detections are jittered GT boxes (of the GT's class), so the AP is neither 0 nor 1.
    for d in range(max_det):
      if d < num_gt[b] and d % 2 == 0:
        det_boxes[b, d] = gt_boxes[b, d] + rng.normal(0, 4, size=4)
        det_labels[b, d] = gt_labels[b, d]
      else:
        det_boxes[b, d] = boxes(1)[0]
  # Padding entries hold garbage, including the background label, to show they are never read.
  det_labels[~det_mask] = 0
  gt_labels[~gt_box_mask] = 0
  return {
    "gt_boxes": gt_boxes,
    "gt_labels": gt_labels,
    "gt_box_mask": gt_box_mask.astype(np.int32),
    "det_boxes": det_boxes,
    "det_labels": det_labels,
    "det_scores": rng.uniform(size=(batch_size, max_det)),
    "det_mask": det_mask.astype(np.int32),
    "mask": np.array([1] * (batch_size - 1) + [0]),
  }


def assert_same_result(a, b):
  """Two result dicts agree, NaN equal to NaN."""
  assert set(a) == set(b)
  for key in a:
    if key == "per_class_AP50":
      assert_same_result(a[key], b[key])
    else:
      np.testing.assert_equal(a[key], b[key], err_msg=key)


def test_update_batch_equals_update_image_per_real_image():
  rng = np.random.default_rng(0)
  batches = [random_batch(rng) for _ in range(3)]
  batched, per_image = DetectionEvaluator(CLASS_NAMES), DetectionEvaluator(CLASS_NAMES)
  for batch in batches:
    batched.update_batch(batch)
    for b in np.flatnonzero(batch["mask"]):
      gt, det = batch["gt_box_mask"][b] == 1, batch["det_mask"][b] == 1
      per_image.update_image(
        batch["gt_boxes"][b][gt],
        batch["gt_labels"][b][gt],
        batch["det_boxes"][b][det],
        batch["det_labels"][b][det],
        batch["det_scores"][b][det],
      )
  result = batched.result()
  assert_same_result(result, per_image.result())
  assert result["num_images"] == 9.0
  assert 0.0 < result["AP50"] < 1.0
  assert batched.coco_json() == per_image.coco_json()


def test_coco_json_is_coco_results_format_with_plus_one_widths():
  evaluator = DetectionEvaluator(["__background__", "thing"])
  evaluator.update_image(NO_BOXES, NO_LABELS, np.array([[10, 20, 19, 39]], float), [1], [0.25])
  assert evaluator.coco_json() == [{"image_id": 1, "category_id": 1, "bbox": [10.0, 20.0, 10.0, 20.0], "score": 0.25}]


def test_rejects_background_or_out_of_range_labels():
  evaluator = DetectionEvaluator(["__background__", "thing"])
  box = np.array([[0, 0, 9, 9]], float)
  with pytest.raises(ValueError, match="det_labels"):
    evaluator.update_image(box, [1], box, [0], [0.5])
  with pytest.raises(ValueError, match="gt_labels"):
    evaluator.update_image(box, [2], box, [1], [0.5])


def test_pycocotools_does_not_print(capsys):
  evaluator = DetectionEvaluator(CLASS_NAMES)
  for boxes, labels in scenes():
    evaluator.update_image(boxes, labels, boxes, labels, np.full(len(boxes), 0.5))
  evaluator.result()
  evaluator = DetectionEvaluator(CLASS_NAMES)
  evaluator.update_image(*scenes()[0], NO_BOXES, NO_LABELS, NO_SCORES)
  evaluator.result()
  assert capsys.readouterr().out == ""
