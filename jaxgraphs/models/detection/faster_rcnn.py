"""Faster R-CNN with VGG-16 (the Visual Genome detector of neural-motifs, behind LinkNet's three modes), jittable.

VGG-16 conv5_3 (stride 16, no pool5) -> RPN: a 3x3 convolution (512) with ReLU, then per anchor an objectness
logit and four deltas; anchors of base size 16 with the VG ratios and scales (anchors.py, 20 per cell).
Proposals: the anchors' decoded boxes clipped to the image's real pixels (`image_size`; padding is not image),
the `pre_nms` best by objectness, NMS at 0.7, the `post_nms` best (12,000 / 2,000 in training, 6,000 / 1,000
at test). RoIAlign 7x7 at 1/16 -> VGG-16's own fc6/fc7 (4096) -> class logits (background 0) and
class-specific box deltas.

Training (`train=True` with ground truth): the RPN's anchor targets and the box head's 256 sampled RoIs
(targets.py) are computed inside the step with fixed shapes, proposals carry no gradient (approximate joint
training, as neural-motifs and torchvision). Random draws take the 'dropout' rng stream, the one the trainer
supplies.

Test (`train=False`): detections as neural-motifs' relation model takes them: class-specific boxes clipped to
the image, per class NMS at 0.3 among the `class_candidates` best RoIs of that class with probability >=
`score_threshold` (0.01), one label per box (the best surviving class of each RoI), the `max_detections` (64)
best. The cap on candidates per class keeps NMS a fixed-size computation; it only drops a class's RoIs ranked
below `class_candidates`.

Differences from neural-motifs, kept deliberately: objectness is one sigmoid logit per anchor instead of a
two-way softmax (the same family of classifiers, as torchvision's RPN); anchors over the padding of a batch
are not proposed from.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgraphs.errors import ConfigError
from jaxgraphs.models.backbones import BACKBONES, build_backbone
from jaxgraphs.models.detection.anchors import VG_ANCHOR_RATIOS, VG_ANCHOR_SCALES, base_anchors, grid_anchors
from jaxgraphs.models.detection.boxes import clip_boxes, decode, sizes_and_centres
from jaxgraphs.models.detection.nms import nms
from jaxgraphs.models.detection.targets import anchor_targets, roi_targets
from jaxgraphs.models.layers.roi_align import pooled_box_features

ROI_SIZE = 7  # fc6 is a Linear over a 7 x 7 window


def anchors_inside(anchors: jax.Array, image_size: jax.Array) -> jax.Array:
  """(B, A) anchors lying wholly inside each image's real pixels (the ones that get RPN targets)."""
  h, w = image_size[:, 0:1].astype(anchors.dtype), image_size[:, 1:2].astype(anchors.dtype)
  return (anchors[None, :, 0] >= 0) & (anchors[None, :, 1] >= 0) & (anchors[None, :, 2] < w) & (anchors[None, :, 3] < h)


def anchors_centred_inside(anchors: jax.Array, image_size: jax.Array) -> jax.Array:
  """(B, A) anchors whose centre is on the image's real pixels (the ones that propose boxes)."""
  _, centre = sizes_and_centres(anchors)
  h, w = image_size[:, 0:1].astype(anchors.dtype), image_size[:, 1:2].astype(anchors.dtype)
  return (centre[None, :, 0] < w) & (centre[None, :, 1] < h)


def select_proposals(logits, deltas, anchors, valid, image_size, pre_nms: int, post_nms: int, iou_threshold: float):
  """One image's proposals: (post_nms, 4) boxes and their (post_nms,) mask, from (A,) logits and (A, 4) deltas."""
  count = min(pre_nms, logits.shape[0])
  scores, order = jax.lax.top_k(jnp.where(valid, logits, -jnp.inf), count)
  boxes = clip_boxes(decode(deltas[order], anchors[order])[None], image_size[None])[0]
  size, _ = sizes_and_centres(boxes)
  keep_valid = valid[order] & jnp.all(size >= 1.0, axis=-1)
  index, keep = nms(boxes, scores, keep_valid, iou_threshold, post_nms)
  return boxes[index], keep


