"""Plain-NumPy, loop-by-loop transcription of SSGRL's equations (3)-(10), the reference for the Flax head tests.

Variants follow the official code: the message of eq. (8) sums the neighbours' states h_c', and eq. (10)'s
output reads [h^T, h^0] in that order. A linear layer is a dict {'kernel' (in, out), optional 'bias'}, i.e. the
paper's W^T x + b; the tests fill those dicts from the Flax params.
"""

import numpy as np


def linear(layer, x):
  """x @ kernel + bias (bias optional)."""
  y = np.asarray(x, np.float64) @ np.asarray(layer["kernel"], np.float64)
  if "bias" in layer:
    y = y + np.asarray(layer["bias"], np.float64)
  return y


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def semantic_decoupling(feature_map, word_vectors, params):
  """Eqs. (3)-(6), one location and one class at a time -> features (B, C, N), attention (B, C, H, W)."""
  batch, height, width, channels = feature_map.shape
  num_classes = word_vectors.shape[0]
  features = np.zeros((batch, num_classes, channels))
  attention = np.zeros((batch, num_classes, height, width))
  for b in range(batch):
    for c in range(num_classes):
      logits = np.zeros((height, width))
      for h in range(height):
        for w in range(width):
          f_wh = feature_map[b, h, w]
          fused = np.tanh(linear(params["image_proj"], f_wh) * linear(params["word_proj"], word_vectors[c]))
          f_tilde = linear(params["joint_proj"], fused)  # eq. (3): P^T tanh(...) + b
          logits[h, w] = linear(params["attention"], f_tilde)[0]  # eq. (4)
      weights = np.exp(logits - logits.max())
      weights /= weights.sum()  # eq. (5)
      attention[b, c] = weights
      for h in range(height):
        for w in range(width):
          features[b, c] += weights[h, w] * feature_map[b, h, w]  # eq. (6)
  return features, attention


def gated_graph(nodes, adjacency, params, time_steps, shared_reset_gate_bug=False):
  """Eqs. (8)-(9) with h_c' in the message; the bug variant computes the reset gate with U_z."""
  state = np.asarray(nodes, np.float64)
  batch, num_nodes, _ = state.shape
  reset_u = params["update_gate_u"] if shared_reset_gate_bug else params["reset_gate_u"]
  for _ in range(time_steps):
    new_state = np.zeros_like(state)
    for b in range(batch):
      for c in range(num_nodes):
        incoming = sum(adjacency[c, k] * state[b, k] for k in range(num_nodes))
        outgoing = sum(adjacency[k, c] * state[b, k] for k in range(num_nodes))
        message = np.concatenate([incoming, outgoing])
        h = state[b, c]
        z = sigmoid(linear(params["update_gate_w"], message) + linear(params["update_gate_u"], h))
        r = sigmoid(linear(params["reset_gate_w"], message) + linear(reset_u, h))
        candidate = np.tanh(linear(params["candidate_w"], message) + linear(params["candidate_u"], r * h))
        new_state[b, c] = (1 - z) * h + z * candidate
    state = new_state
  return state


def ssgrl_head(
  feature_map,
  word_vectors,
  adjacency,
  params,
  time_steps=3,
  use_semantic_decoupling=True,
  concat_word_vectors=False,
  use_interaction=True,
  concat_initial_state=True,
  shared_reset_gate_bug=False,
):
  """Eqs. (3)-(10) and the Table 5 ablations -> logits (B, C)."""
  batch, _, _, channels = feature_map.shape
  num_classes = word_vectors.shape[0]
  if use_semantic_decoupling:
    initial, _ = semantic_decoupling(feature_map, word_vectors, params["semantic_decoupling"])
  else:
    pooled = feature_map.mean(axis=(1, 2))
    initial = np.zeros((batch, num_classes, channels))
    for b in range(batch):
      for c in range(num_classes):
        if concat_word_vectors:
          initial[b, c] = linear(params["node_init"], np.concatenate([pooled[b], word_vectors[c]]))
        else:
          initial[b, c] = pooled[b]
  if use_interaction:
    final = gated_graph(initial, adjacency, params["graph_propagation"], time_steps, shared_reset_gate_bug)
    output_in = np.concatenate([final, initial], axis=-1) if concat_initial_state else final
    nodes = np.tanh(linear(params["output"], output_in))  # eq. (10), f_o
  else:
    nodes = initial
  kernel, bias = params["classifier"]["kernel"], params["classifier"]["bias"]
  logits = np.zeros((batch, num_classes))
  for b in range(batch):
    for c in range(num_classes):
      logits[b, c] = nodes[b, c] @ kernel[c] + bias[c]  # f_c, unshared per class
  return logits


def randomize(params, seed, scale=0.5):
  """Same tree as `params` with N(0, scale^2) float32 entries, so no check rests on the small default init."""
  import jax

  leaves, treedef = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(treedef, [(scale * rng.standard_normal(x.shape)).astype(np.float32) for x in leaves])
