"""Why does SSGRL's graph learn slower than w/o SI? Scale statistics of its head, trained vs initialisation.

  JAX_PLATFORMS=cpu python -m benchmarks.ssgrl_head_statistics --workdir=/tmp/jaxgraphs/ssgrl_diagnostic \
      [--config=configs/ssgrl_diagnostic.py] [--arg=full] [--images=64]

For the first `--images` evaluation images of a run of `--config`:`--arg` in `--workdir` (its latest checkpoint)
and of the same config's initialisation, batch norm in eval mode, prints
  |h0|             mean L2 norm of a class's decoupled feature f_c (the GGNN's initial state and w/o SI's input)
  |hT - h0|        how far T steps of propagation move it (relative to |h0|)
  |pre-tanh|       mean absolute input of eq. 10's tanh output layer o_c = tanh(W [h^T_c, h^0_c])
  saturated        fraction of those inputs with |x| > 2 (tanh' < 0.071: the gradient mostly stops there)
The baseline is the initialisation of the same run (same seed).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.run_states import initial_and_trained_states, load_config
from jaxgraphs.training.trainer import Experiment


def head_statistics(experiment: Experiment, state, images) -> dict[str, float]:
  """Scale statistics of the SSGRL head on `images` (batch norm in eval mode)."""
  variables = {"params": state.params, **state.model_state}
  wanted = ("head", "graph_propagation", "output")
  _, captured = experiment.model.apply(
    variables, images, capture_intermediates=lambda m, _: m.name in wanted, mutable=["intermediates"]
  )
  head = captured["intermediates"]["head"]
  initial = np.asarray(head["__call__"][0]["class_features"], np.float64)
  final = np.asarray(head["graph_propagation"]["__call__"][0], np.float64)
  pre_tanh = np.abs(np.asarray(head["output"]["__call__"][0], np.float64))
  norm = np.linalg.norm(initial, axis=-1)
  return {
    "|h0|": float(norm.mean()),
    "|hT - h0| / |h0|": float(np.mean(np.linalg.norm(final - initial, axis=-1) / np.maximum(norm, 1e-9))),
    "|pre-tanh|": float(pre_tanh.mean()),
    "saturated": float(np.mean(pre_tanh > 2.0)),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/ssgrl_diagnostic.py")
  parser.add_argument("--arg", default="full")
  parser.add_argument("--workdir", default=None, help="a run's directory; without it only the initialisation")
  parser.add_argument("--images", type=int, default=64)
  parser.add_argument("--config_override", action="append", default=[])
  args = parser.parse_args()
  config = load_config(args.config, args.arg, args.config_override)
  if not config.model.get("use_interaction", False):
    raise SystemExit(f"--arg={args.arg!r}: the variant has no graph propagation")
  experiment, images, states = initial_and_trained_states(config, args.workdir, args.images)
  print(f"{args.config}:{args.arg}, {args.workdir}, {args.images} evaluation images, T = {config.model.time_steps}")
  rows = [(name, head_statistics(experiment, state, images)) for name, state in states]
  header = f"{'state':<12}" + "".join(f"{name:>18}" for name in rows[0][1])
  print(header)
  print("-" * len(header))
  for name, stats in rows:
    print(f"{name:<12}" + "".join(f"{value:>18.3f}" for value in stats.values()), flush=True)


if __name__ == "__main__":
  main()
