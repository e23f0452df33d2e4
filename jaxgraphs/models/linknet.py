"""LinkNet (Woo et al., 2018) for PredCls, SGCls and SGDet: VGG-16, RoIAlign, relational embedding, union features.

Per image (all images of a batch at once, padded with masks): the VGG conv5_3 map (stride 16) is pooled by
RoIAlign 7x7 at every object box and passed through VGG's fc6/fc7 (f_RoI, 4096-d). The global context c is
the average-pooled map (512-d) with a multi-label head. `LinkNetHead` builds O0 = [f_RoI; K0 l; c], the
object- and edge-relational embeddings and the predicate logits of every pair, with the union-box features
F_ij = fc7(RoIAlign(union of boxes i and j)). Pairs are the ones given (training: the sampled fg/bg pairs of
`sample_relation_pairs`) or all ordered pairs of distinct real objects, in the dense layout
p = subject * N + object (evaluation).

What the inputs mean per mode, as the third-party reimplementation on neural-motifs does it
(docs/paper_details.md, LinkNet):
- K0 l_i: the reference feeds softmax(detector logits) of a frozen VG-trained Faster R-CNN in every mode.
  Without such a detector, `label_input='auto'` (default) uses the one-hot ground-truth labels in PredCls
  and, in SGCls, the softmax of an object classifier on f_RoI trained alongside ('detector_logits', its own
  cross-entropy; gradient stopped at K0 as the reference detaches the detector's logits). A detector's
  distribution passed as `label_distribution` (SGDet) is used as it is.
- K1: the reference feeds the ground-truth labels in training (both modes) and in PredCls, argmax(O4) over
  the non-background classes in SGCls evaluation (`teacher_forcing=True`, default). With False, SGCls
  training uses argmax(O4) as well.
- Object loss: in PredCls the reference replaces O4 by the one-hot labels, so its object loss is constant;
  here O4 keeps its cross-entropy (eq. 18) in both modes (the task's `object_weight=0` reproduces it).
- Union features: the reference uses a separate copy of fc6/fc7 for unions (initialised from the detector)
  and adds neural-motifs' convolution over the two box masks; here `union_head='shared'` (default) reuses
  the backbone's fc6/fc7 (ImageNet weights included) and 'separate' gives unions their own fc6/fc7; the
  box-mask convolution is not implemented.
- Frequency bias (`-use_bias` of the reference's command lines) is not in the paper and not implemented.

SGDet (`mode='sgdet'`): a frozen Faster R-CNN (`detector`, models/detection) gives the conv5_3 map, the objects
(its detections: boxes, mask) and K0's input (each detection's class distribution); LinkNet's own fc6/fc7 (which
`weights_from_detector` starts from the detector's) pool the detections and their unions. In training the
ground truth labels the detections (IoU >= 0.5) and pairs are sampled among overlapping detections inside the
step (detection/targets.py); at test every ordered pair of overlapping detections is scored.

Memory: union RoIAlign runs on chunks of `union_chunk_size` pairs (all images at once) with the 'matmul'
RoIAlign by default; with 64 objects, evaluation scores 4096 pairs per image.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgraphs.errors import ConfigError
from jaxgraphs.models.backbones import BACKBONES, build_backbone
from jaxgraphs.models.backbones.vgg import FullyConnected7x7
from jaxgraphs.models.detection.boxes import pairwise_iou
from jaxgraphs.models.detection.faster_rcnn import MODEL_KEYS as DETECTOR_KEYS
from jaxgraphs.models.detection.faster_rcnn import FasterRCNN
from jaxgraphs.models.detection.targets import detection_labels, relation_pair_targets
from jaxgraphs.models.heads.linknet_head import LinkNetHead
from jaxgraphs.models.layers.roi_align import pooled_box_features

MODES = ("predcls", "sgcls", "sgdet")
LABEL_INPUTS = ("auto", "ground_truth", "detector")
UNION_HEADS = ("shared", "separate")
ROI_SIZE = 7  # fc6 is a Linear over a 7 x 7 window


def union_boxes(boxes: jax.Array, pairs: jax.Array) -> jax.Array:
  """(B, P, 4) smallest boxes holding the subject and object boxes of each pair (x1, y1, x2, y2)."""
  take = jax.vmap(lambda rows, index: rows[index])
  subject, object_ = take(boxes, pairs[..., 0]), take(boxes, pairs[..., 1])
  return jnp.concatenate(
    [jnp.minimum(subject[..., :2], object_[..., :2]), jnp.maximum(subject[..., 2:], object_[..., 2:])], axis=-1
  )


def dense_pairs(box_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """All N * N ordered pairs (B, N*N, 2), pair p = (p // N, p % N), and their mask: distinct real objects."""
  batch, num_objects = box_mask.shape
  subject, object_ = jnp.divmod(jnp.arange(num_objects * num_objects), num_objects)
  pairs = jnp.broadcast_to(jnp.stack([subject, object_], axis=-1), (batch, num_objects * num_objects, 2))
  real = box_mask.astype(bool)
  pair_mask = (subject != object_)[None] & real[:, subject] & real[:, object_]
  return pairs, pair_mask


class UnionHead(nn.Module):
  """A separate fc6-ReLU-dropout-fc7-ReLU-dropout stack for union-box RoIs (union_head='separate')."""

  features: int
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, rois, train: bool = False):
    x = nn.relu(FullyConnected7x7(self.features, dtype=self.dtype, name="fc6")(rois))
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    x = nn.relu(nn.Dense(self.features, kernel_init=nn.initializers.normal(0.01), dtype=self.dtype, name="fc7")(x))
    return nn.Dropout(self.dropout_rate)(x, deterministic=not train)


