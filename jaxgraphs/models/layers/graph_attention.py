"""The one attention-style graph propagation op shared by RGNet and LinkNet.

Both papers build a dense graph over N nodes from two linear views of the node
features and propagate a third view along it:

  RGNet (eq. 1-3):  S = row_softmax(phi(X) theta(X)^T),  Z = S X W
  LinkNet (eq. 2):  R = row_softmax(W(O) U(O)^T),        R H(O)

`graph_propagate(q, k, v)` computes S v with S = normalise(similarity(q, k)),
row by row. Neither paper scales the logits by 1/sqrt(d), so `scale` is 1.0
unless set.

Implementations (all give the same numbers for the options they support):
- 'explicit': materialises S (B, N, M); supports every option and can return S
  (for pictures such as RGNet's Fig. 6 or LinkNet's Fig. 2).
- 'fused':    `jax.nn.dot_product_attention` with `implementation=attention_backend`
  (None lets JAX choose). In jax 0.10 None means the 'xla' path, which still
  materialises the logits on every platform; 'cudnn' does not, but it needs
  fp16/bf16 and a head dim <= 128 (<= 256 on Hopper), which RGNet's d' = 1280
  exceeds. Softmax only.
- 'blocked':  flash-style online softmax over key blocks (`lax.fori_loop`) and a
  custom VJP that recomputes the probabilities block by block, so neither the
  forward nor the backward pass holds more than (B, N, block_size) logits. This
  is the memory-saving path on CPU and for head dims cuDNN rejects. Softmax only.

Euclidean similarity in 'fused'/'blocked' uses -|q-k|^2 = 2 q.k - |k|^2 - |q|^2:
the |q|^2 term is constant along a row and cancels in the softmax, so it is
dropped and -|k|^2 enters as a per-key bias (exact for softmax, which is why
sigmoid normalisation is 'explicit'-only).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

NORMALIZATIONS = ("softmax", "sigmoid")
SIMILARITIES = ("dot", "euclidean")
IMPLEMENTATIONS = ("explicit", "fused", "blocked")

Dtype = Any


def _large_negative(dtype) -> float:
  """Finite stand-in for -inf on masked logits (as jax.nn.dot_product_attention)."""
  return -0.7 * float(jnp.finfo(dtype).max)


def _check_options(normalization, similarity, implementation, return_similarity):
  """Raises a clear ValueError for an unknown or unsupported option combination."""
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"graph_attention: normalization={normalization!r}; expected one of {NORMALIZATIONS}")
  if similarity not in SIMILARITIES:
    raise ValueError(f"graph_attention: similarity={similarity!r}; expected one of {SIMILARITIES}")
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"graph_attention: implementation={implementation!r}; expected one of {IMPLEMENTATIONS}")
  if implementation != "explicit" and normalization != "softmax":
    raise ValueError(
      f"graph_attention: normalization={normalization!r} needs implementation='explicit'; "
      f"implementation={implementation!r} computes a row softmax only"
    )
  if implementation != "explicit" and return_similarity:
    raise ValueError(
      f"graph_attention: return_similarity=True needs implementation='explicit'; "
      f"implementation={implementation!r} never materialises the N x N matrix"
    )


def _check_shapes(q, k, v, mask):
  """Raises a clear ValueError when q, k, v and mask do not fit together."""
  if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
    raise ValueError(f"graph_attention: q, k, v must be (batch, nodes, features); got {q.shape}, {k.shape}, {v.shape}")
  if q.shape[0] != k.shape[0] or k.shape[0] != v.shape[0]:
    raise ValueError(f"graph_attention: batch sizes differ: q {q.shape}, k {k.shape}, v {v.shape}")
  if q.shape[-1] != k.shape[-1]:
    raise ValueError(f"graph_attention: q and k feature sizes differ: {q.shape[-1]} vs {k.shape[-1]}")
  if k.shape[1] != v.shape[1]:
    raise ValueError(f"graph_attention: k and v node counts differ: {k.shape[1]} vs {v.shape[1]}")
  if mask is not None and mask.shape != k.shape[:2]:
    raise ValueError(f"graph_attention: mask must be (batch, key nodes) = {k.shape[:2]}; got {mask.shape}")


def similarity_logits(q, k, *, similarity: str = "dot", scale: float = 1.0):
  """Pairwise logits scale * sim(q_i, k_j) of shape (B, N, M), computed in at least float32."""
  logits_dtype = jnp.promote_types(q.dtype, jnp.float32)
  q = q.astype(logits_dtype)
  k = k.astype(logits_dtype)
  dots = jnp.einsum("bnd,bmd->bnm", q, k)
  if similarity == "dot":
    return scale * dots
  squared_distance = jnp.sum(q * q, axis=-1)[:, :, None] + jnp.sum(k * k, axis=-1)[:, None, :] - 2.0 * dots
  return -scale * squared_distance


def normalize_rows(logits, mask=None, *, normalization: str = "softmax", sigmoid_row_normalize: bool = False):
  """Turns (B, N, M) logits into edge weights S; masked keys get weight 0."""
  if mask is not None:
    logits = jnp.where(mask[:, None, :], logits, _large_negative(logits.dtype))
  if normalization == "softmax":
    return jax.nn.softmax(logits, axis=-1)
  weights = jax.nn.sigmoid(logits)
  if sigmoid_row_normalize:
    # A row whose keys are all masked sums to 0; it gets zero weights, not NaN.
    row_sum = jnp.sum(weights, axis=-1, keepdims=True)
    weights = weights / jnp.maximum(row_sum, jnp.finfo(weights.dtype).tiny)
  return weights


def _explicit(q, k, v, mask, *, normalization, similarity, scale, sigmoid_row_normalize):
  """Materialises S (B, N, M) and returns (S v, S)."""
  logits = similarity_logits(q, k, similarity=similarity, scale=scale)
  weights = normalize_rows(logits, mask, normalization=normalization, sigmoid_row_normalize=sigmoid_row_normalize)
  out = jnp.einsum("bnm,bmd->bnd", weights, v.astype(weights.dtype))
  return out.astype(v.dtype), weights


def _pad_last(x, size):
  """Zero-pads the feature axis of x to `size` (zeros change no dot product)."""
  return jnp.pad(x, ((0, 0), (0, 0), (0, size - x.shape[-1])))


def _fused(q, k, v, mask, *, similarity, scale, attention_backend):
  """Row-softmax propagation through jax.nn.dot_product_attention (one head)."""
  bias = None
  if similarity == "euclidean":
    key_norm = jnp.sum(jnp.square(k.astype(jnp.float32)), axis=-1)
    bias = (-scale * key_norm)[:, None, None, :]
    scale = 2.0 * scale
  # dot_product_attention wants value.shape == key.shape: zero-pad the narrower side.
  features = max(q.shape[-1], v.shape[-1])
  q, k, v_padded = (_pad_last(t, features) for t in (q, k, v))
  attention_mask = None if mask is None else mask[:, None, None, :]
  out = jax.nn.dot_product_attention(
    q[:, :, None, :],
    k[:, :, None, :],
    v_padded[:, :, None, :],
    bias=None if bias is None else bias.astype(q.dtype),
    mask=attention_mask,
    scale=scale,
    implementation=attention_backend,
  )
  return out[:, :, 0, : v.shape[-1]]


def _block_logits(q, k_block, similarity, scale):
  """Logits of all queries against one key block, dropping the row-constant |q|^2 term."""
  dots = jnp.einsum("bnd,bmd->bnm", q, k_block)
  if similarity == "dot":
    return scale * dots
  return scale * (2.0 * dots - jnp.sum(k_block * k_block, axis=-1)[:, None, :])


def _key_block(k, v, mask, index, block_size):
  """Keys, values and validity of key block `index`, sliced in place (no padded or stacked copies).

  The last block is shifted back to end at the last key; keys it shares with the previous
  block are marked invalid so that every key counts once.
  """
  num_keys = k.shape[1]
  nominal_start = index * block_size
  start = jnp.minimum(nominal_start, num_keys - block_size)
  positions = start + jnp.arange(block_size)
  valid = jax.lax.dynamic_slice_in_dim(mask, start, block_size, axis=1) & (positions >= nominal_start)[None, :]
  k_block = jax.lax.dynamic_slice_in_dim(k, start, block_size, axis=1)
  v_block = jax.lax.dynamic_slice_in_dim(v, start, block_size, axis=1)
  return start, k_block, v_block, valid


def _masked_block_logits(q, k_block, valid, similarity, scale):
  """Block logits with invalid keys pushed to a large negative number."""
  logits = _block_logits(q, k_block, similarity, scale)
  return jnp.where(valid[:, None, :], logits, _large_negative(logits.dtype))


def _num_blocks(num_keys, block_size):
  return -(-num_keys // block_size)


def _blocked_forward(q, k, v, mask, similarity, scale, block_size):
  """Online-softmax loop over key blocks; returns (out, row logsumexp)."""
  b, n = q.shape[:2]

  def step(index, carry):
    running_max, running_sum, acc = carry
    _, k_block, v_block, valid = _key_block(k, v, mask, index, block_size)
    logits = _masked_block_logits(q, k_block, valid, similarity, scale)
    new_max = jnp.maximum(running_max, jnp.max(logits, axis=-1))
    correction = jnp.exp(running_max - new_max)
    probs = jnp.exp(logits - new_max[..., None])
    running_sum = running_sum * correction + jnp.sum(probs, axis=-1)
    acc = acc * correction[..., None] + jnp.einsum("bnm,bmd->bnd", probs, v_block)
    return new_max, running_sum, acc

  init = (
    jnp.full((b, n), -jnp.inf, q.dtype),
    jnp.zeros((b, n), q.dtype),
    jnp.zeros((b, n, v.shape[-1]), q.dtype),
  )
  row_max, row_sum, acc = jax.lax.fori_loop(0, _num_blocks(k.shape[1], block_size), step, init)
  return acc / row_sum[..., None], row_max + jnp.log(row_sum)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _blocked_attention(q, k, v, mask, similarity, scale, block_size):
  """Memory-light row-softmax propagation; inputs in the compute dtype, block_size <= keys."""
  return _blocked_forward(q, k, v, mask, similarity, scale, block_size)[0]


def _blocked_attention_fwd(q, k, v, mask, similarity, scale, block_size):
  """Forward pass keeping only inputs, output and row logsumexp for the backward pass."""
  out, lse = _blocked_forward(q, k, v, mask, similarity, scale, block_size)
  return out, (q, k, v, mask, out, lse)


def _blocked_attention_bwd(similarity, scale, block_size, residuals, d_out):
  """FlashAttention-2 backward: recompute each key block's probabilities from the logsumexp."""
  q, k, v, mask, out, lse = residuals
  # d logits_ij = P_ij (dO_i . v_j - dO_i . O_i)
  d_row = jnp.sum(d_out * out, axis=-1)

  def add_block(total, start, block):
    current = jax.lax.dynamic_slice_in_dim(total, start, block_size, axis=1)
    return jax.lax.dynamic_update_slice_in_dim(total, current + block, start, axis=1)

  def step(index, carry):
    d_q, d_k, d_v = carry
    start, k_block, v_block, valid = _key_block(k, v, mask, index, block_size)
    logits, logits_vjp = jax.vjp(lambda q_, k_: _masked_block_logits(q_, k_, valid, similarity, scale), q, k_block)
    # Invalid keys have probability exactly 0, so the overlap of the last block adds nothing.
    probs = jnp.exp(logits - lse[..., None])
    d_v_block = jnp.einsum("bnm,bnd->bmd", probs, d_out)
    d_probs = jnp.einsum("bnd,bmd->bnm", d_out, v_block)
    d_logits = probs * (d_probs - d_row[..., None])
    d_q_part, d_k_block = logits_vjp(d_logits)
    return d_q + d_q_part, add_block(d_k, start, d_k_block), add_block(d_v, start, d_v_block)

  init = (jnp.zeros_like(q), jnp.zeros_like(k), jnp.zeros_like(v))
  d_q, d_k, d_v = jax.lax.fori_loop(0, _num_blocks(k.shape[1], block_size), step, init)
  return d_q, d_k, d_v, None


