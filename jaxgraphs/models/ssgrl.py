"""SSGRL (Chen et al., ICCV 2019): ResNet -> 2x2 average pool -> semantic decoupling -> GGNN -> per-class classifiers.

The network of the official code: a torchvision-layout ResNet-101 whose layer4 map (18x18 at 576 px) goes through
an extra AvgPool2d(2, stride 2) (-> 9x9x2048) into `SSGRLHead` (heads/ssgrl_head.py, with the Table 5 ablation
flags). The class word vectors (C, d_s) and the label co-occurrence adjacency (C, C) are constants of the module,
computed by the factory `build_ssgrl` (loaded from `config.model.word_vectors`; counted on the train split).

Frozen part (REFERENCE.md): everything before layer4. `frozen_stages` names those stages; the module runs their
batch norm in inference mode and cuts the gradient at their parameters (so XLA never computes the backward pass
through them), and the configs also list them in `config.optimizer.freeze` (`freeze_regexes`) so the optimiser
keeps no state for them.

Word vectors. `config.model.word_vectors` is the .npy written by `python -m jaxgraphs.tools.word_vectors` (GloVe),
or "builtin": a fixed table with no semantics, one random 300-d vector per word drawn from a generator seeded by
the word's SHA-256 (spread 0.4, about GloVe 840B's), a class name getting the mean over its words like the GloVe
path. For builtin_shapes ("red circle", "blue star", ...) it gives classes of one colour or one shape a shared
component, which is all the structure GloVe could add there; on real datasets it is only for tests.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgraphs.models.backbones.common import average_pool_2x2
from jaxgraphs.models.backbones.resnet import STAGES, ResNet
from jaxgraphs.models.heads.ssgrl_head import SSGRLHead

BACKBONE_STAGES = ("stem",) + STAGES
# Parameters of each ResNet stage, relative to the backbone ('stem' is conv1 + bn1).
_STAGE_PATTERNS = {"stem": r"(conv1|bn1)/", **{stage: rf"{stage}_\d+/" for stage in STAGES}}
BUILTIN_WORD_VECTORS = "builtin"
BUILTIN_WORD_SCALE = 0.4


@dataclasses.dataclass(frozen=True, eq=False)
class Constant:
  """A fixed numpy array held as a Flax module attribute: hashed and compared by content."""

  value: np.ndarray

  def __hash__(self):
    digest = hashlib.sha1(np.ascontiguousarray(self.value).tobytes()).hexdigest()
    return hash((self.value.shape, str(self.value.dtype), digest))

  def __eq__(self, other):
    return (isinstance(other, Constant) and self.value.shape == other.value.shape
            and np.array_equal(self.value, other.value))


def _check_stages(stages: Sequence[str]) -> tuple[str, ...]:
  unknown = sorted(set(stages) - set(BACKBONE_STAGES))
  if unknown:
    raise ValueError(f"config.model.frozen_stages: unknown stages {unknown}; valid: {', '.join(BACKBONE_STAGES)}")
  return tuple(stages)


def freeze_regexes(stages: Sequence[str], prefix: str = "backbone/") -> tuple[str, ...]:
  """`config.optimizer.freeze` patterns for the parameters of the given ResNet stages."""
  return tuple(f"^{prefix}{_STAGE_PATTERNS[stage]}" for stage in _check_stages(stages))


def _stop_gradient_at(stages: tuple[str, ...], variables):
  """The backbone's {'params': ...} with the gradient cut at the parameters of `stages`."""
  frozen = re.compile("^params/(" + "|".join(_STAGE_PATTERNS[s] for s in stages) + ")")

  def cut(path, leaf):
    name = "/".join(str(getattr(key, "key", key)) for key in path)
    return jax.lax.stop_gradient(leaf) if frozen.search(name) else leaf

  return jax.tree_util.tree_map_with_path(cut, variables)


