"""Does RGNet's region graph keep the regions apart? Statistics of S and of the region features, trained vs init.

  JAX_PLATFORMS=cpu python -m benchmarks.rgnet_graph_collapse --arg=fcn_a_g --workdir=/tmp/jaxgraphs/rgnet_shapes \
      [--config=configs/rgnet_shapes.py] [--images=64] [--config_override=model.head.graph_scale=0.0864]

For the first `--images` evaluation images of a run of `--config`:`--arg` in `--workdir`, with its latest checkpoint
and (the baseline, same run) with the initialisation of the same config and seed, prints
  top-column share  fraction of S's rows whose largest weight is on the image's most common such column
                    (1: every region copies one region)
  entropy           mean row entropy of S over log N (0: one-hot rows, 1: uniform)
  max weight        mean largest weight of a row (uniform: 1 / N)
  cosine in / out   mean pairwise cosine similarity of the regions' features entering and leaving the graph
                    (near 1 after the graph: the regions have become one vector and the layout is gone)
"""

from __future__ import annotations

import argparse

import numpy as np

from jaxgraphs.configs import common as config_loader
from jaxgraphs.data import pipeline
from jaxgraphs.models.heads.rgnet_head import RGNetHead
from jaxgraphs.training.checkpointing import Checkpoints
from jaxgraphs.training.trainer import Experiment


def load_config(path: str, arg: str, overrides: list[str]):
  """get_config(arg) of a config file, with key.path=value overrides (values take the type of the current value)."""
  config = config_loader.load_config(path, arg)
  for override in overrides:
    key, value = override.split("=", 1)
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = type(node[leaf])(value)
  return config


def mean_pairwise_cosine(features) -> float:
  """Mean cosine similarity over all pairs of regions (self pairs included), averaged over images."""
  flat = np.asarray(features, np.float64).reshape(features.shape[0], -1, features.shape[-1])
  unit = flat / np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), 1e-6)
  return float(np.mean(unit @ unit.transpose(0, 2, 1)))


def graph_statistics(experiment: Experiment, state, images) -> dict[str, float]:
  """S and feature statistics of the model's region graph on `images`."""
  variables = {"params": state.params, **state.model_state}
  _, captured = experiment.model.apply(variables, images, capture_intermediates=lambda m, _: m.name == "head")
  head_outputs = captured["intermediates"]["head"]["__call__"][0]
  head = RGNetHead(variant=experiment.model.variant, num_bins=experiment.model.num_bins, **experiment.model.head_kwargs)
  head_state = {k: v["head"] for k, v in state.model_state.items() if "head" in v}
  outputs = head.apply(
    {"params": state.params["head"], **head_state}, head_outputs["features_fcn"], return_similarity=True
  )
  similarity = np.asarray(outputs["similarities"][0], np.float64)
  top = similarity.argmax(-1)
  graph_input = head_outputs.get("features_aspp", head_outputs["features_fcn"])
  return {
    "top-column share": float(np.mean([np.bincount(row).max() / row.size for row in top])),
    "entropy": float(np.mean(-(similarity * np.log(similarity + 1e-30)).sum(-1)) / np.log(similarity.shape[-1])),
    "max weight": float(similarity.max(-1).mean()),
    "cosine in": mean_pairwise_cosine(graph_input),
    "cosine out": mean_pairwise_cosine(outputs["features_graph"]),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/rgnet_shapes.py")
  parser.add_argument("--arg", default="fcn_a_g")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--images", type=int, default=64)
  parser.add_argument("--config_override", action="append", default=[])
  args = parser.parse_args()
  config = load_config(args.config, args.arg, args.config_override)
  if config.model.variant not in ("fcn_g", "fcn_a_g"):
    raise SystemExit(f"--arg={args.arg!r}: the variant has no region graph")
  experiment = Experiment(config)
  batches, _ = pipeline.build_eval_dataset(config.data, local_batch_size=args.images)
  batch = next(iter(batches))
  initial = experiment.build_state(batch)
  checkpoints = Checkpoints(args.workdir, max_to_keep=1, async_save=False)
  trained, _ = checkpoints.restore(experiment.abstract_state)
  checkpoints.close()
  n = experiment.model.apply({"params": initial.params, **initial.model_state}, batch["image"][:1])["region_quality"]
  print(
    f"{args.config}:{args.arg}, {args.workdir}, {args.images} {config.data.eval_split} images, "
    f"N = {n.size} regions (uniform row weight {1 / n.size:.4f})"
  )
  header = f"{'state':<22}" + "".join(
    f"{name:>18}" for name in ("top-column share", "entropy", "max weight", "cosine in", "cosine out")
  )
  print(header)
  print("-" * len(header))
  for name, state in (("init (baseline)", initial), (f"trained, step {int(trained.step)}", trained)):
    stats = graph_statistics(experiment, state, batch["image"])
    print(f"{name:<22}" + "".join(f"{value:>18.3f}" for value in stats.values()), flush=True)


if __name__ == "__main__":
  main()
