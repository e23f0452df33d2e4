"""LinkNet (Woo et al., 2018) for PredCls and SGCls: VGG-16, RoIAlign, relational embedding, union features.

Per image (all images of a batch at once, padded with masks): the VGG conv5_3 map (stride 16) is pooled by
RoIAlign 7x7 at every object box and passed through VGG's fc6/fc7 (f_RoI, 4096-d). The global context c is
the average-pooled map (512-d) with a multi-label head. `LinkNetHead` builds O0 = [f_RoI; K0 l; c], the
object- and edge-relational embeddings and the predicate logits of every pair, with the union-box features
F_ij = fc7(RoIAlign(union of boxes i and j)). Pairs are the ones given (training: the sampled fg/bg pairs of
`sample_relation_pairs`) or all ordered pairs of distinct real objects, in the dense layout
p = subject * N + object (evaluation).

What the inputs mean per mode, as the third-party reimplementation on neural-motifs (REFERENCE.md) does it:
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

Memory: union RoIAlign runs on chunks of `union_chunk_size` pairs (all images at once) with the 'matmul'
RoIAlign by default; with 64 objects, evaluation scores 4096 pairs per image.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxgraphs.models.backbones import BACKBONES, build_backbone
from jaxgraphs.models.backbones.vgg import FullyConnected7x7
from jaxgraphs.models.heads.linknet_head import LinkNetHead
from jaxgraphs.models.layers.roi_align import roi_align

MODES = ("predcls", "sgcls")
LABEL_INPUTS = ("auto", "ground_truth", "detector")
UNION_HEADS = ("shared", "separate")
ROI_SIZE = 7  # fc6 is a Linear over a 7 x 7 window


def union_boxes(boxes: jax.Array, pairs: jax.Array) -> jax.Array:
  """(B, P, 4) smallest boxes holding the subject and object boxes of each pair (x1, y1, x2, y2)."""
  take = jax.vmap(lambda rows, index: rows[index])
  subject, object_ = take(boxes, pairs[..., 0]), take(boxes, pairs[..., 1])
  return jnp.concatenate([jnp.minimum(subject[..., :2], object_[..., :2]),
                          jnp.maximum(subject[..., 2:], object_[..., 2:])], axis=-1)


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
  dtype: Any = jnp.float32

  def _check(self):
    for name, value, valid in (("mode", self.mode, MODES), ("label_input", self.label_input, LABEL_INPUTS),
                               ("union_head", self.union_head, UNION_HEADS)):
      if value not in valid:
        raise ValueError(f"LinkNet: {name}={value!r}; expected one of {valid}")
    if self.backbone not in BACKBONES:
      build_backbone(self.backbone)  # raises, listing the valid names

  def _roi_features(self, feature_map, boxes, mask, head, train):
    """fc7 features (B, R, D) of RoIAlign 7x7 at `boxes`, in chunks of `union_chunk_size` boxes."""
    chunk = max(1, self.union_chunk_size)
    pieces = []
    for start in range(0, boxes.shape[1], chunk):
      rois = roi_align(feature_map, boxes[:, start:start + chunk], mask[:, start:start + chunk],
                       output_size=ROI_SIZE, spatial_scale=1.0 / self.feature_stride,
                       sampling_ratio=self.sampling_ratio, implementation=self.roi_implementation)
      pieces.append(head(rois, train=train))
    return jnp.concatenate(pieces, axis=1)

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
  def __call__(self, images, boxes, box_mask, object_labels=None, label_distribution=None, pairs=None,
               pair_mask=None, train: bool = False):
    """images (B, H, W, 3); boxes (B, N, 4) x1, y1, x2, y2 pixels of `images`; box_mask (B, N); object_labels
    (B, N) ground truth (PredCls, and K1 in training); label_distribution (B, N, C) a detector's; pairs (B, P, 2)
    with pair_mask (B, P), or None for all pairs."""
    self._check()
    backbone = BACKBONES[self.backbone](name="backbone", dtype=self.dtype, **(self.backbone_kwargs or {}))
    features = backbone(images.astype(self.dtype), train=train)
    if self.feature_key not in features:
      raise ValueError(f"LinkNet: feature_key={self.feature_key!r} is not a backbone output; has {sorted(features)}")
    feature_map = features[self.feature_key]
    box_mask = box_mask.astype(bool)
    boxes = boxes.astype(jnp.float32)
    outputs: dict[str, Any] = {}

    object_features = self._roi_features(feature_map, boxes, box_mask, backbone.fc_head, train)
    distribution = self._label_distribution(object_features, object_labels, label_distribution, outputs)
    context = None
    if self.use_global_context:
      context = jnp.mean(feature_map.astype(jnp.float32), axis=(1, 2))
      outputs["global_logits"] = nn.Dense(self.num_object_classes, dtype=self.dtype,
                                          name="global_classifier")(context).astype(jnp.float32)

    if pairs is None:
      pairs, pair_mask = dense_pairs(box_mask)
    elif pair_mask is None:
      raise ValueError("LinkNet: pairs given without pair_mask")
    pairs = pairs.astype(jnp.int32)
    pair_mask = pair_mask.astype(bool)
    union_head = backbone.fc_head if self.union_head == "shared" else UnionHead(
        object_features.shape[-1], dtype=self.dtype, name="union_head")
    union_features = self._roi_features(feature_map, union_boxes(boxes, pairs), pair_mask, union_head, train)

    use_ground_truth = self.mode == "predcls" or (train and self.teacher_forcing)
    if use_ground_truth and object_labels is None:
      raise ValueError(f"LinkNet: mode={self.mode!r}{' in training' if train else ''} feeds K1 the object_labels")
    head = LinkNetHead(self.num_object_classes, self.num_predicates, dtype=self.dtype, name="head",
                       **(self.head_kwargs or {}))
    outputs.update(head(object_features, distribution, context, box_mask, boxes, pairs, pair_mask, union_features,
                        k1_labels=object_labels if use_ground_truth else None, train=train))
    outputs.update(pairs=pairs, pair_mask=pair_mask, boxes=boxes, box_mask=box_mask)  # echoed for pictures
    return outputs


HEAD_KEYS = ("embed_dim", "hidden_dim", "geometry_dim", "num_relational_modules", "reduction",
             "use_relational_embedding", "use_geometry", "edge_input", "normalization", "similarity",
             "graph_implementation", "use_tanh", "geometry_batch_norm", "geometry_bn_momentum", "geometry_dropout")


def linknet_model_config() -> ml_collections.ConfigDict:
  """`config.model` of LinkNet on VG-150 (paper sizes); configs override widths and ablation switches."""
  return ml_collections.ConfigDict({
      "name": "linknet",
      "backbone": "vgg16",
      "backbone_kwargs": {},  # e.g. {'width': 4, 'fc_width': 64, 'stage_sizes': (1, 1, 1, 1, 1)} for tests
      "feature_key": "block5",
      "feature_stride": 16,
      "dtype": "float32",
      "backbone_init": "",
      "dont_load": (),
      "sampling_ratio": 2,
      "roi_implementation": "matmul",  # 'gather' or 'matmul' (same numbers; see layers/roi_align.py)
      "union_chunk_size": 512,  # union boxes per RoIAlign + fc6/fc7 chunk
      "union_head": "shared",  # 'shared' (the backbone's fc6/fc7) or 'separate'
      "label_input": "auto",  # K0's input: 'auto', 'ground_truth', 'detector'
      "teacher_forcing": True,  # K1 gets the ground-truth labels in training (the reference)
      "use_global_context": True,  # GCEM (Table 3)
      "embed_dim": 200,
      "hidden_dim": 256,
      "geometry_dim": 128,
      "num_relational_modules": 2,  # per side (Table 2a)
      "reduction": 2,  # r (Table 2a)
      "use_relational_embedding": True,  # REM (Table 3)
      "use_geometry": True,  # GLEM (Table 3)
      "edge_input": "both",  # E0 (Table 2b): 'both', 'labels' (K1 argmax O4 only), 'context' (O3 only)
      "normalization": "softmax",  # row normalisation (Table 3): 'softmax' or 'sigmoid'
      "similarity": "dot",  # 'dot' or 'euclidean' (Table 3)
      "graph_implementation": "explicit",  # graph_attention implementation; 'explicit' returns R (Fig. 2)
      "use_tanh": False,
      "geometry_batch_norm": True,  # the reference's BatchNorm1d(4) before K2
      "geometry_bn_momentum": 0.999,  # flax convention; torch momentum 0.001 as the reference
      "geometry_dropout": 0.1,
  })


def linknet_from_config(config: ml_collections.ConfigDict, data_info, dtype) -> LinkNet:
  """LinkNet sized for the scene-graph source of `config.data` and the mode of `config.task`."""
  from jaxgraphs.data import sources
  from jaxgraphs.training.runtime import ConfigError
  source = sources.get_source(data_info.source)
  if not isinstance(source, sources.SceneGraphSource):
    raise ConfigError(f"config.data.source={data_info.source!r} has no relations; LinkNet needs a scene-graph "
                      f"source ({', '.join(k for k, v in sources.SOURCES.items() if isinstance(v, sources.SceneGraphSource))})")
  cfg = config.model
  mode = config.task.get("mode", "predcls")
  if mode not in MODES:
    raise ConfigError(f"config.task.mode={mode!r}; LinkNet supports {MODES}")
  missing = [key for key in HEAD_KEYS if key not in cfg]
  if missing:
    raise ConfigError(f"config.model lacks LinkNet keys {missing}; start from linknet.linknet_model_config()")
  return LinkNet(
      num_object_classes=data_info.num_classes, num_predicates=len(source.predicate_names) - 1, mode=mode,
      backbone=cfg.backbone, backbone_kwargs=dict(cfg.backbone_kwargs), feature_key=cfg.feature_key,
      feature_stride=cfg.feature_stride, sampling_ratio=cfg.sampling_ratio,
      roi_implementation=cfg.roi_implementation, union_chunk_size=cfg.union_chunk_size, union_head=cfg.union_head,
      label_input=cfg.label_input, teacher_forcing=cfg.teacher_forcing, use_global_context=cfg.use_global_context,
      head_kwargs={key: cfg[key] for key in HEAD_KEYS}, dtype=dtype)


VARIANT_ARG_HELP = """LinkNet config argument: comma-separated tokens
  predcls | sgcls                     the task mode
  num_re=2                            Table 2a: relational embedding modules per side (object, edge)
  r=2                                 Table 2a: reduction ratio of W, U, H
  e0=both|labels|context              Table 2b: E0 = [K1 argmax(O4); O3], K1 argmax(O4) only, O3 only
  rem=1 glem=1 gcem=1                 Table 3: relational embedding, geometric layout, global context on/off
  norm=softmax|sigmoid                Table 3: row normalisation of R
  sim=dot|euclidean                   Table 3: similarity inside R
