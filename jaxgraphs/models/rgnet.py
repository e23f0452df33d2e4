"""RGNet (Liu et al., "Composition-Aware Image Aesthetics Assessment"): a backbone at output stride 8 + RGNetHead.

The backbone is one of `BACKBONES` made fully convolutional at output stride 8 (DenseNet-121 by default;
VGG-16 with fc6/fc7 as convolutions and ResNet-101 for the paper's Table 2); `RGNetHead` adds the
DenseASPP, the region composition graph and the per-region classifier with LSE pooling (Table 1 variants).
`variant='fc_cnn'` is the paper's FC-CNN baseline instead: the backbone at its usual output stride 32,
global average pooling and one fully connected layer (torchvision's DenseNet classifier with 2 outputs).

Besides the head's 'logits', the module returns what the aesthetics task draws (the paper's Fig. 6):
  region_quality  (B, H, W)  each region's aesthetics: p(high), the regression score, or the expected
                             rating 1..10 of its rating distribution
  query_region    (B,)       flat index of the highest-quality region
  similarity_fcn, similarity_aspp, similarity_graph  (B, H, W)  cosine similarity of every region's
                             features to the query region's, after the FCN, after the ASPP (or its
                             FCN-C-C stand-in) and after the graph (or the plain convolutions); only the
                             stages present in the variant
and, for the rating-distribution kind, 'distribution' (B, num_bins). The feature maps themselves stay on
the device (a batch of 32 at 37 x 37 x 1280 would be 220 MB per stage).

New layers (the head, FC-CNN's fc) use He initialisation (the paper's "method in [13]"). What the paper leaves
open and how the project fills it in: (docs/paper_details.md, RGNet).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgraphs.models.backbones import BACKBONES, build_backbone
from jaxgraphs.models.heads.dense_aspp import DenseASPPTransition
from jaxgraphs.models.heads.rgnet_head import VARIANTS, RGNetHead
from jaxgraphs.errors import ConfigError

# The aesthetics task's kinds, and the head's matching `task`.
HEAD_TASKS = {"binary": "classification", "regression": "regression", "distribution": "distribution"}
FC_CNN = "fc_cnn"
MODEL_VARIANTS = (FC_CNN,) + VARIANTS
OUTPUT_STRIDE = 8
FEATURE_STAGES = ("fcn", "aspp", "graph")


def default_backbone_kwargs(backbone: str, variant: str) -> dict[str, Any]:
  """The paper's backbone settings: output stride 8 (VGG with fc6/fc7 as convolutions); FC-CNN keeps stride 32."""
  if variant == FC_CNN:
    return {}
  kwargs: dict[str, Any] = {"output_stride": OUTPUT_STRIDE}
  if backbone.startswith("vgg"):
    # "we first convert the fully-connected layers into convolutional ones to make it an FCN" (Sec. 4.2).
    kwargs["fc_as_conv"] = True
  return kwargs


def region_quality(region_scores: jax.Array, kind: str) -> jax.Array:
  """Per-region aesthetics (B, H, W): p(high), the regression output, or the expected rating over bins 1..K."""
  if kind == "binary":
    return region_scores[..., 1]
  if kind == "regression":
    return region_scores[..., 0]
  ratings = jnp.arange(1, region_scores.shape[-1] + 1, dtype=region_scores.dtype)
  return jnp.sum(region_scores * ratings, axis=-1)


def similarity_to_region(features: jax.Array, query: jax.Array) -> jax.Array:
  """Cosine similarity (B, H, W) of every region's feature vector to region `query` (B,) (flat index)."""
  batch, height, width, channels = features.shape
  flat = features.reshape(batch, height * width, channels).astype(jnp.float32)
  unit = flat / jnp.maximum(jnp.linalg.norm(flat, axis=-1, keepdims=True), 1e-6)
  anchor = jnp.take_along_axis(unit, query[:, None, None], axis=1)  # (B, 1, C)
  return jnp.sum(unit * anchor, axis=-1).reshape(batch, height, width)


def pooled_distribution(pooled: jax.Array) -> jax.Array:
  """Rating distribution from LSE-pooled per-region distributions: renormalised to sum 1.

  The pooled values are in [0, 1] (each region's softmax is), so a second softmax over them could put at
  most e / (e + 9) = 23% on one of 10 bins; renormalising keeps their shape (as r -> 0 it is the mean
  of the regions' distributions).
  """
  pooled = jnp.maximum(pooled, 0.0)
  return pooled / jnp.maximum(jnp.sum(pooled, axis=-1, keepdims=True), 1e-12)


class FCCNNHead(nn.Module):
  """FC-CNN (Table 1): global average pool of the backbone map -> one fully connected layer."""

  num_outputs: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features):
    """features (B, H, W, d) -> {'logits': (B, num_outputs)}."""
    pooled = jnp.mean(features.astype(jnp.float32), axis=(1, 2))
    fc = nn.Dense(
      self.num_outputs,
      kernel_init=nn.initializers.he_normal(),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="classifier",
    )
    return {"logits": fc(pooled.astype(self.dtype)).astype(jnp.float32), "pre_logits": pooled}


