"""SSGRL's semantic decoupling (Chen et al., ICCV 2019, eqs. 3-6): word-vector-guided attention, one feature per class.

For every location (h, w) and class c (official code's `semantic` module):
  logit[c, hw] = f_a(P(tanh(U f_hw * V x_c)))        U: N->d1, V: d_s->d1 (no bias), P: d1->d2 (+b), f_a: d2->1
  a[c, :]      = softmax over the H*W locations
  f_c          = sum_hw a[c, hw] f_hw                 (the RAW backbone features, not their projections)

Memory: the tanh term is a (B, C, H*W, d1) tensor, e.g. 4 x 80 x 81 x 1024 floats = 106 MB at COCO size in float32
(663 MB for VG-500), kept for the backward pass. P and f_a are both affine with nothing between them, so they are
folded into one d1-vector before they touch that tensor; the official code materialises a second tensor of the same
size for P's output, which this avoids. The folded form is the same function, and autodiff gives P and f_a the same
gradients (their biases shift every logit of a class equally, so the softmax makes those gradients zero).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgraphs.models.layers.init import TorchLinear


class SemanticDecoupling(nn.Module):
  """Class-specific attention pooling of a feature map, guided by class word vectors; returns features and maps."""

  joint_dim: int = 1024  # d1: the low-rank bilinear joint embedding.
  hidden_dim: int = 1024  # d2: output of P, input of f_a.
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feature_map, word_vectors, train: bool = False):
    """(B, H, W, N) features and (C, d_s) word vectors -> class features (B, C, N) and attention (B, C, H, W)."""
    if feature_map.ndim != 4:
      raise ValueError(f"SemanticDecoupling: feature_map must be (B, H, W, N), got shape {feature_map.shape}")
    if word_vectors.ndim != 2:
      raise ValueError(f"SemanticDecoupling: word_vectors must be (C, d_s), got shape {word_vectors.shape}")
    batch, height, width, channels = feature_map.shape
    num_classes, word_dim = word_vectors.shape
    linear = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    image_proj = TorchLinear(channels, self.joint_dim, use_bias=False, name="image_proj", **linear)  # U
    word_proj = TorchLinear(word_dim, self.joint_dim, use_bias=False, name="word_proj", **linear)  # V
    joint_proj = TorchLinear(self.joint_dim, self.hidden_dim, name="joint_proj", **linear)  # P, b
    attention = TorchLinear(self.hidden_dim, 1, name="attention", **linear)  # f_a

    features = feature_map.reshape(batch, height * width, channels).astype(self.dtype)
    image_embedding = image_proj(features)  # (B, HW, d1)
    word_embedding = word_proj(jax.lax.stop_gradient(word_vectors))  # (C, d1)
    joint = jnp.tanh(image_embedding[:, None, :, :] * word_embedding[None, :, None, :])  # (B, C, HW, d1)

    kernel_p, kernel_a = joint_proj.kernel.astype(self.dtype), attention.kernel.astype(self.dtype)
    score_kernel = (kernel_p @ kernel_a)[:, 0]  # (d1,)
    score_bias = (joint_proj.bias.astype(self.dtype) @ kernel_a + attention.bias.astype(self.dtype))[0]
    logits = jnp.einsum("bcpk,k->bcp", joint, score_kernel) + score_bias

    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)  # (B, C, HW)
    class_features = jnp.einsum("bcp,bpn->bcn", weights.astype(self.dtype), features)
    return class_features, weights.reshape(batch, num_classes, height, width)
