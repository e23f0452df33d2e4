"""LinkNet's config keys and variant argument, shared by configs/linknet_*.py (the recipes are in those files)."""

from __future__ import annotations

from typing import Any

import ml_collections

from jaxgraphs.configs import common, faster_rcnn
from jaxgraphs.models.linknet import MODES
from jaxgraphs.tasks.scene_graph import default_task_config

VARIANT_ARG_HELP = """LinkNet config argument: comma-separated tokens
  predcls | sgcls | sgdet             the task mode
  num_re=2                            Table 2a: relational embedding modules per side (object, edge)
  r=2                                 Table 2a: reduction ratio of W, U, H
  e0=both|labels|context              Table 2b: E0 = [K1 argmax(O4); O3], K1 argmax(O4) only, O3 only
  rem=1 glem=1 gcem=1                 Table 3: relational embedding, geometric layout, global context on/off
  norm=softmax|sigmoid                Table 3: row normalisation of R
  sim=dot|euclidean                   Table 3: similarity inside R
e.g. --config=configs/linknet_shapes.py:predcls,rem=0,glem=0"""

# Argument key -> (config.model key, converter).
_ARG_KEYS = {
  "rem": ("use_relational_embedding", common.switch),
  "glem": ("use_geometry", common.switch),
  "gcem": ("use_global_context", common.switch),
  "e0": ("edge_input", common.choice("both", "labels", "context")),
  "norm": ("normalization", common.choice("softmax", "sigmoid")),
  "sim": ("similarity", common.choice("dot", "euclidean")),
  "num_re": ("num_relational_modules", common.integer(1)),
  "r": ("reduction", common.integer(1)),
}


def model_config() -> ml_collections.ConfigDict:
  """`config.model` of LinkNet on VG-150 (paper sizes); configs override widths and ablation switches."""
  return ml_collections.ConfigDict(
    {
      "name": "linknet",
      "mode": "predcls",  # set to a reference to config.task.mode by `configure`
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
      # K2 = BN -> Linear -> ReLU -> Dropout as the reimplementation; the paper's eq. (13) names only the linear
      # map (geometry_batch_norm=False, geometry_relu=False, geometry_dropout=0.0 for that).
      "geometry_relu": True,
      "geometry_dropout": 0.1,
      # The Faster R-CNN run whose weights start the model (its best checkpoint, else its latest): the VGG of
      # PredCls / SGCls, the frozen detector of SGDet. Empty: ImageNet weights through backbone_init instead.
      "detector_run": "",
      "detector": faster_rcnn.model_config(),  # SGDet: the detector's keys, as the detector run was trained
      "sgdet_pairs": 256,  # SGDet training pairs per image among overlapping detections, <= 1/4 annotated
      "sgdet_fg_fraction": 0.25,
    }
  )


def parse_arg(arg: str | None) -> dict[str, Any]:
  """Parses a config argument (VARIANT_ARG_HELP) into {'mode': ..., config.model key: value}."""
  parsed = common.parse_arg(
    arg, words={"mode": MODES}, keys={k: c for k, (_, c) in _ARG_KEYS.items()}, usage=VARIANT_ARG_HELP
  )
  return {(_ARG_KEYS[key][0] if key in _ARG_KEYS else key): value for key, value in parsed.items()}


def configure(config: ml_collections.ConfigDict, arg: str | None = None, mode: str = "predcls") -> None:
  """Sets `config.model` (LinkNet defaults) and `config.task` (scene_graph), then applies a variant argument.
  `config.model.mode` is a reference to `config.task.mode`; the best checkpoint follows the task's R@50."""
  config.model = model_config()
  config.task = default_task_config()
  parsed = parse_arg(arg)
  config.task.mode = parsed.pop("mode", mode)
  config.model.mode = config.task.get_ref("mode")
  config.model.update(parsed)