class LinkNet(nn.Module):
  """Images and object boxes in; object logits (O4), predicate logits per pair, global multi-label logits out."""

  num_object_classes: int  # including the background at 0
  num_predicates: int  # without the background
  mode: str = "predcls"
  backbone: str = "vgg16"
  backbone_kwargs: dict[str, Any] | None = None
  feature_key: str = "block5"  # VGG conv5_3 after ReLU, before pool5
  feature_stride: int = 16
  sampling_ratio: int = 2
  roi_implementation: str = "matmul"
  union_chunk_size: int = 512
  union_head: str = "shared"
  label_input: str = "auto"
  teacher_forcing: bool = True
  use_global_context: bool = True
  head_kwargs: dict[str, Any] | None = None  # LinkNetHead attributes (widths, ablations)
  detector_kwargs: dict[str, Any] | None = None  # SGDet: FasterRCNN attributes of the frozen detector
  sgdet_pairs: int = 256  # SGDet training pairs per image, at most a quarter annotated (neural-motifs)
  sgdet_fg_fraction: float = 0.25
  dtype: Any = jnp.float32

  def _check(self):
    for name, value, valid in (
      ("mode", self.mode, MODES),
      ("label_input", self.label_input, LABEL_INPUTS),
      ("union_head", self.union_head, UNION_HEADS),
    ):
      if value not in valid:
        raise ValueError(f"LinkNet: {name}={value!r}; expected one of {valid}")
    if self.backbone not in BACKBONES:
      build_backbone(self.backbone)  # raises, listing the valid names

  def _roi_features(self, feature_map, boxes, mask, head, train):
    """fc7 features (B, R, D) of RoIAlign 7x7 at `boxes`, in chunks of `union_chunk_size` boxes."""
    return pooled_box_features(
      feature_map,
      boxes,
      mask,
      head,
      chunk_size=self.union_chunk_size,
      spatial_scale=1.0 / self.feature_stride,
      sampling_ratio=self.sampling_ratio,
      implementation=self.roi_implementation,
      output_size=ROI_SIZE,
      train=train,
    )

  def _detect(self, images, image_size, gt_boxes, gt_mask, gt_labels, relations, relation_mask, outputs, train):
    """SGDet's objects: the frozen detector's feature map, detections (boxes, mask, class distributions) and, in
    training, the detections' labels and sampled pairs; at test, all overlapping ordered pairs of detections."""
    detector = FasterRCNN(
      num_classes=self.num_object_classes,
      backbone=self.backbone,
      backbone_kwargs=self.backbone_kwargs,
      feature_key=self.feature_key,
      feature_stride=self.feature_stride,
      dtype=self.dtype,
      name="detector",
      **(self.detector_kwargs or {}),
    )
    found = jax.lax.stop_gradient(detector(images, image_size, train=False))
    boxes, box_mask = found["detection_boxes"], found["detection_mask"]
    outputs.update(detection_labels=found["detection_labels"], detection_scores=found["detection_scores"])
    if train:
      if gt_boxes is None or gt_labels is None or relations is None or relation_mask is None:
        raise ValueError("LinkNet: SGDet training needs the ground-truth boxes, labels and relations")
      gt_boxes, gt_mask = gt_boxes.astype(jnp.float32), gt_mask.astype(bool)
      labels = jax.vmap(detection_labels)(boxes, box_mask, gt_boxes, gt_labels, gt_mask)
      keys = jax.random.split(self.make_rng("dropout"), boxes.shape[0])
      pairs, pair_labels, pair_mask = jax.vmap(
        lambda b, m, gb, gm, r, rm, k: relation_pair_targets(
          b, m, gb, gm, r, rm, k, self.sgdet_pairs, self.sgdet_fg_fraction
        )
      )(boxes, box_mask, gt_boxes, gt_mask, relations, relation_mask, keys)
      outputs.update(object_labels=labels, pair_labels=pair_labels)
    else:
      labels = None
      pairs, pair_mask = dense_pairs(box_mask)
      overlapping = (pairwise_iou(boxes, boxes) > 0).reshape(boxes.shape[0], -1)
      pair_mask = pair_mask & overlapping  # SGDet scores only pairs of overlapping detections
    distribution = found["detection_distributions"]
    return found["feature_map"], boxes, box_mask, distribution, labels, pairs, pair_mask

  def _label_distribution(self, object_features, object_labels, label_distribution, outputs):
    """l_i fed to K0 (see the module docstring); adds 'detector_logits' when the object classifier runs."""
    choice = self.label_input
    if choice == "auto":
      if label_distribution is not None:
        return label_distribution
      choice = "ground_truth" if self.mode == "predcls" else "detector"
    if choice == "ground_truth":
      if object_labels is None:
        raise ValueError("LinkNet: label_input='ground_truth' (PredCls) needs object_labels")
      return jax.nn.one_hot(object_labels, self.num_object_classes, dtype=jnp.float32)
    logits = nn.Dense(self.num_object_classes, dtype=self.dtype, name="object_classifier")(object_features)
    outputs["detector_logits"] = logits.astype(jnp.float32)
    return jax.nn.softmax(jax.lax.stop_gradient(outputs["detector_logits"]), axis=-1)

  @nn.compact
  def __call__(
    self,
    images,
    boxes,
    box_mask,
    object_labels=None,
    label_distribution=None,
    pairs=None,
    pair_mask=None,
    image_size=None,
    relations=None,
    relation_mask=None,
    train: bool = False,
  ):
    """images (B, H, W, 3); boxes (B, N, 4) x1, y1, x2, y2 pixels of `images`; box_mask (B, N); object_labels
    (B, N) ground truth (PredCls, and K1 in training); label_distribution (B, N, C) a detector's; pairs (B, P, 2)
    with pair_mask (B, P), or None for all pairs. SGDet: the objects are the detector's detections and boxes,
    box_mask, object_labels, relations (B, M, 3) and relation_mask (B, M) are the ground truth, read in training
    only (labels and pairs of the detections); image_size (B, 2) the real pixels of padded images."""
    self._check()
    backbone = BACKBONES[self.backbone](name="backbone", dtype=self.dtype, **(self.backbone_kwargs or {}))
    outputs: dict[str, Any] = {}
    if self.mode == "sgdet":
      feature_map, boxes, box_mask, label_distribution, object_labels, pairs, pair_mask = self._detect(
        images, image_size, boxes, box_mask, object_labels, relations, relation_mask, outputs, train
      )
    else:
      features = backbone(images.astype(self.dtype), train=train)
      if self.feature_key not in features:
        raise ValueError(f"LinkNet: feature_key={self.feature_key!r} is not a backbone output; has {sorted(features)}")
      feature_map = features[self.feature_key]
    box_mask = box_mask.astype(bool)
    boxes = boxes.astype(jnp.float32)

    object_features = self._roi_features(feature_map, boxes, box_mask, backbone.fc_head, train)
    distribution = self._label_distribution(object_features, object_labels, label_distribution, outputs)
    context = None
    if self.use_global_context:
      context = jnp.mean(feature_map.astype(jnp.float32), axis=(1, 2))
      outputs["global_logits"] = nn.Dense(self.num_object_classes, dtype=self.dtype, name="global_classifier")(
        context
      ).astype(jnp.float32)

    if pairs is None:
      pairs, pair_mask = dense_pairs(box_mask)
    elif pair_mask is None:
      raise ValueError("LinkNet: pairs given without pair_mask")
    pairs = pairs.astype(jnp.int32)
    pair_mask = pair_mask.astype(bool)
    union_head = (
      backbone.fc_head
      if self.union_head == "shared"
      else UnionHead(object_features.shape[-1], dtype=self.dtype, name="union_head")
    )
    union_features = self._roi_features(feature_map, union_boxes(boxes, pairs), pair_mask, union_head, train)

    use_ground_truth = self.mode == "predcls" or (train and self.teacher_forcing)
    if use_ground_truth and object_labels is None:
      raise ValueError(f"LinkNet: mode={self.mode!r}{' in training' if train else ''} feeds K1 the object_labels")
    head = LinkNetHead(
      self.num_object_classes, self.num_predicates, dtype=self.dtype, name="head", **(self.head_kwargs or {})
    )
    outputs.update(
      head(
        object_features,
        distribution,
        context,
        box_mask,
        boxes,
        pairs,
        pair_mask,
        union_features,
        k1_labels=object_labels if use_ground_truth else None,
        train=train,
      )
    )
    outputs.update(pairs=pairs, pair_mask=pair_mask, boxes=boxes, box_mask=box_mask)  # echoed for pictures
    return outputs


