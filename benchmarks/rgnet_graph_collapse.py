"""Does RGNet's region graph keep the regions apart? Statistics of S and of the region features, trained vs init.

  JAX_PLATFORMS=cpu python -m benchmarks.rgnet_graph_collapse --arg=fcn_a_g [--workdir=/tmp/jaxgraphs/rgnet_shapes] \
      [--config=configs/rgnet_shapes.py] [--images=64] [--config_override=model.head.graph_scale=0.0864] \
      [--config_override=model.head.batch_norm_before_weights=1]

For the first `--images` evaluation images of a run of `--config`:`--arg` in `--workdir`, with its latest checkpoint
and (the baseline, same run; alone without --workdir) with the initialisation of the same config and seed, each
with batch norm in eval mode (running statistics) and in train mode (the batch's, as a training step sees it), prints
  top-column share  fraction of S's rows whose largest weight is on the image's most common such column
                    (1: every region copies one region)
  entropy           mean row entropy of S over log N (0: one-hot rows, 1: uniform)
  max weight        mean largest weight of a row (uniform: 1 / N)
  cosine in / out   mean pairwise cosine similarity of the regions' features entering and leaving the graph
                    (near 1 after the graph: the regions have become one vector and the layout is gone)
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from benchmarks.run_states import initial_and_trained_states, load_config
from jaxgraphs.training.trainer import Experiment


def mean_pairwise_cosine(features) -> float:
  """Mean cosine similarity over all pairs of regions (self pairs included), averaged over images."""
  flat = np.asarray(features, np.float64).reshape(features.shape[0], -1, features.shape[-1])
  unit = flat / np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), 1e-6)
  return float(np.mean(unit @ unit.transpose(0, 2, 1)))


def graph_statistics(experiment: Experiment, state, images, train: bool) -> dict[str, float]:
  """S and feature statistics of the model's region graph on `images`, batch norm in train or eval mode."""
  variables = {"params": state.params, **state.model_state}
  wanted = ("head", "phi", "phi_0", "theta", "theta_0")
  kwargs = {"capture_intermediates": lambda m, _: m.name in wanted}
  if train:
    # What the loss sees: batch statistics in every BN, and dropout (fixed key); the updated stats are dropped.
    kwargs.update(train=True, rngs={"dropout": jax.random.PRNGKey(0)}, mutable=["batch_stats"])
  _, captured = experiment.model.apply(variables, images, **kwargs)
  head = captured["intermediates"]["head"]
  head_outputs = head["__call__"][0]
  graph = head["region_graph"]
  # S of the first graph layer from phi and theta's outputs: eq. 2's row softmax of scale * phi_i . theta_j.
  queries = np.asarray(graph.get("phi", graph.get("phi_0"))["__call__"][0], np.float64)
  keys = np.asarray(graph.get("theta", graph.get("theta_0"))["__call__"][0], np.float64)
  logits = experiment.model.head_kwargs.get("graph_scale", 1.0) * np.einsum("bid,bjd->bij", queries, keys)
  similarity = np.exp(logits - logits.max(-1, keepdims=True))
  similarity /= similarity.sum(-1, keepdims=True)
  top = similarity.argmax(-1)
  graph_input = head_outputs.get("features_aspp", head_outputs["features_fcn"])
  return {
    "top-column share": float(np.mean([np.bincount(row).max() / row.size for row in top])),
    "entropy": float(np.mean(-(similarity * np.log(similarity + 1e-30)).sum(-1)) / np.log(similarity.shape[-1])),
    "max weight": float(similarity.max(-1).mean()),
    "cosine in": mean_pairwise_cosine(graph_input),
    "cosine out": mean_pairwise_cosine(head_outputs["features_graph"]),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/rgnet_shapes.py")
  parser.add_argument("--arg", default="fcn_a_g")
  parser.add_argument("--workdir", default=None, help="a run's directory; without it only the initialisation")
  parser.add_argument("--images", type=int, default=64)
  parser.add_argument("--config_override", action="append", default=[])
  args = parser.parse_args()
  config = load_config(args.config, args.arg, args.config_override)
  if config.model.variant not in ("fcn_g", "fcn_a_g"):
    raise SystemExit(f"--arg={args.arg!r}: the variant has no region graph")
  experiment, images, states = initial_and_trained_states(config, args.workdir, args.images)
  initial = states[0][1]
  n = experiment.model.apply({"params": initial.params, **initial.model_state}, images[:1])["region_quality"]
  head = config.model.head
  print(
    f"{args.config}:{args.arg}, {args.workdir}, {args.images} {config.data.eval_split or 'evaluation'} images, "
    f"N = {n.size} regions (uniform row weight {1 / n.size:.4f}), graph_scale {head.graph_scale:g}, "
    f"batch_norm_before_weights {head.get('batch_norm_before_weights', False)}"
  )
  header = f"{'state, BN mode':<22}" + "".join(
    f"{name:>18}" for name in ("top-column share", "entropy", "max weight", "cosine in", "cosine out")
  )
  print(header)
  print("-" * len(header))
  for name, state in states:
    # Eval mode uses the running statistics (at init: mean 0, var 1, so every BN is the identity); train mode
    # the batch's, as in a training step.
    for train in (False, True):
      stats = graph_statistics(experiment, state, images, train)
      label = f"{name}, {'train' if train else 'eval'}"
      print(f"{label:<22}" + "".join(f"{value:>18.3f}" for value in stats.values()), flush=True)


if __name__ == "__main__":
  main()