e.g. --config=configs/linknet_shapes.py:predcls,rem=0,glem=0"""

_SWITCHES = {"rem": "use_relational_embedding", "glem": "use_geometry", "gcem": "use_global_context"}
_CHOICES = {"e0": ("edge_input", ("both", "labels", "context")),
            "norm": ("normalization", ("softmax", "sigmoid")),
            "sim": ("similarity", ("dot", "euclidean"))}
_INTEGERS = {"num_re": "num_relational_modules", "r": "reduction"}


def parse_variant_arg(arg: str | None) -> dict[str, Any]:
  """Parses a `get_config` argument (VARIANT_ARG_HELP) into {'mode': ..., config.model key: value}."""
  from jaxgraphs.training.runtime import ConfigError
  parsed: dict[str, Any] = {}
  for token in (t.strip() for t in (arg or "").split(",")):
    if not token:
      continue
    if token in MODES:
      parsed["mode"] = token
      continue
    key, _, value = (part.strip() for part in token.partition("="))
    try:
      if key in _SWITCHES and value in ("0", "1"):
        parsed[_SWITCHES[key]] = value == "1"
      elif key in _CHOICES and value in _CHOICES[key][1]:
        parsed[_CHOICES[key][0]] = value
      elif key in _INTEGERS and int(value) >= 1:
        parsed[_INTEGERS[key]] = int(value)
      else:
        raise ValueError
    except ValueError:
      raise ConfigError(f"config argument {arg!r}: bad token {token!r}\n{VARIANT_ARG_HELP}") from None
  return parsed


def configure(config: ml_collections.ConfigDict, arg: str | None = None, mode: str = "predcls") -> None:
  """Sets `config.model` (LinkNet defaults) and `config.task` (scene_graph), then applies a variant argument."""
  from jaxgraphs.tasks.scene_graph import default_task_config
  config.model = linknet_model_config()
  config.task = default_task_config()
  config.task.mode = mode
  parsed = parse_variant_arg(arg)
  config.task.mode = parsed.pop("mode", mode)
  config.model.update(parsed)
  config.checkpoint.best_metric = f"{config.task.mode}/R@50"
  config.checkpoint.best_mode = "max"


def reference_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int, epochs: int) -> None:
  """The reference's training (neural-motifs' train_rels.py): SGD, momentum 0.9, lr 1e-3 per image (6e-3 at
  batch 6), weight decay 1e-4 on every parameter, gradient norm clipped at 5.

  It divides the lr by 10 when the validation R@100 stops improving (ReduceLROnPlateau, patience 3 epochs)
  and trains the fc6/fc7 layers at lr / 10; here the lr drops by 10 after 2/3 of the epochs and the fc
  layers share the lr (the optimiser has no per-parameter rates).
  """
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1e-3 * config.batch_size
  config.optimizer.weight_decay = 1e-4
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "step"
  config.optimizer.schedule.boundaries = (steps_per_epoch * (2 * epochs // 3),)
  config.optimizer.schedule.decay_factor = 0.1
  config.total_steps = steps_per_epoch * epochs


VG150_TRAIN_IMAGES = 57_723  # the filtered train split after the 5,000 validation images (neural-motifs)
VG150_BATCH_SIZE = 6  # the reference's command line (-b 6 on one GPU)
VG150_EPOCHS = 9


def vg150_config(mode: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """LinkNet on VG-150 (Sec. 4): full widths, 592 px inputs, the reference's optimiser; see configs/linknet_vg_*.py."""
  from jaxgraphs.training.defaults import base_config
  config = base_config()
  configure(config, arg, mode)
  config.data.source = "vg150"
  config.seed = 0
  config.batch_size = VG150_BATCH_SIZE
  steps_per_epoch = VG150_TRAIN_IMAGES // VG150_BATCH_SIZE
  reference_optimizer(config, steps_per_epoch, VG150_EPOCHS)
  # The reference freezes its VG-trained detector's convolutions; here the ImageNet VGG-16's convolutions.
  config.optimizer.freeze = (r"^backbone/features_",)
  config.model.dont_load = (r"params/backbone/classifier_6/.*",)  # torchvision's 1000-way fc8
  config.log_every_steps = 100
  config.eval_every_steps = steps_per_epoch
  config.checkpoint.every_steps = 2000
  return config
