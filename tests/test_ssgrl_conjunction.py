"""SSGRL's label graph computes the conjunctions of diagnostic_labels that one class's attention provably cannot.

The inputs are what an ideal backbone gives on diagnostic_labels: a 2 x 2 map, one location per corner slot,
holding a fixed embedding of the object there, of the occluder, or of empty background (no location sees two
objects). Every hidden label is decided by *which pair* of its co-occurring labels is visible
(jaxgraphs/data/builders/diagnostics.py). Without the graph (w/o SI) class c's logit is a softmax-weighted sum
of per-location terms, so of the four images whose two visible objects all co-occur with c (c hidden behind
two of the pairs, absent behind the other two) at most three of the four positive-negative orderings are right:
an AUC of at most 0.75 on them. The full head, trained the same way, orders all of them. (So does w/o SD,
whose GGNN and eq. 10 are nonlinear in the pooled feature: what the pairing needs is a nonlinearity over
several objects, which the gated graph provides and one class's attention followed by a linear classifier
does not.)
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgraphs.data import label_graph
from jaxgraphs.data.builders import diagnostics, shapes
from jaxgraphs.models.heads.ssgrl_head import SSGRLHead

NUM_CLASSES, WIDTH, STEPS = 12, 16, 150
SCENES = [[shapes.category_index(name) for name in scene] for scene in diagnostics.LABEL_SCENES]


def scene_images():
  """Every (scene, hidden object or none, slot order) image as (map (2, 2, WIDTH), multi-hot labels, hidden)."""
  rng = np.random.default_rng(0)
  embeddings = rng.standard_normal((NUM_CLASSES + 2, WIDTH)).astype(np.float32)  # + occluder, + empty slot
  occluder, empty = NUM_CLASSES, NUM_CLASSES + 1
  maps, labels, hidden = [], [], []
  for scene, covered in itertools.product(SCENES, (None, 0, 1, 2)):
    shown = [occluder if k == covered else c for k, c in enumerate(scene)]
    slots = shown + ([occluder] if covered is None else [empty])
    for order in ((0, 1, 2, 3), (3, 2, 1, 0)):  # two slot orders; the head is permutation invariant anyway
      maps.append(embeddings[[slots[k] for k in order]].reshape(2, 2, WIDTH))
      labels.append(np.isin(np.arange(NUM_CLASSES), scene))
      hidden.append(np.arange(NUM_CLASSES) == (scene[covered] if covered is not None else -1))
  return np.stack(maps), np.stack(labels).astype(np.float32), np.stack(hidden)


def pairing_images(labels, hidden):
  """Per class: (images where it is hidden, images without it whose two visible objects both co-occur with it)."""
  visible = [set(np.flatnonzero(row)) for row in labels.astype(bool) & ~hidden]
  groups = []
  for c in range(NUM_CLASSES):
    partners = {x for scene in SCENES if c in scene for x in scene} - {c}
    hard = [i for i, row in enumerate(visible) if not labels[i, c] and len(row) == 2 and row <= partners]
    groups.append((np.flatnonzero(hidden[:, c]), np.asarray(hard)))
  return groups


def paired_auc(logits, labels, hidden):
  """Mean over classes of the AUC of hidden positives against the negatives that need the pairing."""
  aucs = []
  for c, (positive, hard) in enumerate(pairing_images(labels, hidden)):
    pos, neg = logits[positive, c][:, None], logits[hard, c][None, :]
    aucs.append(np.mean((pos > neg) + 0.5 * (pos == neg)))
  return float(np.mean(aucs))


def train(flags):
  """Trains the head on every image for STEPS full-batch Adam steps; returns the logits after training."""
  maps, labels, _ = scene_images()
  adjacency = label_graph.cooccurrence_adjacency(labels)
  words = np.random.default_rng(1).standard_normal((NUM_CLASSES, 8)).astype(np.float32)
  head = SSGRLHead(joint_dim=16, attention_hidden_dim=16, time_steps=3, **flags)
  params = head.init(jax.random.key(0), maps, words, adjacency)
  optimizer = optax.adam(1e-2)

  def loss_fn(params):
    logits = head.apply(params, maps, words, adjacency)["logits"]
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))

  @jax.jit
  def step(params, state):
    grads = jax.grad(loss_fn)(params)
    updates, state = optimizer.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = optimizer.init(params)
  for _ in range(STEPS):
    params, state = step(params, state)
  return np.asarray(head.apply(params, maps, words, adjacency)["logits"])


def test_the_scene_design_leaves_four_images_per_class_that_need_the_pairing():
  maps, labels, hidden = scene_images()
  assert maps.shape == (64, 2, 2, WIDTH) and hidden.sum() == 48
  # Two visible pairs each way, in two slot orders: four hidden positives and four hard negatives per class.
  assert all(len(positive) == len(hard) == 4 for positive, hard in pairing_images(labels, hidden))
  # An oracle that knows the scene orders every pair; a score that ignores the pairing ties them all.
  assert paired_auc(np.where(labels.astype(bool), 1.0, 0.0), labels, hidden) == 1.0
  assert paired_auc(np.zeros_like(labels), labels, hidden) == 0.5


@pytest.mark.parametrize(
  "flags, low, high",
  [
    # Measured (150 full-batch steps, fixed seeds): w/o SI 0.698 (0.646 / 0.688 / 0.667 at 100 / 200 / 400
    # steps, never above its bound of 0.75); the full head 1.0 from 100 steps on.
    (dict(use_interaction=False), 0.0, 0.75),
    ({}, 0.95, 1.0),
  ],
  ids=["without_si", "full"],
)
def test_only_the_graph_orders_hidden_labels_by_the_pair_that_implies_them(flags, low, high):
  maps, labels, hidden = scene_images()
  auc = paired_auc(train(flags), labels, hidden)
  assert low <= auc <= high, auc
