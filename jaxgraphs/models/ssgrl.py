"""SSGRL (Chen et al., ICCV 2019): ResNet -> 2x2 average pool -> semantic decoupling -> GGNN -> per-class classifiers.

The network of the official code: a torchvision-layout ResNet-101 whose layer4 map (18x18 at 576 px) goes through
an extra AvgPool2d(2, stride 2) (-> 9x9x2048) into `SSGRLHead` (heads/ssgrl_head.py, with the Table 5 ablation
flags). The class word vectors (C, d_s) and the label co-occurrence adjacency A[i, j] = P(j | i) (C, C) are
constants of the module. The factory `build_ssgrl` takes them from the dataset info, where the data layer put
them because `data_requests` asked for them (`config.model.word_vectors`: a GloVe .npy or 'builtin'; the
adjacency is counted on the train split; see jaxgraphs/data/label_priors.py).

Frozen part (as in the official code): everything before layer4. `frozen_stages` names those stages; the module
runs their batch norm in inference mode and cuts the gradient at their parameters (so XLA never computes the backward pass
through them), and the configs also list them in `config.optimizer.freeze` (`freeze_regexes`) so the optimiser
keeps no state for them. More on the official code, and where the project departs from it:
(docs/paper_details.md, SSGRL).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
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


@dataclasses.dataclass(frozen=True, eq=False)
class Constant:
  """A fixed numpy array held as a Flax module attribute: hashed and compared by content."""

  value: np.ndarray

  def __hash__(self):
    digest = hashlib.sha1(np.ascontiguousarray(self.value).tobytes()).hexdigest()
    return hash((self.value.shape, str(self.value.dtype), digest))

  def __eq__(self, other):
    return (
      isinstance(other, Constant) and self.value.shape == other.value.shape and np.array_equal(self.value, other.value)
    )


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


FEATURE_KEYS = ("layer1", "layer2", "layer3", "layer4")


class SSGRL(nn.Module):
  """ResNet feature map -> optional 2x2 average pool -> SSGRL head; returns 'logits' and (with SD) 'attention'."""

  word_vectors: Constant  # (C, d_s) float32
  adjacency: Constant  # (C, C) float32, A[i, j] = P(j | i) on the training labels
  depth: int = 101
  backbone_kwargs: dict[str, Any] | None = None  # e.g. {'width': 8, 'output_stride': 16, 'remat': True}
  frozen_stages: tuple[str, ...] = ()  # backbone stages with inference-mode BN and no gradient
  # The backbone output the head reads; an earlier stage limits each location's receptive field (the
  # diagnostic_labels config reads layer2).
  feature_key: str = "layer4"
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
    feature_map = self._backbone()(images.astype(self.dtype), train=train)[self.feature_key]
    if self.feature_pool == 2:
      feature_map = average_pool_2x2(feature_map)
    elif self.feature_pool != 1:
      feature_map = nn.avg_pool(feature_map, (self.feature_pool,) * 2, strides=(self.feature_pool,) * 2)
    head = SSGRLHead(
      joint_dim=self.joint_dim,
      attention_hidden_dim=self.attention_hidden_dim,
      time_steps=self.time_steps,
      use_semantic_decoupling=self.use_semantic_decoupling,
      concat_word_vectors=self.concat_word_vectors,
      use_interaction=self.use_interaction,
      concat_initial_state=self.concat_initial_state,
      shared_reset_gate_bug=self.shared_reset_gate_bug,
      dtype=self.dtype,
      name="head",
    )
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
      cls = nn.map_variables(
        ResNet, "params", trans_in_fn=functools.partial(_stop_gradient_at, stages), init=self.is_initializing()
      )
    return cls(depth=self.depth, frozen_bn=stages or False, dtype=self.dtype, name="backbone", **kwargs)


# ---- factory -----------------------------------------------------------------------------------------
def data_requests(cfg) -> dict[str, dict[str, Any]]:
  """What SSGRL needs computed from its data (`config.model` -> requests that the data layer's label_priors fills)."""
  requests = {"label_adjacency": {"cache_dir": cfg.adjacency_cache_dir}}
  # Without SD and without concatenation ('w/o SD') the word vectors are never read: no file is needed.
  if cfg.use_semantic_decoupling or cfg.concat_word_vectors:
    requests["word_vectors"] = {
      "source": cfg.word_vectors,
      "dim": int(cfg.word_dim),
      "key": "config.model.word_vectors",
    }
  return requests


def build_ssgrl(cfg, data_info, dtype) -> SSGRL:
  """`config.model` -> SSGRL module with the dataset info's word vectors and adjacency as constants."""
  if not cfg.backbone.startswith("resnet") or not cfg.backbone[len("resnet") :].isdigit():
    raise ValueError(f"config.model.backbone={cfg.backbone!r}: SSGRL needs a ResNet (resnet18 ... resnet152)")
  if data_info.label_adjacency is None:
    raise ValueError("SSGRL needs the dataset info's label_adjacency (ask for it with ssgrl.data_requests)")
  feature_key = cfg.get("feature_key", "layer4")
  if feature_key not in FEATURE_KEYS:
    raise ValueError(f"config.model.feature_key={feature_key!r}: SSGRL reads one of {FEATURE_KEYS}")
  words = data_info.word_vectors
  if words is None:
    words = np.zeros((data_info.num_classes, int(cfg.word_dim)), np.float32)
  return SSGRL(
    word_vectors=Constant(np.asarray(words, np.float32)),
    adjacency=Constant(np.asarray(data_info.label_adjacency, np.float32)),
    depth=int(cfg.backbone[len("resnet") :]),
    backbone_kwargs=dict(cfg.backbone_kwargs),
    frozen_stages=tuple(cfg.frozen_stages),
    feature_key=feature_key,
    feature_pool=int(cfg.feature_pool),
    joint_dim=int(cfg.joint_dim),
    attention_hidden_dim=int(cfg.attention_hidden_dim),
    time_steps=int(cfg.time_steps),
    use_semantic_decoupling=bool(cfg.use_semantic_decoupling),
    use_interaction=bool(cfg.use_interaction),
    concat_word_vectors=bool(cfg.concat_word_vectors),
    concat_initial_state=bool(cfg.concat_initial_state),
    shared_reset_gate_bug=bool(cfg.shared_reset_gate_bug),
    dtype=dtype,
  )