def detections(class_logits, box_deltas, rois, roi_mask, image_size, *, nms_iou, score_threshold, candidates, limit):
  """One image's detections from the box head: boxes (limit, 4), labels, scores, class probabilities, mask.

  class_logits (R, C), box_deltas (R, C, 4), rois (R, 4), roi_mask (R,), image_size (2,); see the module
  docstring for the rule (per-class NMS, one label per box, the best `limit`)."""
  num_rois = class_logits.shape[0]
  probs = jax.nn.softmax(class_logits.astype(jnp.float32), axis=-1)
  boxes = clip_boxes(decode(box_deltas.astype(jnp.float32), rois[:, None, :])[None], image_size[None])[0]
  count = min(candidates, num_rois)

  def survivors(class_probs, class_boxes):
    """(R,) probabilities of this class's RoIs that survive its NMS (0 elsewhere)."""
    eligible = roi_mask & (class_probs >= score_threshold)
    top, order = jax.lax.top_k(jnp.where(eligible, class_probs, -1.0), count)
    index, keep = nms(class_boxes[order], top, top >= 0.0, nms_iou, count)
    kept_rois = jnp.where(keep, order[index], num_rois)
    return jnp.zeros(num_rois + 1).at[kept_rois].set(jnp.where(keep, class_probs[kept_rois % num_rois], 0.0))[:-1]

  surviving = jax.vmap(survivors, in_axes=(1, 1), out_axes=1)(probs[:, 1:], boxes[:, 1:])  # (R, C - 1)
  label = jnp.argmax(surviving, axis=1) + 1
  score = jnp.max(surviving, axis=1)
  top, chosen = jax.lax.top_k(score, min(limit, num_rois))
  out = {
    "boxes": boxes[chosen, label[chosen]],
    "labels": label[chosen].astype(jnp.int32),
    "scores": top,
    "distributions": probs[chosen],
    "mask": top > 0.0,
  }
  if limit > num_rois:
    out = {k: jnp.concatenate([v, jnp.zeros((limit - num_rois,) + v.shape[1:], v.dtype)]) for k, v in out.items()}
  return out


class FasterRCNN(nn.Module):
  """Images in; RPN outputs, box-head outputs on sampled RoIs (training) or proposals, and detections (test)."""

  num_classes: int  # including the background at 0
  backbone: str = "vgg16"
  backbone_kwargs: dict[str, Any] | None = None
  feature_key: str = "block5"  # conv5_3 after ReLU, before pool5
  feature_stride: int = 16
  anchor_base_size: int = 16
  anchor_ratios: tuple[float, ...] = VG_ANCHOR_RATIOS
  anchor_scales: tuple[float, ...] = VG_ANCHOR_SCALES
  rpn_channels: int = 512
  rpn_nms_iou: float = 0.7
  rpn_pre_nms_train: int = 12000
  rpn_post_nms_train: int = 2000
  rpn_pre_nms_test: int = 6000
  rpn_post_nms_test: int = 1000
  rpn_samples: int = 256
  rpn_fg_fraction: float = 0.5
  rpn_positive_iou: float = 0.7
  rpn_negative_iou: float = 0.3
  rois_per_image: int = 256
  roi_fg_fraction: float = 0.25
  roi_fg_iou: float = 0.5
  detection_nms_iou: float = 0.3
  score_threshold: float = 0.01
  class_candidates: int = 200
  max_detections: int = 64
  sampling_ratio: int = 2
  roi_implementation: str = "matmul"
  roi_chunk_size: int = 512
  dtype: Any = jnp.float32

  def _anchors(self, feature_hw: tuple[int, int]) -> jax.Array:
    base = base_anchors(self.anchor_base_size, self.anchor_ratios, self.anchor_scales)
    return jnp.asarray(grid_anchors(feature_hw, self.feature_stride, base), jnp.float32)

  @nn.compact
  def __call__(self, images, image_size=None, gt_boxes=None, gt_labels=None, gt_mask=None, train: bool = False):
    """images (B, H, W, 3); image_size (B, 2) real (height, width) of each padded image (default: all of it);
    gt_boxes (B, G, 4) x1, y1, x2, y2 pixels, gt_labels (B, G), gt_mask (B, G): needed when `train`."""
    if self.backbone not in BACKBONES:
      build_backbone(self.backbone)  # raises, listing the valid names
    batch = images.shape[0]
    if image_size is None:
      image_size = jnp.broadcast_to(jnp.asarray(images.shape[1:3], jnp.int32), (batch, 2))
    backbone = BACKBONES[self.backbone](name="backbone", dtype=self.dtype, **(self.backbone_kwargs or {}))
    features = backbone(images.astype(self.dtype), train=train)
    if self.feature_key not in features:
      raise ValueError(f"FasterRCNN: feature_key={self.feature_key!r} is not a backbone output; has {sorted(features)}")
    feature_map = features[self.feature_key]
    anchors = self._anchors(feature_map.shape[1:3])
    num_anchors = len(self.anchor_ratios) * len(self.anchor_scales)

    init = nn.initializers.normal(0.01)
    hidden = nn.relu(
      nn.Conv(self.rpn_channels, (3, 3), kernel_init=init, dtype=self.dtype, name="rpn_conv")(feature_map)
    )
    rpn_logits = nn.Conv(num_anchors, (1, 1), kernel_init=init, dtype=self.dtype, name="rpn_objectness")(hidden)
    rpn_deltas = nn.Conv(num_anchors * 4, (1, 1), kernel_init=init, dtype=self.dtype, name="rpn_deltas")(hidden)
    rpn_logits = rpn_logits.reshape(batch, -1).astype(jnp.float32)
    rpn_deltas = rpn_deltas.reshape(batch, -1, 4).astype(jnp.float32)
    outputs: dict[str, Any] = {"rpn_logits": rpn_logits, "rpn_deltas": rpn_deltas}

    pre_nms, post_nms = (
      (self.rpn_pre_nms_train, self.rpn_post_nms_train) if train else (self.rpn_pre_nms_test, self.rpn_post_nms_test)
    )
    proposals, proposal_mask = jax.vmap(
      lambda logits, deltas, valid, size: select_proposals(
        logits, deltas, anchors, valid, size, pre_nms, post_nms, self.rpn_nms_iou
      )
    )(
      jax.lax.stop_gradient(rpn_logits),
      jax.lax.stop_gradient(rpn_deltas),
      anchors_centred_inside(anchors, image_size),
      image_size,
    )
    if train:
      if gt_boxes is None or gt_labels is None or gt_mask is None:
        raise ValueError("FasterRCNN: training needs gt_boxes, gt_labels and gt_mask")
      keys = jax.random.split(self.make_rng("dropout"), 2 * batch).reshape(2, batch)
      gt_boxes = gt_boxes.astype(jnp.float32)
      outputs["rpn_labels"], outputs["rpn_targets"] = jax.vmap(
        lambda valid, boxes, mask, key: anchor_targets(
          anchors,
          valid,
          boxes,
          mask,
          key,
          self.rpn_samples,
          self.rpn_fg_fraction,
          self.rpn_positive_iou,
          self.rpn_negative_iou,
        )
      )(anchors_inside(anchors, image_size), gt_boxes, gt_mask, keys[0])
      sampled = jax.vmap(
        lambda boxes, valid, gboxes, glabels, gmask, key: roi_targets(
          boxes, valid, gboxes, glabels, gmask, key, self.rois_per_image, self.roi_fg_fraction, self.roi_fg_iou
        )
      )(proposals, proposal_mask, gt_boxes, gt_labels, gt_mask, keys[1])
      rois, roi_mask = sampled["rois"], sampled["mask"]
      outputs.update(roi_labels=sampled["labels"], roi_targets=sampled["deltas"])
    else:
      rois, roi_mask = proposals, proposal_mask

    roi_features = pooled_box_features(
      feature_map,
      rois,
      roi_mask,
      backbone.fc_head,
      chunk_size=self.roi_chunk_size,
      spatial_scale=1.0 / self.feature_stride,
      sampling_ratio=self.sampling_ratio,
      implementation=self.roi_implementation,
      output_size=ROI_SIZE,
      train=train,
    )
    class_logits = nn.Dense(self.num_classes, kernel_init=init, dtype=self.dtype, name="score_fc")(roi_features)
    box_deltas = nn.Dense(
      self.num_classes * 4, kernel_init=nn.initializers.normal(0.001), dtype=self.dtype, name="bbox_fc"
    )(roi_features)
    outputs.update(
      rois=rois,
      roi_mask=roi_mask,
      class_logits=class_logits.astype(jnp.float32),
      box_deltas=box_deltas.reshape(rois.shape[:2] + (self.num_classes, 4)).astype(jnp.float32),
      image_size=image_size,
      feature_map=feature_map,
    )
    if not train:
      found = jax.vmap(
        lambda logits, deltas, boxes, mask, size: detections(
          logits,
          deltas,
          boxes,
          mask,
          size,
          nms_iou=self.detection_nms_iou,
          score_threshold=self.score_threshold,
          candidates=self.class_candidates,
          limit=self.max_detections,
        )
      )(outputs["class_logits"], outputs["box_deltas"], rois, roi_mask, image_size)
      outputs.update({f"detection_{key}": value for key, value in found.items()})
    return outputs


