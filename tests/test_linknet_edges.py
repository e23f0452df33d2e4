"""LinkNet's head against a plain NumPy implementation of the paper's equations, written from Sec. 3 (not from the
head's code): the object side eqs. (1)-(6), and the edge side the tests elsewhere only check for shapes, eqs. (10)-(14)
with the geometric layout b_o|s of eq. (17) embedded by K2. A wrong pairing of subject and object rows, a swapped
half of E1, a layout taken object-to-subject or a K2 applied in the wrong order all change the relation logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models import linknet
from jaxgraphs.models.heads import linknet_head

NUM_CLASSES, NUM_PREDICATES, WIDTH, CONTEXT, EMBED, HIDDEN, GEOMETRY = 5, 3, 6, 3, 4, 8, 4


def np_softmax(x):
  x = x - x.max(-1, keepdims=True)
  e = np.exp(x)
  return e / e.sum(-1, keepdims=True)


def np_relational_module(params, x, real):
  """One module: R = row_softmax((x W)(x U)^T) over real objects, O1 = x + fc0(R (x H)), O2 = fc1(O1)."""
  attention = params["attention"]

  def linear(p, v):
    return v @ p["kernel"] + p["bias"]

  logits = linear(attention["query"], x) @ linear(attention["key"], x).T
  logits = np.where(real[None, :], logits, -np.inf)  # padded objects are nobody's neighbours
  o1 = x + linear(params["fc0"], np_softmax(logits) @ linear(attention["value"], x))
  return o1, linear(params["fc1"], o1)


def np_stack(params, prefix, x, real):
  """Two modules in sequence (eqs. 1-3 then 4-6): returns the second module's O1 and O2."""
  _, x = np_relational_module(params[f"{prefix}1"], x, real)
  return np_relational_module(params[f"{prefix}2"], x, real)


def np_layout(subject_box, object_box):
  """b_o|s, eq. (17): centre offset in subject sizes and log size ratios (sizes as neural-motifs, x2 - x1 + 1)."""
  ws, hs = subject_box[2] - subject_box[0] + 1, subject_box[3] - subject_box[1] + 1
  wo, ho = object_box[2] - object_box[0] + 1, object_box[3] - object_box[1] + 1
  xs, ys = subject_box[0] + ws / 2, subject_box[1] + hs / 2
  xo, yo = object_box[0] + wo / 2, object_box[1] + ho / 2
  return np.array([(xo - xs) / ws, (yo - ys) / hs, np.log(wo / ws), np.log(ho / hs)])