HEAD_KEYS = (
  "embed_dim",
  "hidden_dim",
  "geometry_dim",
  "num_relational_modules",
  "reduction",
  "use_relational_embedding",
  "use_geometry",
  "edge_input",
  "normalization",
  "similarity",
  "graph_implementation",
  "use_tanh",
  "geometry_batch_norm",
  "geometry_bn_momentum",
  "geometry_relu",
  "geometry_dropout",
)
# Keys added after runs were saved: an older run's config lacks them and gets the behaviour it was trained with.
HEAD_KEY_DEFAULTS = {"geometry_relu": True}


def build_linknet(cfg, data_info, dtype) -> LinkNet:
  """LinkNet sized for the object classes and predicates of `data_info` and the mode `config.model.mode`."""
  if not data_info.predicate_names:
    raise ConfigError(
      f"config.data.source={data_info.source!r} has no relations; LinkNet needs a scene-graph "
      "source (vg150 or builtin_shapes/<size>:scene_graph)"
    )
  if cfg.mode not in MODES:
    raise ConfigError(f"config.model.mode={cfg.mode!r}; LinkNet supports {MODES}")
  missing = [key for key in HEAD_KEYS if key not in cfg and key not in HEAD_KEY_DEFAULTS]
  if missing:
    raise ConfigError(f"config.model lacks LinkNet keys {missing}; start from jaxgraphs.configs.linknet.model_config()")
  return LinkNet(
    num_object_classes=data_info.num_classes,
    num_predicates=len(data_info.predicate_names) - 1,
    mode=cfg.mode,
    backbone=cfg.backbone,
    backbone_kwargs=dict(cfg.backbone_kwargs),
    feature_key=cfg.feature_key,
    feature_stride=cfg.feature_stride,
    sampling_ratio=cfg.sampling_ratio,
    roi_implementation=cfg.roi_implementation,
    union_chunk_size=cfg.union_chunk_size,
    union_head=cfg.union_head,
    label_input=cfg.label_input,
    teacher_forcing=cfg.teacher_forcing,
    use_global_context=cfg.use_global_context,
    head_kwargs={key: cfg[key] if key in cfg else HEAD_KEY_DEFAULTS[key] for key in HEAD_KEYS},
    detector_kwargs=_detector_kwargs(cfg) if cfg.mode == "sgdet" else None,
    sgdet_pairs=cfg.get("sgdet_pairs", 256),
    sgdet_fg_fraction=cfg.get("sgdet_fg_fraction", 0.25),
    dtype=dtype,
  )