MODEL_KEYS = (
  "feature_key",
  "feature_stride",
  "anchor_base_size",
  "anchor_ratios",
  "anchor_scales",
  "rpn_channels",
  "rpn_nms_iou",
  "rpn_pre_nms_train",
  "rpn_post_nms_train",
  "rpn_pre_nms_test",
  "rpn_post_nms_test",
  "rpn_samples",
  "rpn_fg_fraction",
  "rpn_positive_iou",
  "rpn_negative_iou",
  "rois_per_image",
  "roi_fg_fraction",
  "roi_fg_iou",
  "detection_nms_iou",
  "score_threshold",
  "class_candidates",
  "max_detections",
  "sampling_ratio",
  "roi_implementation",
  "roi_chunk_size",
)


def build_faster_rcnn(cfg, data_info, dtype) -> FasterRCNN:
  """FasterRCNN sized for the object classes of `data_info` (index 0 the background) from `config.model`."""
  missing = [key for key in MODEL_KEYS if key not in cfg]
  if missing:
    raise ConfigError(
      f"config.model lacks Faster R-CNN keys {missing}; start from jaxgraphs.configs.faster_rcnn.model_config()"
    )
  kwargs = {key: cfg[key] for key in MODEL_KEYS}
  for key in ("anchor_ratios", "anchor_scales"):
    kwargs[key] = tuple(float(v) for v in np.atleast_1d(kwargs[key]))
  return FasterRCNN(
    num_classes=data_info.num_classes,
    backbone=cfg.backbone,
    backbone_kwargs=dict(cfg.backbone_kwargs),
    dtype=dtype,
    **kwargs,
  )
