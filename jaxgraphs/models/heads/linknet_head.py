"""LinkNet's relational embedding (eqs. 1-6), geometric layout encoding (eq. 17) and relation classifier (eqs. 10-14).

Names follow the paper: O0 = [f_RoI; K0 l; c] per object, object-relational embedding modules map it to
O3 (context) and O4 (object logits); E0 = [K1 argmax(O4); O3] goes through the edge-relational embedding
modules to E1 = [subject half; object half]; a pair (i, j) gets G0 = E1_s[i] * E1_o[j] * F_ij (F: union-box
features), G1 = [G0; K2(b_o|s)] and predicate logits G2 = fc4(G1).

A relational embedding module (the third-party LinkNet reimplementation on neural-motifs, `RelationalEmbedding`):
  R = row_softmax(W(O) U(O)^T),  O1 = O + fc0(R H(O)),  O2 = fc1(O1),
with W, U, H: d -> d // r (with bias, as torch.nn.Linear) and no nonlinearity. R is the shared
`graph_propagate` op (`GraphAttention` with W = query, U = key, H = value); its normalisation and similarity
are the Table 3 ablations. With `use_relations=False` (Table 3 without REM) the module is O2 = fc1(O).

K2 (eq. 13): the paper calls it "a parameter matrix" that embeds b_o|s into 128 dimensions, i.e. a linear map.
The reimplementation wraps it as BatchNorm(4) -> Linear(4, 128) -> ReLU -> Dropout(0.1), which is the default
here; `geometry_batch_norm=False`, `geometry_relu=False` and `geometry_dropout=0` together give the paper's
plain linear K2.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgraphs.models.layers.graph_attention import GraphAttention
from jaxgraphs.models.layers.init import TorchLinear

# torch.nn.Linear's default weight init, U(+-1/sqrt(fan_in)), for the projections inside GraphAttention.
TORCH_LINEAR_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
EDGE_INPUTS = ("both", "labels", "context")


def layout_encoding(subject_boxes: jax.Array, object_boxes: jax.Array) -> jax.Array:
  """b_o|s of eq. (17) for x1, y1, x2, y2 pixel boxes: ((x_o - x_s) / w_s, (y_o - y_s) / h_s, log w_o / w_s,
  log h_o / h_s), with centres and sizes as neural-motifs' `center_size` computes them (w = x2 - x1 + 1)."""

  def centre_size(boxes):
    size = boxes[..., 2:] - boxes[..., :2] + 1.0
    return boxes[..., :2] + 0.5 * size, size

  subject_centre, subject_size = centre_size(subject_boxes.astype(jnp.float32))
  object_centre, object_size = centre_size(object_boxes.astype(jnp.float32))
  return jnp.concatenate(
    [(object_centre - subject_centre) / subject_size, jnp.log(object_size / subject_size)], axis=-1
  )


class RelationalEmbedding(nn.Module):
  """One relational embedding module; returns (O1, O2, R) with R (B, N, N) or None (not materialised)."""

  out_features: int
  reduction: int = 2
  use_relations: bool = True
  normalization: str = "softmax"
  similarity: str = "dot"
  implementation: str = "explicit"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None, train: bool = False):
    """x (B, N, d) object features, mask (B, N) real objects."""
    del train
    features = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    similarity_matrix = None
    o1 = x
    if self.use_relations:
      inner = max(1, features // self.reduction)
      explicit = self.implementation == "explicit"
      attention = GraphAttention(
        qk_features=inner,
        value_features=inner,
        use_bias=True,
        normalization=self.normalization,
        similarity=self.similarity,
        implementation=self.implementation,
        kernel_init=TORCH_LINEAR_INIT,
        name="attention",
        **kw,
      )
      attended = attention(x, mask, return_similarity=explicit)
      if explicit:
        attended, similarity_matrix = attended
      o1 = x + TorchLinear(inner, features, name="fc0", **kw)(attended)
    o2 = TorchLinear(features, self.out_features, name="fc1", **kw)(o1)
    return o1, o2, similarity_matrix


class RelationalStack(nn.Module):
  """`num_modules` relational embedding modules: hidden width between them, `out_features` at the end.

  Returns (O1 of the last module, its O2, the similarity matrices by module name). With two modules on
  the object side this is eqs. (1)-(6): O3 = O1 of the second module, O4 = its O2.
  """

  hidden_features: int
  out_features: int
  num_modules: int = 2
  prefix: str = "re"
  reduction: int = 2
  use_relations: bool = True
  normalization: str = "softmax"
  similarity: str = "dot"
  implementation: str = "explicit"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None, train: bool = False):
    if self.num_modules < 1:
      raise ValueError(f"LinkNet: the number of relational embedding modules must be >= 1, got {self.num_modules}")
    matrices = {}
    for index in range(self.num_modules):
      last = index == self.num_modules - 1
      module = RelationalEmbedding(
        self.out_features if last else self.hidden_features,
        reduction=self.reduction,
        use_relations=self.use_relations,
        normalization=self.normalization,
        similarity=self.similarity,
        implementation=self.implementation,
        dtype=self.dtype,
        name=f"{self.prefix}{index + 1}",
      )
      o1, x, matrix = module(x, mask, train=train)
      if matrix is not None:
        matrices[module.name] = matrix
    return o1, x, matrices


