"""RGNet's head on top of a backbone feature map: [DenseASPP] -> [region graph] -> per-region scores -> LSE.

Variants (paper Table 1), chosen by `variant`:
  'fcn'      classifier directly on the backbone map
  'fcn_a'    + DenseASPP
  'fcn_g'    + region graph
  'fcn_a_g'  + DenseASPP + region graph (RGNet)
  'fcn_c_c'  ASPP and graph "replaced with the same number of convolution layers": the same
             DenseASPP cascade with every dilation set to 1 (no multi-scale context) followed by
             `graph_layers` 1x1 conv + ReLU layers, i.e. graph convolutions with S = identity
             (no region dependencies). Same depth as 'fcn_a_g'.

Tasks, chosen by `task`:
  'classification' (AVA): 1x1 conv to 2 classes, softmax per region (Y in [0, 1]), LSE pooling
                   (eq. 4) -> image-level scores y, whose softmax is eq. 5. `logits` = y.
  'distribution':  the same with `num_bins` (10) rating bins; softmax(logits) is the predicted
                   rating distribution.
  'regression' (AADB): one unbounded output per region, LSE pooled to one score (B, 1).

Batch norm before each weight layer (Sec. 3.3), `batch_norm_before_weights`: a BN on the input of phi, theta, each
graph weight W (RegionGraph.batch_norm), of each of FCN-C-C's 1x1 convs (they stand in for the W's) and of the
classifier, all variants. DenseASPP has its own BNs either way.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgraphs.models.heads.dense_aspp import DenseASPP
from jaxgraphs.models.heads.region_graph import RegionGraph
from jaxgraphs.models.layers.batch_norm import BatchNorm
from jaxgraphs.models.layers.pooling import global_average_pool, lse_pool

Dtype = Any

VARIANTS = ("fcn", "fcn_a", "fcn_g", "fcn_a_g", "fcn_c_c")
TASKS = ("classification", "distribution", "regression")
POOLINGS = ("lse", "mean")


class RGNetHead(nn.Module):
  """Maps a backbone map (B, H, W, d) to a dict with image-level 'logits' and per-region 'region_scores'."""

  variant: str = "fcn_a_g"
  task: str = "classification"
  num_classes: int = 2
  num_bins: int = 10
  pooling: str = "lse"
  lse_r: float = 4.0
  # torchvision's DenseNet applies ReLU after norm5 in forward(), outside `features`.
  input_relu: bool = True
  aspp_rates: Sequence[int] = (3, 6, 12, 18)
  aspp_inter_features: int = 128
  aspp_out_features: int = 64
  aspp_dropout: float = 0.1
  bn_momentum: float = 0.1
  graph_layers: int = 3
  graph_embed_features: int | None = None
  graph_similarity_per_layer: bool = False
  graph_scale: float = 1.0
  batch_norm_before_weights: bool = False
  graph_implementation: str = "auto"
  graph_block_size: int = 512
  kernel_init: Any = nn.initializers.he_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _check_config(self):
    """Raises a ValueError naming the bad field."""
    if self.variant not in VARIANTS:
      raise ValueError(f"RGNetHead.variant={self.variant!r}; expected one of {VARIANTS}")
    if self.task not in TASKS:
      raise ValueError(f"RGNetHead.task={self.task!r}; expected one of {TASKS}")
    if self.pooling not in POOLINGS:
      raise ValueError(f"RGNetHead.pooling={self.pooling!r}; expected one of {POOLINGS}")

  @property
  def num_outputs(self) -> int:
    """Outputs per region: classes, rating bins or one regression score."""
    return {"classification": self.num_classes, "distribution": self.num_bins, "regression": 1}[self.task]

  def _aspp(self, rates: Sequence[int]) -> DenseASPP:
    """DenseASPP with this head's widths and the given dilation rates."""
    return DenseASPP(
      rates=tuple(rates),
      inter_features=self.aspp_inter_features,
      out_features=self.aspp_out_features,
      dropout_rate=self.aspp_dropout,
      bn_momentum=self.bn_momentum,
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="aspp",
    )

  def _norm(self, x, name: str, train: bool):
    """BN of a weight layer's input when `batch_norm_before_weights`, else x unchanged."""
    if not self.batch_norm_before_weights:
      return x
    return BatchNorm(momentum=self.bn_momentum, dtype=self.dtype, param_dtype=self.param_dtype, name=name)(x, train)

  def _plain_convs(self, x, train: bool):
    """FCN-C-C's stand-in for the graph: 1x1 conv + ReLU layers (graph convolutions with S = I)."""
    for layer in range(self.graph_layers):
      x = self._norm(x, f"plain_conv_{layer}_norm", train)
      conv = nn.Dense(
        x.shape[-1],
        use_bias=False,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f"plain_conv_{layer}",
      )
      x = nn.relu(conv(x))
    return x

  def _pool(self, region_values, mask):
    """Aggregates region values (B, H, W, K) into image-level values (B, K)."""
    if self.pooling == "lse":
      return lse_pool(region_values, self.lse_r, mask)
    return global_average_pool(region_values, mask)

  @nn.compact
  def __call__(self, features, mask=None, *, return_similarity: bool = False, train: bool = False):
    """features: backbone map (B, H, W, d); mask: optional bool (B, H, W) of real regions.

    Returns {'logits' (B, K), 'region_logits' and 'region_scores' (B, H, W, K),
    'features_fcn', 'features_aspp', 'features_graph' (maps, for RGNet's Fig. 6; absent
    when the stage is not in the variant), 'similarities' (list of (B, N, N); explicit graph
    and return_similarity only)}.
    """
    self._check_config()
    x = features.astype(self.dtype)
    if self.input_relu:
      x = nn.relu(x)
    outputs = {"features_fcn": x}

    if self.variant in ("fcn_a", "fcn_a_g"):
      x = self._aspp(self.aspp_rates)(x, train=train)
      outputs["features_aspp"] = x
    elif self.variant == "fcn_c_c":
      x = self._aspp((1,) * len(self.aspp_rates))(x, train=train)
      outputs["features_aspp"] = x

    if self.variant in ("fcn_g", "fcn_a_g"):
      graph = RegionGraph(
        num_layers=self.graph_layers,
        embed_features=self.graph_embed_features,
        similarity_per_layer=self.graph_similarity_per_layer,
        scale=self.graph_scale,
        batch_norm=self.batch_norm_before_weights,
        bn_momentum=self.bn_momentum,
        implementation=self.graph_implementation,
        block_size=self.graph_block_size,
        kernel_init=self.kernel_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name="region_graph",
      )
      x, similarities = graph(x, mask, return_similarity=return_similarity, train=train)
      outputs["features_graph"] = x
      if return_similarity:
        outputs["similarities"] = similarities
    elif self.variant == "fcn_c_c":
      x = self._plain_convs(x, train)
      outputs["features_graph"] = x

    classifier = nn.Conv(
      self.num_outputs,
      (1, 1),
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="classifier",
    )
    region_logits = classifier(self._norm(x, "classifier_norm", train)).astype(jnp.float32)
    if self.task == "regression":
      region_scores = region_logits
    else:
      region_scores = jax.nn.softmax(region_logits, axis=-1)
    outputs["region_logits"] = region_logits
    outputs["region_scores"] = region_scores
    outputs["logits"] = self._pool(region_scores, mask)
    return outputs