_blocked_attention.defvjp(_blocked_attention_fwd, _blocked_attention_bwd)


def _blocked(q, k, v, mask, *, similarity, scale, block_size):
  """Casts to the compute dtype and runs the blocked loop."""
  if block_size < 1:
    raise ValueError(f"graph_attention: block_size must be >= 1; got {block_size}")
  compute_dtype = jnp.promote_types(q.dtype, jnp.float32)
  if mask is None:
    mask = jnp.ones(k.shape[:2], bool)
  out = _blocked_attention(
    q.astype(compute_dtype),
    k.astype(compute_dtype),
    v.astype(compute_dtype),
    mask,
    similarity,
    float(scale),
    min(block_size, k.shape[1]),
  )
  return out.astype(v.dtype)


def graph_propagate(
  q,
  k,
  v,
  mask=None,
  *,
  normalization: str = "softmax",
  similarity: str = "dot",
  scale: float = 1.0,
  implementation: str = "explicit",
  return_similarity: bool = False,
  sigmoid_row_normalize: bool = False,
  block_size: int = 512,
  attention_backend: str | None = None,
):
  """Returns S v (B, N, dv) with S = normalise_rows(scale * sim(q, k)); also S if return_similarity.

  Args:
    q: queries (B, N, dq); k: keys (B, M, dq); v: values (B, M, dv).
    mask: optional bool (B, M), True for real nodes; padded keys get weight 0. A row whose
      keys are all masked averages all values under softmax (as jax.nn.dot_product_attention)
      and is zero under sigmoid: mask such outputs downstream.
    normalization: 'softmax' (row softmax, both papers) or 'sigmoid' (element-wise sigmoid,
      LinkNet Table 3 ablation: no competition along the row; with sigmoid_row_normalize=True
      each row is also divided by its sum).
    similarity: 'dot' (q_i . k_j) or 'euclidean' (-|q_i - k_j|^2).
    scale: multiplies the similarity; 1.0 (no 1/sqrt(d)) as both papers.
    implementation: 'explicit', 'fused' or 'blocked' (see the module docstring).
    return_similarity: also return S (explicit only).
    block_size: key block size of the 'blocked' implementation.
    attention_backend: `implementation` passed to jax.nn.dot_product_attention by 'fused'.
  """
  _check_options(normalization, similarity, implementation, return_similarity)
  _check_shapes(q, k, v, mask)
  if implementation == "explicit":
    out, weights = _explicit(
      q,
      k,
      v,
      mask,
      normalization=normalization,
      similarity=similarity,
      scale=scale,
      sigmoid_row_normalize=sigmoid_row_normalize,
    )
    return (out, weights) if return_similarity else out
  if implementation == "fused":
    return _fused(q, k, v, mask, similarity=similarity, scale=scale, attention_backend=attention_backend)
  return _blocked(q, k, v, mask, similarity=similarity, scale=scale, block_size=block_size)