class SSGRL(nn.Module):
  """ResNet feature map -> optional 2x2 average pool -> SSGRL head; returns 'logits' and (with SD) 'attention'."""

  word_vectors: Constant  # (C, d_s) float32
  adjacency: Constant  # (C, C) float32, A[i, j] = P(j | i) on the training labels
  depth: int = 101
  backbone_kwargs: dict[str, Any] | None = None  # e.g. {'width': 8, 'output_stride': 16, 'remat': True}
  frozen_stages: tuple[str, ...] = ()  # backbone stages with inference-mode BN and no gradient
  feature_pool: int = 2  # window and stride of the average pool after layer4; 1 = none
  joint_dim: int = 1024
  attention_hidden_dim: int = 1024
  time_steps: int = 3
  use_semantic_decoupling: bool = True
  use_interaction: bool = True
  concat_word_vectors: bool = False
  concat_initial_state: bool = True
  shared_reset_gate_bug: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, train: bool = False):
    """(B, H, W, 3) normalised images -> {'logits' (B, C) float32, 'attention' (B, C, h, w) float32}."""
    feature_map = self._backbone()(images.astype(self.dtype), train=train)["layer4"]
    if self.feature_pool == 2:
      feature_map = average_pool_2x2(feature_map)
    elif self.feature_pool != 1:
      feature_map = nn.avg_pool(feature_map, (self.feature_pool,) * 2, strides=(self.feature_pool,) * 2)
    head = SSGRLHead(
        joint_dim=self.joint_dim, attention_hidden_dim=self.attention_hidden_dim, time_steps=self.time_steps,
        use_semantic_decoupling=self.use_semantic_decoupling, concat_word_vectors=self.concat_word_vectors,
        use_interaction=self.use_interaction, concat_initial_state=self.concat_initial_state,
        shared_reset_gate_bug=self.shared_reset_gate_bug, dtype=self.dtype, name="head")
    outputs = head(feature_map, jnp.asarray(self.word_vectors.value), jnp.asarray(self.adjacency.value), train=train)
    # h^0 (B, C, N) stays inside: nothing downstream reads it and it would be gathered to the host at evaluation.
    return {key: value for key, value in outputs.items() if key != "class_features"}

  def _backbone(self) -> nn.Module:
    """The ResNet, its frozen stages cut from the gradient (parameter names stay backbone/...)."""
    kwargs = dict(self.backbone_kwargs or {})
    if "frozen_bn" in kwargs:
      raise ValueError("config.model.backbone_kwargs.frozen_bn: SSGRL sets it from config.model.frozen_stages")
    stages = _check_stages(self.frozen_stages)
    cls = ResNet
    if stages:
      # Mapping the variables of an initialised module only: at init the parameters do not exist yet.
      cls = nn.map_variables(ResNet, "params", trans_in_fn=functools.partial(_stop_gradient_at, stages),
                             init=self.is_initializing())
    return cls(depth=self.depth, frozen_bn=stages or False, dtype=self.dtype, name="backbone", **kwargs)


# ---- configuration -----------------------------------------------------------------------------------
# The Table 5 rows (COCO mAP in the paper) as `config.model` overrides; 'baseline' is its ResNet-101 row (the
# last layer replaced by a 2048-to-C linear layer on the average-pooled layer4 map).
VARIANTS = {
    "full": {},  # Ours: 83.8
    "baseline": {"name": "multilabel_classifier"},  # ResNet-101: 80.3
    "without_sd": {"use_semantic_decoupling": False},  # Ours w/o SD: 80.9
    "without_sd_concat": {"use_semantic_decoupling": False, "concat_word_vectors": True},  # w/o SD-concat: 79.6
    "without_si": {"use_interaction": False},  # Ours w/o SI: 82.2
}