class LinkNetHead(nn.Module):
  """Object classification and relation classification on per-object and union-box features.

  Inputs (padded, B leading): object_features (B, N, D) = fc7 of the object RoIs; label_distribution
  (B, N, C) the l_i fed to K0; context (B, Dc) or None (GCEM off); mask (B, N) real objects; boxes (B, N, 4)
  x1, y1, x2, y2; pairs (B, P, 2) subject, object; pair_mask (B, P); union_features (B, P, D);
  k1_labels (B, N) the labels fed to K1, or None for argmax(O4) over the non-background classes (class 0
  is the background). Returns 'object_logits' (O4), 'relation_logits' (G2, (B, P, num_predicates + 1)),
  'k1_labels' and 'relational_matrices' (R of every module, by name).
  """

  num_object_classes: int
  num_predicates: int  # without the background; G2 has num_predicates + 1 columns
  embed_dim: int = 200
  hidden_dim: int = 256
  geometry_dim: int = 128
  num_relational_modules: int = 2
  reduction: int = 2
  use_relational_embedding: bool = True
  use_geometry: bool = True
  edge_input: str = "both"
  normalization: str = "softmax"
  similarity: str = "dot"
  graph_implementation: str = "explicit"
  use_tanh: bool = False
  geometry_batch_norm: bool = True
  geometry_bn_momentum: float = 0.999
  geometry_relu: bool = True  # not in the paper's eq. (13); the reimplementation's K2 has it
  geometry_dropout: float = 0.1
  dtype: Any = jnp.float32

  def _stack(self, out_features: int, prefix: str, name: str) -> RelationalStack:
    return RelationalStack(
      self.hidden_dim,
      out_features,
      num_modules=self.num_relational_modules,
      prefix=prefix,
      reduction=self.reduction,
      use_relations=self.use_relational_embedding,
      normalization=self.normalization,
      similarity=self.similarity,
      implementation=self.graph_implementation,
      dtype=self.dtype,
      name=name,
    )

  @nn.compact
  def __call__(
    self,
    object_features,
    label_distribution,
    context,
    mask,
    boxes,
    pairs,
    pair_mask,
    union_features,
    k1_labels=None,
    train: bool = False,
  ):
    if self.edge_input not in EDGE_INPUTS:
      raise ValueError(f"LinkNet: edge_input={self.edge_input!r}; expected one of {EDGE_INPUTS}")
    mask = mask.astype(bool)
    pair_mask = pair_mask.astype(bool)
    pooling_dim = union_features.shape[-1]

    # Object side, eqs. (1)-(6): O0 = [f_RoI; K0 l; c]; K0 l is a linear map of the label distribution.
    k0 = TorchLinear(self.num_object_classes, self.embed_dim, use_bias=False, name="label_embedding", dtype=self.dtype)(
      label_distribution.astype(self.dtype)
    )
    parts = [object_features.astype(self.dtype), k0]
    if context is not None:
      parts.append(jnp.broadcast_to(context[:, None, :], k0.shape[:2] + context.shape[-1:]).astype(self.dtype))
    o3, o4, object_matrices = self._stack(self.num_object_classes, "object_re", "object_context")(
      jnp.concatenate(parts, axis=-1), mask, train=train
    )
    object_logits = o4.astype(jnp.float32)

    # Edge side, eqs. (10)-(11): E0 = [K1 argmax(O4); O3] (Table 2b: either part alone).
    if k1_labels is None:
      k1_labels = jnp.argmax(object_logits[..., 1:], axis=-1) + 1
    parts = []
    if self.edge_input in ("both", "labels"):
      parts.append(
        nn.Embed(self.num_object_classes, self.embed_dim, name="edge_label_embedding", dtype=self.dtype)(k1_labels)
      )
    if self.edge_input in ("both", "context"):
      parts.append(o3.astype(self.dtype))
    _, e1, edge_matrices = self._stack(2 * pooling_dim, "edge_re", "edge_context")(
      jnp.concatenate(parts, axis=-1), mask, train=train
    )
    subject_edges, object_edges = e1[..., :pooling_dim], e1[..., pooling_dim:]

    # Eqs. (12)-(14): G0 = E1_s[i] * E1_o[j] * F_ij, G1 = [G0; K2 b_o|s], G2 = fc4(G1).
    take = jax.vmap(lambda rows, index: rows[index])  # per image: rows[index] for index (P,)
    g0 = take(subject_edges, pairs[..., 0]) * take(object_edges, pairs[..., 1]) * union_features.astype(self.dtype)
    if self.use_tanh:
      g0 = jnp.tanh(g0)
    parts = [g0]
    if self.use_geometry:
      layout = layout_encoding(take(boxes, pairs[..., 0]), take(boxes, pairs[..., 1]))
      # Padded pairs may hold degenerate boxes: keep their (unused) layout finite and out of the statistics.
      layout = jnp.where(pair_mask[..., None], layout, 0.0)
      if self.geometry_batch_norm:
        # A batch without a single real pair (SGDet with no detection) has no statistics: its zeros stand in,
        # rather than 0 / 0 = NaN in the running averages and the gradients.
        statistics_mask = pair_mask | ~jnp.any(pair_mask)
        layout = nn.BatchNorm(
          use_running_average=not train, momentum=self.geometry_bn_momentum, epsilon=1e-5, name="layout_norm"
        )(layout, mask=jnp.broadcast_to(statistics_mask[..., None], layout.shape))
      embedded = TorchLinear(4, self.geometry_dim, name="layout_embedding", dtype=self.dtype)(layout)
      if self.geometry_relu:
        embedded = nn.relu(embedded)
      if self.geometry_dropout:
        embedded = nn.Dropout(self.geometry_dropout)(embedded, deterministic=not train)
      parts.append(embedded)
    classifier = nn.Dense(
      self.num_predicates + 1,
      kernel_init=nn.initializers.glorot_normal(),
      dtype=self.dtype,
      name="predicate_classifier",
    )
    relation_logits = classifier(jnp.concatenate(parts, axis=-1)).astype(jnp.float32)
    return {
      "object_logits": object_logits,
      "relation_logits": relation_logits,
      "k1_labels": k1_labels,
      "relational_matrices": {**object_matrices, **edge_matrices},
    }
