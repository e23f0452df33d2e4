"""The Faster R-CNN detector's config keys, shared by configs/faster_rcnn_*.py (the recipes are in those files)."""

from __future__ import annotations

import ml_collections

from jaxgraphs.models.detection.anchors import VG_ANCHOR_RATIOS, VG_ANCHOR_SCALES
from jaxgraphs.tasks.detection import default_task_config


def model_config() -> ml_collections.ConfigDict:
  """`config.model` of the VG detector (neural-motifs' sizes); configs override widths and anchors."""
  return ml_collections.ConfigDict(
    {
      "name": "faster_rcnn",
      "backbone": "vgg16",
      "backbone_kwargs": {},
      "feature_key": "block5",  # conv5_3 after ReLU, stride 16, no pool5
      "feature_stride": 16,
      "dtype": "float32",
      "backbone_init": "",
      "dont_load": (),
      "anchor_base_size": 16,
      "anchor_ratios": VG_ANCHOR_RATIOS,  # k-means on VG boxes: 4 ratios x 5 scales = 20 anchors per cell
      "anchor_scales": VG_ANCHOR_SCALES,
      "rpn_channels": 512,
      "rpn_nms_iou": 0.7,
      "rpn_pre_nms_train": 12000,
      "rpn_post_nms_train": 2000,
      "rpn_pre_nms_test": 6000,
      "rpn_post_nms_test": 1000,
      "rpn_samples": 256,  # anchors per image, at most half positive (IoU >= 0.7), negatives IoU < 0.3
      "rpn_fg_fraction": 0.5,
      "rpn_positive_iou": 0.7,
      "rpn_negative_iou": 0.3,
      "rois_per_image": 256,  # at most a quarter foreground (IoU >= 0.5)
      "roi_fg_fraction": 0.25,
      "roi_fg_iou": 0.5,
      "detection_nms_iou": 0.3,  # per class, as the scene-graph models take detections
      "score_threshold": 0.01,
      "class_candidates": 200,  # RoIs per class entering its NMS (the best by probability)
      "max_detections": 64,
      "sampling_ratio": 2,
      "roi_implementation": "matmul",
      "roi_chunk_size": 512,  # RoIs per RoIAlign + fc6/fc7 chunk
    }
  )


def configure(config: ml_collections.ConfigDict) -> None:
  """Sets `config.model` (the detector's defaults) and `config.task` (detection, best checkpoint by AP50)."""
  config.model = model_config()
  config.task = default_task_config()
