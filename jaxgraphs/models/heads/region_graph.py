"""RGNet's region composition graph (Sec. 3.2, eq. 1-3) over the H x W regions of a feature map.

Nodes are the N = H*W feature vectors X (N, d'). Eq. 1-2: S = row_softmax(phi(X) theta(X)^T)
with phi(x) = A x, theta(x) = B x and no 1/sqrt(d) scale. Eq. 3: Z = S X W, stacked three
times with a ReLU after each layer.

Whether S is rebuilt at every layer is not stated. The paper defines one S from the FCN
features X ("the normalized matrix S is taken as the adjacent matrix"), eq. 3 has only W per
layer, and [47] (Wang & Gupta), which it follows, stacks graph convolutions on one similarity
graph. Default: one S from the module input shared by all layers (layer l computes
Z_l = ReLU(S Z_{l-1} W_l)); `similarity_per_layer=True` gives every layer its own A, B applied
to that layer's input instead.

Batch norm (`batch_norm=True`): Sec. 3.3 puts batch norm "before each weight layer", so phi, theta and every W
get their own BN on their input: S = row_softmax(phi(BN_a(X)) theta(BN_b(X))^T), Z = ReLU(BN_l(S Z_{l-1}) W_l).
BN sits directly in front of W, after the propagation; in inference mode this equals S BN_l(Z_{l-1}) W_l since
S's rows sum to 1. Batch statistics are over every region of the batch, padded ones included, as in DenseASPP.

Implementation (see graph_attention), default 'auto': 'explicit' is the cheapest and fastest at the
paper's 37 x 37 map, where N (1369) is about d' (1280) and the shared S costs less than one (N, d')
activation; 'blocked' needs less memory from about 75 x 75 regions on (benchmarks/graph_memory.py:
forward + backward temporaries of the 3-layer graph 1.3x lower at 75^2, 3.3x at 128^2, where explicit
no longer fits this 2-core machine's 23 GiB at batch 4) but runs about 13% slower, since it recomputes
the logits in the backward pass. 'auto' takes explicit while one image's S fits 64 MiB (up to 64 x 64
regions in fp32) and blocked beyond. 'fused' (XLA attention) never wins for d' = 1280 in jax 0.10.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgraphs.models.layers.batch_norm import BatchNorm
from jaxgraphs.models.layers.graph_attention import graph_propagate

Dtype = Any


class RegionGraph(nn.Module):
  """Graph convolutions Z = ReLU(S X W) over the regions of an NHWC map; returns (B, H, W, d') and the S list."""

  num_layers: int = 3
  embed_features: int | None = None  # width of phi, theta; None keeps d' as the paper
  similarity_per_layer: bool = False
  scale: float = 1.0
  batch_norm: bool = False  # BN before phi, theta and each W (Sec. 3.3)
  bn_momentum: float = 0.1
  implementation: str = "auto"
  block_size: int = 512
  attention_backend: str | None = None
  kernel_init: Any = nn.initializers.he_normal()  # "the method in [13]" (He et al.) for new layers
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _linear(self, features: int, name: str) -> nn.Dense:
    """A bias-free d -> features map (A, B and W have no bias in eq. 1 and 3)."""
    return nn.Dense(
      features,
      use_bias=False,
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )

  def _propagate(self, queries, keys, values, mask, return_similarity):
    """S values with S from (queries, keys); returns (out, S or None)."""
    result = graph_propagate(
      queries,
      keys,
      values,
      mask,
      scale=self.scale,
      implementation=self.implementation,
      return_similarity=return_similarity,
      block_size=self.block_size,
      attention_backend=self.attention_backend,
    )
    return result if return_similarity else (result, None)

  def _norm(self, x, name: str, train: bool):
    """BN of a weight layer's input when `batch_norm`, else x unchanged."""
    if not self.batch_norm:
      return x
    return BatchNorm(momentum=self.bn_momentum, dtype=self.dtype, param_dtype=self.param_dtype, name=name)(x, train)

  @nn.compact
  def __call__(self, x, mask=None, *, return_similarity: bool = False, train: bool = False):
    """x: (B, H, W, d'); mask: optional bool (B, H, W) of real regions. Returns (features, similarities).

    `similarities` is a list with one (B, N, N) matrix per distinct S (one when S is shared,
    num_layers with similarity_per_layer) if return_similarity, else an empty list.
    """
    if self.num_layers < 1:
      raise ValueError(f"RegionGraph: num_layers must be >= 1; got {self.num_layers}")
    batch, height, width, channels = x.shape
    embed = self.embed_features or channels
    nodes = x.reshape(batch, height * width, channels).astype(self.dtype)
    node_mask = None if mask is None else mask.reshape(batch, height * width)

    similarities = []
    queries = keys = None
    for layer in range(self.num_layers):
      if layer == 0 or self.similarity_per_layer:
        suffix = f"_{layer}" if self.similarity_per_layer else ""
        queries = self._linear(embed, f"phi{suffix}")(self._norm(nodes, f"phi_norm{suffix}", train))
        keys = self._linear(embed, f"theta{suffix}")(self._norm(nodes, f"theta_norm{suffix}", train))
        want_similarity = return_similarity
      else:
        want_similarity = False
      propagated, similarity = self._propagate(queries, keys, nodes, node_mask, want_similarity)
      if similarity is not None:
        similarities.append(similarity)
      propagated = self._norm(propagated, f"weight_{layer}_norm", train)
      nodes = nn.relu(self._linear(channels, f"weight_{layer}")(propagated))
    return nodes.reshape(batch, height, width, channels), similarities
