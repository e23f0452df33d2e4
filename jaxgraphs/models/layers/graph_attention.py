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
- 'auto':     'explicit' where it is both possible and affordable, else 'blocked'
  (`resolve_implementation`). Explicit is the faster of the two wherever S fits
  (blocked recomputes the logits in the backward pass), and blocked the one that
  fits where S does not, so 'auto' is never slower than explicit where explicit
  is chosen and never holds an N x N matrix where it is not.
- 'blocked':  FlashAttention-2 style: online softmax over key blocks inside a loop
  over query blocks (`lax.fori_loop`s, not unrolled), and a custom VJP that saves
  only q, k, v, the output and the row logsumexp, then recomputes each (query
  block, key block) tile of probabilities. Neither pass holds more than one
  (B, query block, key block) tile of logits and a few (B, block, d) slices; the
  rest of its temporary memory is the saved output (B, N, dv). This is the
  memory-saving path on CPU and for head dims cuDNN rejects. Softmax only.

Block size of 'blocked' (default 512 for keys and queries): each tile step keeps
about a dozen (B, block, d') slices live (q, k, v, dO, O blocks, the d q, d k, d v
parts and their accumulators), 2.5 MiB each at d' = 1280 and block 512, next to
1 MiB of logits per tile, so the working set grows with the block while the saved
output is fixed. Forward + backward at 75^2 nodes, batch 1, on 2 CPU cores
(benchmarks/graph_memory.py, docs/benchmarks.md): blocks of 128, 256, 384, 512
take 32, 37, 41, 47 MiB of temporaries (explicit: 483 MiB), and 512 is the
fastest of them (1.75 s against 2.0 s for 256 and 384; explicit 1.5 s), as larger
tiles hide each loop iteration's fixed cost behind bigger products; it is also
the largest within 0.1x explicit there (512 keys x 1024 queries: 55 MiB). Blocked stays
slower than explicit when compute bound: it recomputes the logits in the backward
pass, 7 N x N x d' products against explicit's 6.
Blocks are evened out over the nodes (ceil(N / ceil(N / block))), so the last,
shifted-back block repeats only a few rows.

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
IMPLEMENTATIONS = ("explicit", "fused", "blocked", "auto")
# 'auto' keeps 'explicit' while one example's N x M similarity matrix takes at most this many bytes: 64 MiB is
# N = M = 4096 nodes (64 x 64 regions) in fp32, so RGNet's 37 x 37 map stays explicit and 75 x 75 goes blocked.
AUTO_EXPLICIT_MAX_BYTES = 64 * 2**20

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
  if implementation not in ("explicit", "auto") and normalization != "softmax":
    raise ValueError(
      f"graph_attention: normalization={normalization!r} needs implementation='explicit'; "
      f"implementation={implementation!r} computes a row softmax only"
    )
  if implementation not in ("explicit", "auto") and return_similarity:
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


