"""SSGRL's config keys and Table 5 variants, shared by configs/ssgrl_*.py (the recipes are in those files)."""

from __future__ import annotations

from typing import Any

import ml_collections

from jaxgraphs.configs import common
from jaxgraphs.errors import ConfigError

# The Table 5 rows (COCO mAP in the paper) as `config.model` overrides; 'baseline' is its ResNet-101 row (the
# last layer replaced by a 2048-to-C linear layer on the average-pooled layer4 map).
VARIANTS = {
  "full": {},  # Ours: 83.8
  "baseline": {"name": "multilabel_classifier"},  # ResNet-101: 80.3
  "without_sd": {"use_semantic_decoupling": False},  # Ours w/o SD: 80.9
  "without_sd_concat": {"use_semantic_decoupling": False, "concat_word_vectors": True},  # w/o SD-concat: 79.6
  "without_si": {"use_interaction": False},  # Ours w/o SI: 82.2
}
VARIANT_ARG_HELP = (
  f"get_config(arg): one SSGRL variant (Table 5): {' | '.join(VARIANTS)}; optionally ',flip' to add a random"
  " horizontal flip to the training transforms (the official code has none)"
)


def add_flip(pp: str) -> str:
  """`pp` with a random horizontal flip (flip_lr, p = 0.5) inserted before its normalisation."""
  ops = pp.split("|")
  if "flip_lr" in ops:
    return pp
  if "normalize_imagenet" not in ops:
    raise ValueError(f"add_flip: no normalize_imagenet op in {pp!r}")
  ops.insert(ops.index("normalize_imagenet"), "flip_lr")
  return "|".join(ops)


def model_config(**overrides) -> dict[str, Any]:
  """The `config.model` keys of SSGRL with the paper's values (ResNet-101, frozen up to layer3, T=3)."""
  keys = {
    "name": "ssgrl",
    "backbone": "resnet101",
    "word_vectors": "",  # .npy from `python -m jaxgraphs.tools.word_vectors`, or 'builtin'
    "word_dim": 300,
    "adjacency_cache_dir": "",  # where the train-split co-occurrence counts are cached; '': beside the dataset
    "frozen_stages": ("stem", "layer1", "layer2", "layer3"),
    "feature_key": "layer4",  # the backbone stage the head reads
    "feature_pool": 2,
    "joint_dim": 1024,
    "attention_hidden_dim": 1024,
    "time_steps": 3,
    "use_semantic_decoupling": True,
    "use_interaction": True,
    "concat_word_vectors": False,
    "concat_initial_state": True,
    "shared_reset_gate_bug": False,
  }
  unknown = set(overrides) - set(keys)
  if unknown:
    raise ValueError(f"model_config: unknown SSGRL keys {sorted(unknown)}")
  return {**keys, **overrides}


def apply_arg(config: ml_collections.ConfigDict, arg: str | None) -> str:
  """Sets `config.model` for the Table 5 row named by `arg` ('full' when empty) and returns its name; the
  baseline keeps the backbone and its frozen stages so the rows differ only in the head. The word 'flip'
  adds a horizontal flip to `config.data.pp_train` (set it first)."""
  parsed = common.parse_arg(
    arg, words={"variant": tuple(VARIANTS), "augment": ("flip",)}, keys={}, usage=VARIANT_ARG_HELP
  )
  variant = parsed.get("variant", "full")
  if parsed.get("augment") == "flip":
    if not config.data.get("pp_train"):
      raise ConfigError(f"config argument {arg!r}: 'flip' needs config.data.pp_train set before apply_arg")
    config.data.pp_train = add_flip(config.data.pp_train)
  for key, value in VARIANTS[variant].items():
    config.model[key] = value
  if variant == "baseline" and config.model.frozen_stages:
    config.model.backbone_kwargs["frozen_bn"] = tuple(config.model.frozen_stages)
  return variant
