"""torchvision's FasterRCNN built to a jaxgraphs detector config: the PyTorch baseline of the detector benchmarks.

Shared by benchmarks/detector_step.py (the trainer's step against it on this machine) and benchmarks/accelerator.py
(the paper-size step on a GPU); no TensorFlow here, so the accelerator script can use it. torch and torchvision are
imported inside the functions: the caller decides when (torchvision must come before TensorFlow in a process).
"""

from __future__ import annotations

import numpy as np

from jaxgraphs.models.backbones.vgg import ARCHITECTURES, BLOCK_WIDTHS
from jaxgraphs.models.detection.anchors import base_anchors


def torch_vgg_features(backbone_kwargs):
  """VGG's convolutions up to conv5_3's ReLU (no pool5): torchvision's vgg16().features[:-1] at full width, else
  the same layers at the config's reduced widths (jaxgraphs VGG's `width` / `stage_sizes`)."""
  import torch
  import torchvision

  kwargs = dict(backbone_kwargs or {})
  width, stages = kwargs.get("width", 64), kwargs.get("stage_sizes") or ARCHITECTURES[16]
  if width == 64 and tuple(stages) == ARCHITECTURES[16]:
    features = torchvision.models.vgg16().features[:-1]
  else:
    layers, channels = [], 3
    for block, num_convs in enumerate(stages):
      for _ in range(num_convs):
        out = BLOCK_WIDTHS[block] * width // 64
        layers += [torch.nn.Conv2d(channels, out, 3, padding=1), torch.nn.ReLU(inplace=True)]
        channels = out
      layers.append(torch.nn.MaxPool2d(2, 2))
    features = torch.nn.Sequential(*layers[:-1])
  features.out_channels = BLOCK_WIDTHS[len(stages) - 1] * width // 64
  return features


def torch_anchor_generator(model_cfg):
  """torchvision AnchorGenerator giving exactly the JAX detector's anchors.

  The equivalent sizes and ratios: the VG base anchors are py-faster-rcnn's (anchors.py), a base_size x base_size
  box reshaped to each ratio (height / width, torchvision's aspect_ratio too) at the same area, then scaled, so
  the JAX (ratio r, scale s) anchor is torchvision's (size 16 s, aspect_ratio r), ratio-major in both. They still
  differ in three details: py-faster-rcnn rounds the sides after the ratio step (33 x 8 instead of 33.2 x 7.7 for
  r = 0.23), centres them on the cell's centre pixel (7.5, 7.5) where torchvision centres them on (0, 0), and
  uses inclusive corners (x2 - x1 + 1 wide). So the generator's cell anchors are replaced by the JAX ones with x2 + 1,
  y2 + 1 (torchvision's exclusive corners): the same boxes, grid and order, (H, W, A) in both.
  """
  import torch
  from torchvision.models.detection.anchor_utils import AnchorGenerator

  base, ratios, scales = model_cfg.anchor_base_size, tuple(model_cfg.anchor_ratios), tuple(model_cfg.anchor_scales)
  generator = AnchorGenerator(sizes=(tuple(base * s for s in scales),), aspect_ratios=(ratios,))
  exact = base_anchors(base, ratios, scales) + np.array([0.0, 0.0, 1.0, 1.0])
  generator.cell_anchors = [torch.as_tensor(exact, dtype=torch.float32)]
  return generator


def torch_rpn_head(in_channels: int, channels: int, num_anchors: int):
  """torchvision's RPNHead (3x3 conv + ReLU, 1x1 objectness and deltas) with the config's RPN width."""
  import torch

  class RPNHead(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.conv = torch.nn.Conv2d(in_channels, channels, 3, padding=1)
      self.cls_logits = torch.nn.Conv2d(channels, num_anchors, 1)
      self.bbox_pred = torch.nn.Conv2d(channels, num_anchors * 4, 1)
      for layer in self.children():  # torchvision's RPNHead initialisation (and the JAX RPN's)
        torch.nn.init.normal_(layer.weight, std=0.01)
        torch.nn.init.constant_(layer.bias, 0)

    def forward(self, features):
      hidden = [torch.relu(self.conv(feature)) for feature in features]
      return [self.cls_logits(h) for h in hidden], [self.bbox_pred(h) for h in hidden]

  return RPNHead()


def torch_faster_rcnn(config, num_classes: int, size: int):
  """torchvision FasterRCNN with the backbone, anchors, sampling and head sizes of `config.model`."""
  import torch
  from torchvision.models.detection import FasterRCNN
  from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
  from torchvision.ops import MultiScaleRoIAlign

  cfg = config.model
  backbone = torch_vgg_features(cfg.backbone_kwargs)
  fc_width = dict(cfg.backbone_kwargs or {}).get("fc_width", 4096)
  # VGG's classifier without fc8: fc6-ReLU-dropout-fc7-ReLU-dropout, as the JAX fc_head.
  box_head = torch.nn.Sequential(
    torch.nn.Flatten(),
    torch.nn.Linear(backbone.out_channels * 7 * 7, fc_width),
    torch.nn.ReLU(inplace=True),
    torch.nn.Dropout(0.5),
    torch.nn.Linear(fc_width, fc_width),
    torch.nn.ReLU(inplace=True),
    torch.nn.Dropout(0.5),
  )
  num_anchors = len(cfg.anchor_ratios) * len(cfg.anchor_scales)
  return FasterRCNN(
    backbone,
    rpn_anchor_generator=torch_anchor_generator(cfg),
    rpn_head=torch_rpn_head(backbone.out_channels, cfg.rpn_channels, num_anchors),
    box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=cfg.sampling_ratio),
    box_head=box_head,
    box_predictor=FastRCNNPredictor(fc_width, num_classes),
    # The JAX batch is normalised already and square: the transform must neither rescale nor pad it.
    min_size=size,
    max_size=size,
    size_divisible=cfg.feature_stride,
    image_mean=[0.0, 0.0, 0.0],
    image_std=[1.0, 1.0, 1.0],
    rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_train,
    rpn_post_nms_top_n_train=cfg.rpn_post_nms_train,
    rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_test,
    rpn_post_nms_top_n_test=cfg.rpn_post_nms_test,
    rpn_nms_thresh=cfg.rpn_nms_iou,
    rpn_fg_iou_thresh=cfg.rpn_positive_iou,
    rpn_bg_iou_thresh=cfg.rpn_negative_iou,
    rpn_batch_size_per_image=cfg.rpn_samples,
    rpn_positive_fraction=cfg.rpn_fg_fraction,
    box_batch_size_per_image=cfg.rois_per_image,
    box_positive_fraction=cfg.roi_fg_fraction,
    box_fg_iou_thresh=cfg.roi_fg_iou,
    box_bg_iou_thresh=cfg.roi_fg_iou,
  )