def _even_block_size(num_rows, block_size):
  """A block size <= block_size that splits num_rows into as many blocks as block_size, as evenly as possible.

  ceil(N / ceil(N / block_size)) keeps the number of blocks of block_size but shrinks each block
  so that the shifted last block re-covers at most a few rows (37^2 = 1369 with 512: 3 blocks of
  457 instead of 512 + 512 + a last one repeating 167 rows).
  """
  block_size = min(block_size, num_rows)
  return -(-num_rows // _num_blocks(num_rows, block_size))


def _block_start(num_rows, index, block_size):
  """Start of block `index` and which of its rows are fresh (not in an earlier block).

  The last block is shifted back to end at the last row (no padded copies of the inputs);
  the rows it shares with the previous block are not fresh, so every row counts once.
  """
  nominal_start = index * block_size
  start = jnp.minimum(nominal_start, num_rows - block_size)
  fresh = start + jnp.arange(block_size) >= nominal_start
  return start, fresh


def _rows(x, start, block_size):
  """Rows [start, start + block_size) along axis 1, sliced in place."""
  return jax.lax.dynamic_slice_in_dim(x, start, block_size, axis=1)


def _add_rows(total, start, block):
  """total with `block` added to its rows [start, start + len(block)) (in place inside a loop)."""
  current = _rows(total, start, block.shape[1])
  return jax.lax.dynamic_update_slice_in_dim(total, current + block, start, axis=1)


def _key_block(k, v, mask, index, block_size):
  """Keys, values and validity of key block `index`; repeated keys of the last block are invalid."""
  start, fresh = _block_start(k.shape[1], index, block_size)
  valid = _rows(mask, start, block_size) & fresh[None, :]
  return start, _rows(k, start, block_size), _rows(v, start, block_size), valid


def _masked_block_logits(q, k_block, valid, similarity, scale):
  """Block logits with invalid keys pushed to a large negative number."""
  logits = _block_logits(q, k_block, similarity, scale)
  return jnp.where(valid[:, None, :], logits, _large_negative(logits.dtype))


def _num_blocks(num_keys, block_size):
  """Number of blocks of block_size covering num_keys."""
  return -(-num_keys // block_size)


def _blocked_forward(q, k, v, mask, similarity, scale, block_size, query_block_size):
  """Online softmax over key blocks inside a loop over query blocks; returns (out, row logsumexp).

  Only one (B, query block, key block) tile of logits and one (B, query block, dv) accumulator
  are live at a time; out and the logsumexp are written block by block.
  """
  b, n = q.shape[:2]

  def query_step(q_index, carry):
    out, lse = carry
    q_start, _ = _block_start(n, q_index, query_block_size)
    q_block = _rows(q, q_start, query_block_size)

    def key_step(k_index, state):
      running_max, running_sum, acc = state
      _, k_block, v_block, valid = _key_block(k, v, mask, k_index, block_size)
      logits = _masked_block_logits(q_block, k_block, valid, similarity, scale)
      new_max = jnp.maximum(running_max, jnp.max(logits, axis=-1))
      correction = jnp.exp(running_max - new_max)
      probs = jnp.exp(logits - new_max[..., None])
      running_sum = running_sum * correction + jnp.sum(probs, axis=-1)
      acc = acc * correction[..., None] + jnp.einsum("bnm,bmd->bnd", probs, v_block)
      return new_max, running_sum, acc

    init = (
      jnp.full((b, query_block_size), -jnp.inf, q.dtype),
      jnp.zeros((b, query_block_size), q.dtype),
      jnp.zeros((b, query_block_size, v.shape[-1]), q.dtype),
    )
    row_max, row_sum, acc = jax.lax.fori_loop(0, _num_blocks(k.shape[1], block_size), key_step, init)
    # Repeated rows of the last query block get the same values again, so overwriting is exact.
    out = jax.lax.dynamic_update_slice_in_dim(out, acc / row_sum[..., None], q_start, axis=1)
    lse = jax.lax.dynamic_update_slice_in_dim(lse, row_max + jnp.log(row_sum), q_start, axis=1)
    return out, lse

  init = (jnp.zeros((b, n, v.shape[-1]), q.dtype), jnp.zeros((b, n), q.dtype))
  return jax.lax.fori_loop(0, _num_blocks(n, query_block_size), query_step, init)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def _blocked_attention(q, k, v, mask, similarity, scale, block_size, query_block_size):
  """Memory-light row-softmax propagation; inputs in the compute dtype, block sizes <= node counts."""
  return _blocked_forward(q, k, v, mask, similarity, scale, block_size, query_block_size)[0]


def _blocked_attention_fwd(q, k, v, mask, similarity, scale, block_size, query_block_size):
  """Forward pass keeping only inputs, output and row logsumexp for the backward pass."""
  out, lse = _blocked_forward(q, k, v, mask, similarity, scale, block_size, query_block_size)
  return out, (q, k, v, mask, out, lse)


def _blocked_attention_bwd(similarity, scale, block_size, query_block_size, residuals, d_out):
  """FlashAttention-2 backward: per key block, loop over query blocks recomputing probabilities from the logsumexp.

  d k and d v of a key block accumulate in (B, key block, d) buffers; d q is added into its
  rows in place, so nothing of size (B, N, key block) or a second (B, N, d) is ever live.
  """
  q, k, v, mask, out, lse = residuals
  n = q.shape[1]

  def key_step(k_index, carry):
    d_q, d_k, d_v = carry
    k_start, k_block, v_block, valid = _key_block(k, v, mask, k_index, block_size)

    def query_step(q_index, state):
      d_q, d_k_block, d_v_block = state
      q_start, fresh = _block_start(n, q_index, query_block_size)
      # Repeated query rows of the last block get a zero cotangent, so they add nothing anywhere.
      d_out_block = _rows(d_out, q_start, query_block_size) * fresh[None, :, None]
      # d logits_ij = P_ij (dO_i . v_j - dO_i . O_i). dO_i . O_i is recomputed per block (N dv flops
      # against N M dv for the block products): computed once over all rows, XLA on CPU materialised
      # d_out * out, a (B, N, dv) temporary as large as all the rest of the backward pass.
      d_row_block = jnp.sum(d_out_block * _rows(out, q_start, query_block_size), axis=-1)
      q_block = _rows(q, q_start, query_block_size)
      logits, logits_vjp = jax.vjp(
        lambda q_, k_: _masked_block_logits(q_, k_, valid, similarity, scale), q_block, k_block
      )
      # Invalid keys have probability exactly 0, so the overlap of the last key block adds nothing.
      probs = jnp.exp(logits - _rows(lse, q_start, query_block_size)[..., None])
      d_v_block = d_v_block + jnp.einsum("bnm,bnd->bmd", probs, d_out_block)
      d_probs = jnp.einsum("bnd,bmd->bnm", d_out_block, v_block)
      d_logits = probs * (d_probs - d_row_block[..., None])
      d_q_part, d_k_part = logits_vjp(d_logits)
      return _add_rows(d_q, q_start, d_q_part), d_k_block + d_k_part, d_v_block

    init = (d_q, jnp.zeros_like(k_block), jnp.zeros(v_block.shape, v.dtype))
    d_q, d_k_block, d_v_block = jax.lax.fori_loop(0, _num_blocks(n, query_block_size), query_step, init)
    return d_q, _add_rows(d_k, k_start, d_k_block), _add_rows(d_v, k_start, d_v_block)

  init = (jnp.zeros_like(q), jnp.zeros_like(k), jnp.zeros_like(v))
  d_q, d_k, d_v = jax.lax.fori_loop(0, _num_blocks(k.shape[1], block_size), key_step, init)
  return d_q, d_k, d_v, None


_blocked_attention.defvjp(_blocked_attention_fwd, _blocked_attention_bwd)


def _blocked(q, k, v, mask, *, similarity, scale, block_size, query_block_size):
  """Casts to the compute dtype and runs the blocked loops."""
  query_block_size = block_size if query_block_size is None else query_block_size
  if block_size < 1 or query_block_size < 1:
    raise ValueError(
      f"graph_attention: block sizes must be >= 1; got block_size={block_size}, query_block_size={query_block_size}"
    )
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
    _even_block_size(k.shape[1], block_size),
    _even_block_size(q.shape[1], query_block_size),
  )
  return out.astype(v.dtype)


def resolve_implementation(
  implementation: str,
  num_queries: int,
  num_keys: int,
  dtype,
  *,
  normalization: str = "softmax",
  return_similarity: bool = False,
  explicit_max_bytes: int = AUTO_EXPLICIT_MAX_BYTES,
) -> str:
  """The implementation 'auto' stands for (others are returned as given): 'explicit' when the options need S
  (sigmoid, return_similarity) or one example's (num_queries, num_keys) S fits explicit_max_bytes, else 'blocked'."""
  if implementation != "auto":
    return implementation
  if normalization != "softmax" or return_similarity:
    return "explicit"
  similarity_bytes = num_queries * num_keys * jnp.dtype(dtype).itemsize
  return "explicit" if similarity_bytes <= explicit_max_bytes else "blocked"


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
  query_block_size: int | None = None,
  attention_backend: str | None = None,
  explicit_max_bytes: int = AUTO_EXPLICIT_MAX_BYTES,
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
    implementation: 'explicit', 'fused', 'blocked' or 'auto' (see the module docstring).
    return_similarity: also return S (explicit only).
    block_size: key block size of the 'blocked' implementation (evened out over the keys).
    query_block_size: its query block size; None: block_size.
    attention_backend: `implementation` passed to jax.nn.dot_product_attention by 'fused'.
    explicit_max_bytes: the largest per-example S that 'auto' computes explicitly.
  """
  _check_options(normalization, similarity, implementation, return_similarity)
  _check_shapes(q, k, v, mask)
  implementation = resolve_implementation(
    implementation,
    q.shape[1],
    k.shape[1],
    jnp.result_type(q, k),
    normalization=normalization,
    return_similarity=return_similarity,
    explicit_max_bytes=explicit_max_bytes,
  )
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
  return _blocked(
    q, k, v, mask, similarity=similarity, scale=scale, block_size=block_size, query_block_size=query_block_size
  )


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
  query_block_size: int | None = None
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
      query_block_size=self.query_block_size,
      attention_backend=self.attention_backend,
    )