def _detector_kwargs(cfg) -> dict[str, Any]:
  """FasterRCNN attributes from `config.model.detector` (SGDet), tuples where the module wants them."""
  if "detector" not in cfg:
    raise ConfigError(
      "config.model.mode='sgdet' needs config.model.detector (the detector's keys, from "
      "jaxgraphs.configs.faster_rcnn.model_config()) and config.model.detector_run (the detector's workdir)"
    )
  kwargs = {key: cfg.detector[key] for key in DETECTOR_KEYS if key not in ("feature_key", "feature_stride")}
  for key in ("anchor_ratios", "anchor_scales"):
    kwargs[key] = tuple(float(v) for v in kwargs[key])
  return kwargs


def weights_from_detector(mode: str, detector_params: dict) -> list[tuple[tuple[str, ...], dict]]:
  """Where a Faster R-CNN run's parameters go in LinkNet: [(subtree, {"params": tree}), ...].

  PredCls / SGCls: the detector's VGG (convolutions and fc6/fc7) becomes LinkNet's backbone. SGDet: the whole
  detector becomes LinkNet's frozen `detector`, and LinkNet's own fc6/fc7 start from the detector's, as the
  relation models of neural-motifs copy them."""
  backbone = detector_params["backbone"]
  if mode != "sgdet":
    return [(("backbone",), {"params": backbone})]
  fc_layers = {name: value for name, value in backbone.items() if name.startswith("classifier")}
  return [(("detector",), {"params": detector_params}), (("backbone",), {"params": fc_layers})]
