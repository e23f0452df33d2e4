"""The SSGRL head (Chen et al., ICCV 2019): semantic decoupling -> gated graph propagation -> per-class classifiers.

Full model (the default flags), for a (B, H, W, N) backbone map, (C, d_s) word vectors and a (C, C) adjacency:
  h^0_c = f_c                               semantic decoupling (eqs. 3-7)
  h^T   = GGNN(h^0, A), T steps             (eqs. 8-9)
  o_c   = tanh(Linear 2N->N ([h^T_c, h^0_c]))  final state first, as in the official code (eq. 10)
  s_c   = w_c . o_c + b_c                   C classifiers with unshared weights (C, N) and biases (C)

Ablations of the paper's Table 5 (COCO mAP), and the flags that give them:
  Ours w/o SD          use_semantic_decoupling=False: every node starts from the globally average-pooled
                       feature f (no word vectors at all); the rest is unchanged. 80.9
  Ours w/o SD-concat   use_semantic_decoupling=False, concat_word_vectors=True: node c starts from
                       Linear (N+d_s)->N ([f, x_c]) (Sec. 4.3.1: f and x_c concatenated and "mapped to a 2,048
                       feature vector"; the paper names no activation, so none is used). It is a node-initialisation
                       ablation, not a change of the output function f_o. 79.6
  Ours w/o SI          use_interaction=False: no graph propagation and no f_o; classifier c reads f_c directly
                       (Sec. 4.3.2). 82.2
  concat_initial_state=False is not in the paper: o_c = tanh(Linear N->N (h^T_c)), to measure what the skip
  connection of eq. 10 adds.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgraphs.models.heads.gated_graph import GatedGraphPropagation
from jaxgraphs.models.heads.semantic_decoupling import SemanticDecoupling
from jaxgraphs.models.layers.init import TorchLinear, torch_uniform


class PerClassClassifier(nn.Module):
  """C linear classifiers with unshared weights: logit_c = w_c . x_c + b_c, PyTorch-default init (official code)."""

  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, nodes):
    """(B, C, D) node features -> (B, C) float32 logits."""
    _, num_classes, width = nodes.shape
    kernel = self.param("kernel", torch_uniform(width), (num_classes, width), self.param_dtype)
    bias = self.param("bias", torch_uniform(width), (num_classes,), self.param_dtype)
    return jnp.einsum("bcd,cd->bc", nodes, kernel.astype(nodes.dtype)).astype(jnp.float32) + bias


class SSGRLHead(nn.Module):
  """Semantic-specific graph representation head: feature map -> per-class logits (and attention maps)."""

  joint_dim: int = 1024  # d1 of the semantic decoupling.
  attention_hidden_dim: int = 1024  # d2 of the semantic decoupling.
  time_steps: int = 3
  use_semantic_decoupling: bool = True
  concat_word_vectors: bool = False  # Only without SD: 'Ours w/o SD-concat'.
  use_interaction: bool = True
  concat_initial_state: bool = True
  shared_reset_gate_bug: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feature_map, word_vectors, adjacency, train: bool = False):
    """Returns {'logits' (B, C), 'class_features' h^0 (B, C, N)} plus 'attention' (B, C, H, W) when SD is on."""
    if self.concat_word_vectors and self.use_semantic_decoupling:
      raise ValueError(
        "SSGRLHead: concat_word_vectors=True is the 'w/o SD-concat' ablation and needs use_semantic_decoupling=False"
      )
    num_classes = word_vectors.shape[0]
    if adjacency.shape != (num_classes, num_classes):
      raise ValueError(f"SSGRLHead: adjacency has shape {adjacency.shape} but there are {num_classes} word vectors")
    linear = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    outputs = {}
    if self.use_semantic_decoupling:
      initial, outputs["attention"] = SemanticDecoupling(
        self.joint_dim, self.attention_hidden_dim, name="semantic_decoupling", **linear
      )(feature_map, word_vectors)
    else:
      initial = self._pooled_nodes(feature_map, word_vectors)
    outputs["class_features"] = initial

    if self.use_interaction:
      final = GatedGraphPropagation(self.time_steps, self.shared_reset_gate_bug, name="graph_propagation", **linear)(
        initial, adjacency
      )
      width = initial.shape[-1]
      if self.concat_initial_state:
        output_in, output_width = jnp.concatenate([final, initial], axis=-1), 2 * width
      else:
        output_in, output_width = final, width
      nodes = jnp.tanh(TorchLinear(output_width, width, name="output", **linear)(output_in))
    else:
      nodes = initial
    outputs["logits"] = PerClassClassifier(self.param_dtype, name="classifier")(nodes)
    return outputs

  def _pooled_nodes(self, feature_map, word_vectors):
    """Node states of the w/o SD ablations: the average-pooled feature, optionally fused with x_c."""
    batch, channels = feature_map.shape[0], feature_map.shape[-1]
    num_classes, word_dim = word_vectors.shape
    pooled = jnp.mean(feature_map.astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
    nodes = jnp.broadcast_to(pooled[:, None, :], (batch, num_classes, channels))
    if not self.concat_word_vectors:
      return nodes
    words = jnp.broadcast_to(
      jax.lax.stop_gradient(word_vectors).astype(self.dtype)[None], (batch, num_classes, word_dim)
    )
    fuse = TorchLinear(channels + word_dim, channels, name="node_init", dtype=self.dtype, param_dtype=self.param_dtype)
    return fuse(jnp.concatenate([nodes, words], axis=-1))
