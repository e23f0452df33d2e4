"""RGNet's config keys and variant argument, shared by configs/rgnet_*.py (the recipes are in those files)."""

from __future__ import annotations

from typing import Any

import ml_collections

from jaxgraphs.configs import common
from jaxgraphs.models.backbones import BACKBONES
from jaxgraphs.models.rgnet import HEAD_TASKS, MODEL_VARIANTS

# The converted torchvision checkpoint's ImageNet classifier, which no RGNet variant has.
PRETRAINED_CLASSIFIER = {
  "densenet": r"params/backbone/classifier/.*",
  "resnet": r"params/backbone/fc/.*",
  "vgg": r"params/backbone/classifier_6/.*",
}
VARIANT_ARG_HELP = """\
get_config(arg): comma-separated; a bare word is the variant, key=value pairs change one thing:
  fc_cnn | fcn | fcn_a | fcn_g | fcn_c_c | fcn_a_g   Table 1 (fcn_a_g, the full RGNet, by default)
  backbone=densenet121|vgg16|resnet101             Table 2 (each at output stride 8)
  rates=3-6-12-18                                  Table 3: the DenseASPP dilation rates
  r=4                                              Fig. 5: the LSE smoothness r
  layers=3                                         Fig. 5: the number of graph convolution layers
  pool=lse|mean                                    LSE (eq. 4) or average pooling of the region scores
  kind=binary|regression|distribution              the loss: 2-class CE, MSE on the score, EMD on 10 bins
e.g. --config=configs/rgnet_ava.py:fcn_a_g,backbone=vgg16,r=2,layers=1"""

_ARG_KEYS = {
  "backbone": common.choice(*BACKBONES),
  "rates": common.dashed_ints,
  "r": float,
  "layers": common.integer(1),
  "pool": common.choice("lse", "mean"),
  "kind": common.choice(*HEAD_TASKS),
}


def default_head_config() -> ml_collections.ConfigDict:
  """`config.model.head`: RGNetHead's attributes with the paper's values (graph_embed_features 0 = d')."""
  return ml_collections.ConfigDict(
    {
      "lse_r": 4.0,
      "pooling": "lse",  # or 'mean' (the paper's average-pooling comparison)
      "aspp_rates": (3, 6, 12, 18),
      "aspp_inter_features": 128,
      "aspp_out_features": 64,
      "aspp_dropout": 0.1,
      "bn_momentum": 0.1,
      "graph_layers": 3,
      "graph_embed_features": 0,
      "graph_similarity_per_layer": False,
      "graph_scale": 1.0,
      # Sec. 3.3's BN before phi, theta, each W and the classifier; off: it cost accuracy on the composition data
      "batch_norm_before_weights": False,
      # 'auto': explicit (fastest) while one image's S fits 64 MiB (the paper's 37 x 37 map: 14 MiB), else 'blocked'
      "graph_implementation": "auto",
      "graph_block_size": 512,
    }
  )


def configure(config: ml_collections.ConfigDict, kind: str) -> None:
  """Sets `config.task` (aesthetics of `kind`) and `config.model` (DenseNet-121 at OS 8, FCN-A-G).

  `config.model.kind` is a reference to `config.task.kind`: one override changes both.
  """
  config.task = ml_collections.ConfigDict({"name": "aesthetics", "kind": kind, "emd_r": 2.0})
  model = config.model
  model.name = "rgnet"
  model.kind = config.task.get_ref("kind")
  model.backbone = "densenet121"
  model.backbone_kwargs = {}
  model.feature_key = "feature_map"
  model.variant = "fcn_a_g"
  # 512: the DenseASPP code's randomly initialised 1024 -> 512 transition after DenseNet block 4 (d' = 768);
  # 0: none, as RGNet's text (d' = d + 4 * 64 = 1280).
  model.transition_features = 0
  model.num_bins = 10
  model.head = default_head_config()
  model.dont_load = (PRETRAINED_CLASSIFIER["densenet"],)


def parse_arg(arg: str | None) -> dict[str, Any]:
  """Parses a variant argument (VARIANT_ARG_HELP) into {'variant', 'backbone', 'rates', 'r', ...}."""
  return common.parse_arg(arg, words={"variant": MODEL_VARIANTS}, keys=_ARG_KEYS, usage=VARIANT_ARG_HELP)


def apply_arg(config: ml_collections.ConfigDict, arg: str | None) -> dict[str, Any]:
  """Applies a variant argument (VARIANT_ARG_HELP) to `config.model` / `config.task`; returns it parsed."""
  model = config.model
  parsed = parse_arg(arg)
  model.variant = parsed.get("variant", model.variant)
  if "backbone" in parsed:
    model.backbone = parsed["backbone"]
    model.dont_load = (PRETRAINED_CLASSIFIER[backbone_family(model.backbone)],)
  for key, head_key in (("rates", "aspp_rates"), ("r", "lse_r"), ("layers", "graph_layers"), ("pool", "pooling")):
    if key in parsed:
      model.head[head_key] = parsed[key]
  if "kind" in parsed:
    config.task.kind = parsed["kind"]
  return parsed


def backbone_family(backbone: str) -> str:
  """'densenet', 'resnet' or 'vgg' for a backbone name."""
  return next(family for family in PRETRAINED_CLASSIFIER if backbone.startswith(family))
