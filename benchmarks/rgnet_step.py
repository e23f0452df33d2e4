"""RGNet's whole train step (configs/rgnet_ava.py: DenseNet-121 at output stride 8, DenseASPP, 3-layer region graph,
LSE head, binary CE, Adam): compiled memory per graph implementation at 300 px and larger, and measured images/s.

  JAX_PLATFORMS=cpu python -m benchmarks.rgnet_step [--sizes=300,448,600] [--batch=8] [--time_size=300]
      [--time_batch=2] [--steps=3] [--graphs=explicit,fused,blocked] [--dtype=float32] [--tiny]

Every row is the trainer's own `Experiment.jit_train_step` of `configs/rgnet_ava.py:VARIANT` (the paper's
recipe: Adam 1e-4, poly decay, weight decay 1e-5), with `config.model.head.graph_implementation` set per row;
`--tiny` takes configs/rgnet_shapes.py:VARIANT,tiny instead (the unit tests' widths, 48 px: checks the script in
seconds). Baseline: the 'explicit' graph (S materialised, the default) in the same run; 'fcn_a' (the same
network without the graph) is printed too, so the graph's own share is visible. Memory is XLA's compiled
memory analysis of the step (nothing runs): temp bytes (activations kept for the backward pass and scratch;
parameters, optimiser state and the batch are arguments and excluded) with CPU's YNNPACK fusion off, as in
benchmarks/graph_memory.py, which hides the buffers inside its library calls. Speed (benchmarks/step_timing.py):
the step compiled with default flags on `--time_batch` images of `--time_size` px, median of `--steps` calls
after the first; on a shared CPU it says more about relative cost than about any accelerator.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):  # run as `python benchmarks/rgnet_step.py`: the repository root holds `benchmarks`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import step_timing
from benchmarks.graph_memory import analysis_compiler_options

IMPLEMENTATIONS = ("explicit", "fused", "blocked")
BASELINE = "fcn_a_g explicit"


def graphs(text: str) -> tuple[str, ...]:
  """'explicit,blocked' -> the graph implementations to compare; 'explicit' (the baseline) must be one."""
  names = tuple(name.strip() for name in text.split(","))
  unknown = sorted(set(names) - set(IMPLEMENTATIONS))
  if unknown or "explicit" not in names:
    raise argparse.ArgumentTypeError(f"expected explicit and any of {', '.join(IMPLEMENTATIONS)}; got {text!r}")
  return tuple(name for name in IMPLEMENTATIONS if name in names)


def config_of(variant: str, implementation: str, args):
  """configs/rgnet_ava.py:VARIANT (or rgnet_shapes.py:VARIANT,tiny) with one graph implementation."""
  if args.tiny:
    config = step_timing.load_config("rgnet_shapes", f"{variant},tiny")
  else:
    config = step_timing.load_config("rgnet_ava", variant)
  if implementation != "-":
    config.model.head.graph_implementation = implementation
  config.model.dtype = args.dtype
  config.batch_size = args.time_batch
  return config


def batch_spec(batch: int, size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes of an AVA binary-aesthetics batch."""
  return {
    "image": jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32),
    "label": jax.ShapeDtypeStruct((batch,), jnp.int32),
    "mask": jax.ShapeDtypeStruct((batch,), jnp.float32),
  }


def random_batch(rng: np.random.Generator, batch: int, size: int) -> dict[str, np.ndarray]:
  """A random batch of `batch_spec(batch, size)`."""
  return {
    "image": rng.normal(size=(batch, size, size, 3)).astype(np.float32),
    "label": rng.integers(0, 2, batch).astype(np.int32),
    "mask": np.ones(batch, np.float32),
  }


def nbytes(tree) -> int:
  """Bytes of every array (or shape struct) in `tree`."""
  return sum(int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree))


def mib(num_bytes: float) -> str:
  """Bytes as MiB with one decimal and thousands separators."""
  return f"{num_bytes / 2**20:,.1f}"


def region_grid(experiment, size: int) -> tuple[int, int]:
  """Rows and columns of the region map the experiment's model gives for size x size images."""
  keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  image = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  outputs, _ = jax.eval_shape(experiment.model.init_with_output, keys, image)
  return outputs["region_scores"].shape[1:3]


def main(argv=None):
  """Prints the memory table (every size, every row) and the timing table (the graph rows at --time_size)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=lambda s: [int(n) for n in s.split(",")], default=None, help="300,448,600")
  parser.add_argument("--batch", type=int, default=8, help="per-device batch of the memory analysis (paper: 32 / 4)")
  parser.add_argument("--time_size", type=int, default=None, help="image side of the timed steps (300); 0: none")
  parser.add_argument("--time_batch", type=int, default=2)
  parser.add_argument("--steps", type=int, default=3, help="timed steps after the first")
  parser.add_argument("--graphs", type=graphs, default=IMPLEMENTATIONS, help="graph implementations (explicit, ...)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  parser.add_argument("--tiny", action="store_true", help="configs/rgnet_shapes.py:VARIANT,tiny at 48 px")
  args = parser.parse_args(argv)
  sizes = args.sizes or ([48] if args.tiny else [300, 448, 600])
  time_size = (48 if args.tiny else 300) if args.time_size is None else args.time_size
  network = "configs/rgnet_shapes.py:VARIANT,tiny" if args.tiny else "configs/rgnet_ava.py:VARIANT, d' = 1280"
  print(f"{step_timing.platform_line()}; compute dtype {args.dtype}; RGNet {network}, 3 graph layers, Adam")
  rng = np.random.default_rng(0)
  rows = [("fcn_a", "-")] + [("fcn_a_g", implementation) for implementation in args.graphs]
  prepared = {row: step_timing.prepare(config_of(*row, args), batch_spec(args.time_batch, sizes[0])) for row in rows}
  header = (
    f"{'px':>5} {'regions':>8} {'B':>3} {'variant':<8} {'graph':<9}{'params MiB':>11}{'step temp MiB':>14}"
    f"{'x vs explicit':>14}{'img/s':>8}"
  )
  print(header)
  print("-" * len(header))
  timings = []
  for size in sizes:
    baseline = None
    for (variant, implementation), (experiment, state) in prepared.items():
      memory = step_timing.compiled_memory(experiment, batch_spec(args.batch, size), analysis_compiler_options())
      if variant == "fcn_a_g" and baseline is None:
        baseline = memory.temp
      ratio = f"{baseline / memory.temp:.2f}" if variant == "fcn_a_g" else "-"
      speed = "-"
      if size == time_size and variant == "fcn_a_g":
        batch = random_batch(rng, args.time_batch, size)
        timing = step_timing.time_train_step(experiment, state, batch, f"{variant} {implementation}", args.steps)
        timings.append(timing)
        speed = f"{timing.images_per_s:.2f}"
      height, width = region_grid(experiment, size)
      print(
        f"{size:>5} {f'{height}x{width}':>8} {args.batch:>3} {variant:<8} {implementation:<9}"
        f"{mib(nbytes(experiment.abstract_state.params)):>11}{mib(memory.temp):>14}{ratio:>14}{speed:>8}",
        flush=True,
      )
  if timings:
    print(f"\nTrain step at {time_size} px, batch {args.time_batch}:")
    step_timing.print_table(timings, BASELINE)
  return timings


if __name__ == "__main__":
  main()