def np_linknet(params, stats, inputs, *, k2_batch_norm, k2_relu):
  """Object logits O4 (N, C) and relation logits G2 for every real ordered pair (i, j), i != j, of image 0."""
  features = inputs["object_features"][0]
  real = inputs["mask"][0].astype(bool)
  n = features.shape[0]
  # Eq. (1)'s input O0 = [f_RoI; K0 l; c].
  o0 = np.concatenate(
    [
      features,
      inputs["label_distribution"][0] @ params["label_embedding"]["kernel"],
      np.broadcast_to(inputs["context"][0], (n, CONTEXT)),
    ],
    -1,
  )
  o3, o4 = np_stack(params["object_context"], "object_re", o0, real)
  # Eqs. (10)-(11): the row-wise argmax over the object classes (class 0, the background, excluded), one-hot, K1.
  o4_prime = np.eye(NUM_CLASSES)[np.argmax(o4[:, 1:], -1) + 1]
  e0 = np.concatenate([o4_prime @ params["edge_label_embedding"]["embedding"], o3], -1)
  _, e1 = np_stack(params["edge_context"], "edge_re", e0, real)
  subject_half, object_half = e1[:, :WIDTH], e1[:, WIDTH:]
  k2, fc4 = params["layout_embedding"], params["predicate_classifier"]
  logits = {}
  for p, (i, j) in enumerate(inputs["pairs"][0]):
    if i == j or not (real[i] and real[j]):
      continue
    g0 = subject_half[i] * object_half[j] * inputs["union_features"][0, p]  # eq. (12)
    layout = np_layout(inputs["boxes"][0, i], inputs["boxes"][0, j])
    if k2_batch_norm:  # inference: the running statistics
      norm = params["layout_norm"]
      layout = (layout - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * norm["scale"] + norm["bias"]
    geometry = layout @ k2["kernel"] + k2["bias"]
    if k2_relu:
      geometry = np.maximum(geometry, 0)
    g1 = np.concatenate([g0, geometry])  # eq. (13)
    logits[(int(i), int(j))] = g1 @ fc4["kernel"] + fc4["bias"]  # eq. (14)
  return o4, logits


def random_like(tree, rng, scale=0.5):
  return jax.tree.map(lambda a: rng.normal(0, scale, np.shape(a)).astype(np.float32), tree)


@pytest.mark.parametrize(
  "switches",
  [
    # The paper's K2: a plain linear map.
    {"geometry_batch_norm": False, "geometry_relu": False, "geometry_dropout": 0.0},
    # The reimplementation's default K2: BatchNorm -> Linear -> ReLU -> Dropout (inactive at inference).
    {"geometry_batch_norm": True, "geometry_relu": True, "geometry_dropout": 0.1},
  ],
  ids=["paper_k2", "default_k2"],
)
def test_relation_logits_match_a_numpy_implementation_of_the_paper(switches):
  rng = np.random.default_rng(0)
  objects = 4  # the last one is padding
  mask = np.array([[1, 1, 1, 0]], np.float32)
  boxes = np.array([[[0, 0, 10, 10], [20, 5, 40, 30], [5, 30, 15, 60], [0, 0, 0, 0]]], np.float32)
  pairs, pair_mask = linknet.dense_pairs(jnp.asarray(mask))
  inputs = {
    "object_features": rng.normal(size=(1, objects, WIDTH)).astype(np.float32),
    "label_distribution": np_softmax(rng.normal(size=(1, objects, NUM_CLASSES))).astype(np.float32),
    "context": rng.normal(size=(1, CONTEXT)).astype(np.float32),
    "mask": mask,
    "boxes": boxes,
    "pairs": np.asarray(pairs),
    "pair_mask": np.asarray(pair_mask),
    "union_features": rng.normal(size=(1, objects * objects, WIDTH)).astype(np.float32),
  }
  head = linknet_head.LinkNetHead(
    num_object_classes=NUM_CLASSES,
    num_predicates=NUM_PREDICATES,
    embed_dim=EMBED,
    hidden_dim=HIDDEN,
    geometry_dim=GEOMETRY,
    **switches,
  )
  variables = jax.tree.map(np.asarray, head.init(jax.random.key(0), **{k: jnp.asarray(v) for k, v in inputs.items()}))
  # Every parameter, BatchNorm's affine ones and running statistics included, drawn afresh: the initial zero
  # biases, unit scales and (0, 1) statistics would hide terms added in the wrong place.
  params = random_like(variables["params"], rng)
  stats = None
  if switches["geometry_batch_norm"]:
    stats = {"mean": rng.normal(0, 0.5, 4), "var": rng.uniform(0.5, 2.0, 4)}
    variables = {"params": params, "batch_stats": {"layout_norm": {k: v.astype(np.float32) for k, v in stats.items()}}}
  else:
    variables = {"params": params}
  outputs = head.apply(variables, **{k: jnp.asarray(v) for k, v in inputs.items()}, train=False)
  o4, expected = np_linknet(
    params, stats, inputs, k2_batch_norm=switches["geometry_batch_norm"], k2_relu=switches["geometry_relu"]
  )
  real = mask[0].astype(bool)
  np.testing.assert_allclose(np.asarray(outputs["object_logits"][0])[real], o4[real], rtol=1e-4, atol=1e-4)
  relation_logits = np.asarray(outputs["relation_logits"][0])
  assert relation_logits.shape == (objects * objects, NUM_PREDICATES + 1)
  assert len(expected) == 6 and int(np.asarray(pair_mask).sum()) == 6  # 3 real objects: 3 * 2 ordered pairs
  for (i, j), logits in expected.items():
    np.testing.assert_allclose(relation_logits[i * objects + j], logits, rtol=1e-4, atol=1e-4, err_msg=f"{(i, j)}")
  # The pairs are ordered: (i, j) and (j, i) differ (the subject and object halves of E1 and b_o|s are not symmetric).
  assert np.abs(expected[(0, 1)] - expected[(1, 0)]).max() > 1e-2