class RGNet(nn.Module):
  """Images (B, H, W, 3) -> backbone feature map -> RGNetHead (or FC-CNN); returns a dict (module docstring)."""

  kind: str = "binary"
  variant: str = "fcn_a_g"
  backbone: str = "densenet121"
  backbone_kwargs: Mapping[str, Any] | None = None  # added to (and overriding) default_backbone_kwargs
  feature_key: str = "feature_map"
  head_kwargs: Mapping[str, Any] | None = None  # RGNetHead attributes (lse_r, aspp_rates, graph_layers, ...)
  # > 0: the DenseASPP code's transition to this many channels between backbone and head (not FC-CNN).
  transition_features: int = 0
  num_bins: int = 10
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _check_config(self):
    """Raises a ValueError naming the bad attribute."""
    if self.kind not in HEAD_TASKS:
      raise ValueError(f"RGNet.kind={self.kind!r}; expected one of {tuple(HEAD_TASKS)}")
    if self.variant not in MODEL_VARIANTS:
      raise ValueError(f"RGNet.variant={self.variant!r}; expected one of {MODEL_VARIANTS}")
    if self.backbone not in BACKBONES:
      build_backbone(self.backbone)  # raises, listing the valid names

  @property
  def num_outputs(self) -> int:
    """Image-level outputs: 2 classes, num_bins ratings or one score."""
    return {"binary": 2, "distribution": self.num_bins, "regression": 1}[self.kind]

  @nn.compact
  def __call__(self, images, train: bool = False):
    """images: (B, H, W, 3) normalised floats. Returns the dict described in the module docstring."""
    self._check_config()
    kwargs = {**default_backbone_kwargs(self.backbone, self.variant), **dict(self.backbone_kwargs or {})}
    backbone = BACKBONES[self.backbone](name="backbone", dtype=self.dtype, param_dtype=self.param_dtype, **kwargs)
    backbone_outputs = backbone(images.astype(self.dtype), train=train)
    if self.feature_key not in backbone_outputs:
      raise ValueError(
        f"RGNet.feature_key={self.feature_key!r} is not an output of {self.backbone}; "
        f"available: {sorted(backbone_outputs)}"
      )
    features = backbone_outputs[self.feature_key]

    if self.variant == FC_CNN:
      outputs = FCCNNHead(self.num_outputs, dtype=self.dtype, param_dtype=self.param_dtype, name="head")(features)
      if self.kind == "distribution":
        outputs["distribution"] = jax.nn.softmax(outputs["logits"], axis=-1)
      return outputs

    if self.transition_features:
      features = DenseASPPTransition(
        self.transition_features, dtype=self.dtype, param_dtype=self.param_dtype, name="transition"
      )(features, train=train)
    head = RGNetHead(
      variant=self.variant,
      task=HEAD_TASKS[self.kind],
      num_bins=self.num_bins,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="head",
      **dict(self.head_kwargs or {}),
    )
    head_outputs = head(features, train=train)
    outputs = {key: head_outputs[key] for key in ("logits", "region_logits", "region_scores")}
    if self.kind == "distribution":
      outputs["distribution"] = pooled_distribution(head_outputs["logits"])
    quality = region_quality(head_outputs["region_scores"], self.kind)
    query = jnp.argmax(quality.reshape(quality.shape[0], -1), axis=-1)
    outputs["region_quality"] = quality
    outputs["query_region"] = query
    for stage in FEATURE_STAGES:
      if f"features_{stage}" in head_outputs:
        outputs[f"similarity_{stage}"] = similarity_to_region(head_outputs[f"features_{stage}"], query)
    return outputs


# ---- factory -----------------------------------------------------------------------------------------
def build_rgnet(cfg, data_info, dtype) -> RGNet:
  """The RGNet module described by `config.model`; bad keys fail naming them."""
  del data_info  # two classes, a score or a rating histogram: fixed by `kind`, not by the dataset
  head = dict(cfg.head)
  head["aspp_rates"] = tuple(int(rate) for rate in head["aspp_rates"])
  head["graph_embed_features"] = head["graph_embed_features"] or None
  known = {field.name for field in dataclasses.fields(RGNetHead)}
  unknown = sorted(set(head) - known)
  if unknown:
    raise ConfigError(f"config.model.head has keys RGNetHead does not take: {unknown}")
  if cfg.kind not in HEAD_TASKS:
    raise ConfigError(f"config.model.kind={cfg.kind!r}; expected one of {tuple(HEAD_TASKS)}")
  if cfg.variant not in MODEL_VARIANTS:
    raise ConfigError(f"config.model.variant={cfg.variant!r}; expected one of {MODEL_VARIANTS}")
  if cfg.backbone not in BACKBONES:
    raise ConfigError(f"config.model.backbone={cfg.backbone!r} is not a backbone; choose one of {sorted(BACKBONES)}")
  return RGNet(
    kind=cfg.kind,
    variant=cfg.variant,
    backbone=cfg.backbone,
    backbone_kwargs=dict(cfg.backbone_kwargs),
    feature_key=cfg.feature_key,
    head_kwargs=head,
    # Absent from configs written before the option: no transition, as those runs were trained.
    transition_features=int(cfg.get("transition_features", 0)),
    num_bins=cfg.num_bins,
    dtype=dtype,
  )