class GraphAttention(nn.Module):
  """Relational embedding: projects nodes to queries/keys (and values) and propagates with graph_propagate.

  With `value_features=None` the values are the input nodes themselves (RGNet's S X);
  with an int they are a learned projection (LinkNet's R H(O)). Returns (B, N, dv), or
  (out, S) when called with return_similarity=True (explicit only).
  """

  qk_features: int
  value_features: int | None = None
  use_bias: bool = False
  normalization: str = "softmax"
  similarity: str = "dot"
  scale: float = 1.0
  implementation: str = "explicit"
  sigmoid_row_normalize: bool = False
  block_size: int = 512
  attention_backend: str | None = None
  kernel_init: Any = nn.initializers.he_normal()
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _dense(self, features: int, name: str) -> nn.Dense:
    """A node-wise linear map with this module's init and dtypes."""
    return nn.Dense(
      features,
      use_bias=self.use_bias,
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=name,
    )

  @nn.compact
  def __call__(self, x, mask=None, *, return_similarity: bool = False, train: bool = False):
    """Propagates node features x (B, N, d) over their similarity graph."""
    del train  # No train-time behaviour; kept for the common call signature.
    x = x.astype(self.dtype)
    queries = self._dense(self.qk_features, "query")(x)
    keys = self._dense(self.qk_features, "key")(x)
    values = x if self.value_features is None else self._dense(self.value_features, "value")(x)
    return graph_propagate(
      queries,
      keys,
      values,
      mask,
      normalization=self.normalization,
      similarity=self.similarity,
      scale=self.scale,
      implementation=self.implementation,
      return_similarity=return_similarity,
      sigmoid_row_normalize=self.sigmoid_row_normalize,
      block_size=self.block_size,
      attention_backend=self.attention_backend,
    )