def model_config(**overrides) -> dict[str, Any]:
  """The `config.model` keys of SSGRL with the paper's values (ResNet-101, frozen up to layer3, T=3)."""
  keys = {
      "name": "ssgrl",
      "backbone": "resnet101",
      "word_vectors": "",  # .npy from `python -m jaxgraphs.tools.word_vectors`, or 'builtin'
      "word_dim": 300,
      "adjacency_cache_dir": "",  # where the train-split co-occurrence counts are cached; '': beside the dataset
      "frozen_stages": ("stem", "layer1", "layer2", "layer3"),
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


def apply_variant(config, variant: str) -> None:
  """Sets `config.model` for one row of Table 5 ('full', 'baseline', 'without_sd', 'without_sd_concat',
  'without_si'); the baseline keeps the backbone and its frozen stages so the rows differ only in the head."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown SSGRL variant {variant!r}; choose one of {', '.join(VARIANTS)}")
  for key, value in VARIANTS[variant].items():
    config.model[key] = value
  if variant == "baseline" and config.model.frozen_stages:
    config.model.backbone_kwargs["frozen_bn"] = tuple(config.model.frozen_stages)


def paper_config(source: str, train_split: str, eval_split: str, num_train: int, word_vectors: str,
                 variant: str = "full", epochs: int = 20, batch_size: int = 4, log_every_steps: int = 200,
                 checkpoint_every_steps: int = 2000):
  """The official code's recipe on a real dataset: ResNet-101 with ImageNet weights frozen before layer4, Adam
  1e-5, batch 4, learning rate / 10 when the epoch-mean training loss plateaus, REFERENCE.md's transforms,
  the last checkpoint as the result (no selection on the evaluated split), one evaluation at the end."""
  from jaxgraphs.data import sources
  from jaxgraphs.training.defaults import base_config
  steps_per_epoch = num_train // batch_size
  config = base_config()
  config.data.source = source
  config.data.train_split = train_split
  config.data.eval_split = eval_split
  config.data.pp_train = sources.SSGRL_PP_TRAIN
  config.data.pp_eval = sources.SSGRL_PP_EVAL
  config.batch_size = batch_size
  config.total_steps = steps_per_epoch * epochs
  config.log_every_steps = log_every_steps
  config.eval_every_steps = 0
  config.model.update(model_config(word_vectors=word_vectors))
  # torchvision's ImageNet classifier is not part of the backbone.
  config.model.dont_load = (r"params/backbone/fc/.*",)
  apply_variant(config, variant)
  # Initialising from another dataset's run (Table 2 "pre"): every parameter but the per-class classifiers.
  config.init_from.dont_load = (r"params/head/classifier/.*", r"params/classifier/.*")
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-5
  config.optimizer.freeze = freeze_regexes(config.model.frozen_stages)
  config.optimizer.plateau.enabled = True
  config.optimizer.plateau.factor = 0.1
  config.optimizer.plateau.accumulation_size = steps_per_epoch  # compare epoch-mean training losses
  config.optimizer.plateau.patience = 1
  config.checkpoint.every_steps = checkpoint_every_steps
  config.checkpoint.best_metric = ""
  return config


# ---- constants ---------------------------------------------------------------------------------------
def _word_vector(word: str, dim: int) -> np.ndarray:
  seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
  return np.random.default_rng(seed).normal(0.0, BUILTIN_WORD_SCALE, dim).astype(np.float32)


def builtin_word_vectors(class_names: Sequence[str], dim: int = 300) -> np.ndarray:
  """(C, dim) float32: per class the mean of fixed random vectors, one per word, each seeded by its word."""
  from jaxgraphs.tools.word_vectors import class_words
  rows = []
  for name in class_names:
    words = class_words(name)
    if not words:
      raise ValueError(f"class name {name!r} has no words for the builtin word vectors")
    rows.append(np.mean([_word_vector(word, dim) for word in words], axis=0))
  return np.stack(rows).astype(np.float32)


def class_word_vectors(cfg, data_info) -> np.ndarray:
  """`config.model.word_vectors` ('builtin' or a .npy path) as a (C, word_dim) float32 array."""
  from jaxgraphs.tools.word_vectors import load_word_vectors
  source, dim = cfg.word_vectors, int(cfg.word_dim)
  if not source:
    raise ValueError(f"config.model.word_vectors is empty; give the .npy made by `python -m "
                     f"jaxgraphs.tools.word_vectors --dataset={data_info.tfds_name} ...` or '{BUILTIN_WORD_VECTORS}'")
  if source == BUILTIN_WORD_VECTORS:
    return builtin_word_vectors(data_info.class_names, dim)
  try:
    return load_word_vectors(os.path.expanduser(source), data_info.num_classes, dim, data_info.class_names,
                             data_info.tfds_name)
  except (FileNotFoundError, ValueError) as error:
    raise ValueError(f"config.model.word_vectors: {error}") from None


# Per dataset family, the label feature whose classes are the training positives (VOC: difficult-only classes
# are never positive, whichever config.data.voc_difficult mode).
_POSITIVE_LABEL_KEYS = {"coco": "objects/label", "voc": "labels_no_difficult"}


def train_adjacency(config, data_info) -> np.ndarray:
  """The co-occurrence adjacency of the train split, counted once and cached beside the dataset (or in
  `config.model.adjacency_cache_dir`)."""
  from jaxgraphs.data import label_graph, sources
  sources.get_source(config.data.source).builder(config.data.data_dir, config.data.download)  # prepares generated ones
  label_key = _POSITIVE_LABEL_KEYS.get(data_info.tfds_name.split("/")[0], "labels")
  try:
    adjacency = label_graph.tfds_cooccurrence_adjacency(
        data_info.tfds_name, data_info.train_split, cache_dir=config.model.adjacency_cache_dir or None,
        label_key=label_key, data_dir=config.data.data_dir)
  except AssertionError as error:  # TFDS's "could not find data" of an unprepared dataset (and no cached counts)
    raise ValueError(f"config.data.source: SSGRL counts its label graph on {data_info.tfds_name}:"
                     f"{data_info.train_split}, which is not prepared ({error}); run `python -m "
                     f"jaxgraphs.tools.prepare_dataset --dataset={data_info.tfds_name}` first") from None
  if adjacency.shape != (data_info.num_classes,) * 2:
    raise ValueError(f"{data_info.tfds_name}:{data_info.train_split} label feature {label_key!r} has "
                     f"{len(adjacency)} classes, the source names {data_info.num_classes}")
  return adjacency


def build_ssgrl(config, data_info) -> SSGRL:
  """`config.model` -> SSGRL module with its word vectors and train-split adjacency as constants."""
  from jaxgraphs.models import compute_dtype
  cfg = config.model
  if not cfg.backbone.startswith("resnet") or not cfg.backbone[len("resnet"):].isdigit():
    raise ValueError(f"config.model.backbone={cfg.backbone!r}: SSGRL needs a ResNet (resnet18 ... resnet152)")
  needs_words = cfg.use_semantic_decoupling or cfg.concat_word_vectors
  # Without SD and without concatenation ('w/o SD') the word vectors are never read: no file is needed.
  words = (class_word_vectors(cfg, data_info) if needs_words
           else np.zeros((data_info.num_classes, int(cfg.word_dim)), np.float32))
  return SSGRL(
      word_vectors=Constant(words), adjacency=Constant(train_adjacency(config, data_info)),
      depth=int(cfg.backbone[len("resnet"):]), backbone_kwargs=dict(cfg.backbone_kwargs),
      frozen_stages=tuple(cfg.frozen_stages), feature_pool=int(cfg.feature_pool), joint_dim=int(cfg.joint_dim),
      attention_hidden_dim=int(cfg.attention_hidden_dim), time_steps=int(cfg.time_steps),
      use_semantic_decoupling=bool(cfg.use_semantic_decoupling), use_interaction=bool(cfg.use_interaction),
      concat_word_vectors=bool(cfg.concat_word_vectors), concat_initial_state=bool(cfg.concat_initial_state),
      shared_reset_gate_bug=bool(cfg.shared_reset_gate_bug), dtype=compute_dtype(cfg.dtype))
