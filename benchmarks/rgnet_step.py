"""RGNet's whole train step (DenseNet-121 at output stride 8, DenseASPP, 3-layer region graph, LSE head, binary CE,
Adam): compiled memory per graph implementation at 300 px and larger, and measured images/s.

  JAX_PLATFORMS=cpu python -m benchmarks.rgnet_step [--sizes=300,448,600] [--batch=8] [--time_size=300]
      [--time_batch=2] [--dtype=float32] [--toy]

Baseline: the 'explicit' graph (S materialised, the default) in the same run; 'fcn_a' (the same network
without the graph) is printed too, so the graph's own share is visible. Memory is XLA's compiled memory
analysis of the jitted step (nothing runs): temp bytes (activations kept for the backward pass and
scratch; parameters, optimiser state and the batch are arguments and excluded) with CPU's YNNPACK fusion
off, as in benchmarks/graph_memory.py, which hides the buffers inside its library calls. Speed: the step
compiled with default flags on `--time_batch` images of `--time_size` px, median of 3 calls after one
warm-up; on a shared CPU it says more about relative cost than about any accelerator.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.graph_memory import temp_bytes
from jaxgraphs.models.rgnet import RGNet
from jaxgraphs.tasks.aesthetics import AestheticsTask

IMPLEMENTATIONS = ("explicit", "fused", "blocked")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# --toy: a DenseNet of RGNet's layout at a fraction of the width, to check the script in seconds.
TOY_BACKBONE = {"growth_rate": 8, "block_config": (1, 1, 1, 1), "num_init_features": 16}
TOY_HEAD = {"aspp_inter_features": 16, "aspp_out_features": 8}


def build(variant: str, implementation: str, dtype, toy: bool = False) -> RGNet:
  """RGNet (DenseNet-121 at output stride 8) with one graph implementation."""
  head = dict(TOY_HEAD) if toy else {}
  if variant == "fcn_a_g":
    head["graph_implementation"] = implementation
  return RGNet(variant=variant, head_kwargs=head, backbone_kwargs=TOY_BACKBONE if toy else None, dtype=dtype)


def train_step_function(module, task, tx):
  """One step: forward in train mode (batch norm statistics updated), binary CE, gradients, Adam update."""

  def step(params, batch_stats, opt_state, batch, rng):
    def loss_fn(p):
      outputs, new_state = module.apply(
        {"params": p, "batch_stats": batch_stats},
        batch["image"],
        train=True,
        rngs={"dropout": rng},
        mutable=["batch_stats"],
      )
      return task.loss(outputs, batch)[0], new_state["batch_stats"]

    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  return step


def abstract_arguments(module, tx, batch: int, size: int):
  """Shape structs of (params, batch_stats, opt_state, batch, rng) for size x size images, and the region grid."""
  images = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  outputs, variables = jax.eval_shape(
    module.init_with_output, {"params": jax.random.key(0), "dropout": jax.random.key(1)}, images
  )
  opt_state = jax.eval_shape(tx.init, variables["params"])
  data = {
    "image": images,
    "label": jax.ShapeDtypeStruct((batch,), jnp.int32),
    "mask": jax.ShapeDtypeStruct((batch,), jnp.float32),
  }
  arguments = (
    variables["params"],
    variables["batch_stats"],
    opt_state,
    data,
    jax.eval_shape(lambda: jax.random.key(0)),
  )
  return arguments, outputs["region_scores"].shape[1:3]


def nbytes(tree) -> int:
  return sum(int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree))


def mib(num_bytes: float) -> str:
  return f"{num_bytes / 2**20:,.1f}"


def images_per_second(module, task, tx, batch: int, size: int) -> float:
  """Median images/s of the compiled step over 3 calls after a warm-up (default XLA flags)."""
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(batch, size, size, 3)).astype(np.float32))
  variables = jax.jit(module.init)({"params": jax.random.key(0), "dropout": jax.random.key(1)}, images)
  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  data = {"image": images, "label": jnp.asarray(rng.integers(0, 2, batch), jnp.int32), "mask": jnp.ones(batch)}
  step = jax.jit(train_step_function(module, task, tx))
  key = jax.random.key(0)
  jax.block_until_ready(step(params, batch_stats, opt_state, data, key))
  seconds = []
  for _ in range(3):
    start = time.perf_counter()
    jax.block_until_ready(step(params, batch_stats, opt_state, data, key))
    seconds.append(time.perf_counter() - start)
  return batch / statistics.median(seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=lambda s: [int(n) for n in s.split(",")], default=[300, 448, 600])
  parser.add_argument("--batch", type=int, default=8, help="per-device batch of the memory analysis (paper: 32 / 4)")
  parser.add_argument("--time_size", type=int, default=300, help="image side of the timed steps; 0: no timing")
  parser.add_argument("--time_batch", type=int, default=2)
  parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
  parser.add_argument("--toy", action="store_true", help="a narrow, shallow DenseNet (checks the script quickly)")
  args = parser.parse_args()
  device = jax.devices()[0]
  network = "toy DenseNet (--toy)" if args.toy else "DenseNet-121 OS 8, d' = 1280"
  print(
    f"platform {device.platform} ({device.device_kind}), jax {jax.__version__}, {os.cpu_count()} CPUs, "
    f"compute dtype {args.dtype}; RGNet {network}, 3 graph layers, Adam"
  )
  task, tx = AestheticsTask("binary"), optax.adam(1e-4)
  dtype = DTYPES[args.dtype]
  rows = [("fcn_a", "-")] + [("fcn_a_g", implementation) for implementation in IMPLEMENTATIONS]
  header = (
    f"{'px':>5} {'regions':>8} {'B':>3} {'variant':<8} {'graph':<9}{'params MiB':>11}{'step temp MiB':>14}"
    f"{'x vs explicit':>14}{'img/s':>8}"
  )
  print(header)
  print("-" * len(header))
  for size in args.sizes:
    baseline = None
    for variant, implementation in rows:
      module = build(variant, implementation if implementation != "-" else "explicit", dtype, args.toy)
      arguments, (height, width) = abstract_arguments(module, tx, args.batch, size)
      temp = temp_bytes(train_step_function(module, task, tx), *arguments)
      if variant == "fcn_a_g" and baseline is None:
        baseline = temp
      ratio = f"{baseline / temp:.2f}" if baseline and variant == "fcn_a_g" else "-"
      speed = "-"
      if size == args.time_size and variant == "fcn_a_g":
        speed = f"{images_per_second(module, task, tx, args.time_batch, size):.2f}"
      print(
        f"{size:>5} {f'{height}x{width}':>8} {args.batch:>3} {variant:<8} {implementation:<9}"
        f"{mib(nbytes(arguments[0])):>11}{mib(temp):>14}{ratio:>14}{speed:>8}",
        flush=True,
      )


if __name__ == "__main__":
  main()
