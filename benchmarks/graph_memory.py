"""Memory (and time) of graph propagation S V: explicit (baseline) vs fused vs blocked.

  JAX_PLATFORMS=cpu python -m benchmarks.graph_memory [--nodes=1369,5625,16384] [--batches=1,4]
      [--features=1280] [--block_size=512] [--query_block_size=512] [--time_max_nodes=5625] [--repeats=5]
      [--region_graph]

Sizes: N = 37^2, 75^2, 128^2 regions (300, 600, 1024 px inputs at output stride 8), d' = 1024 + 4*64
(DenseNet-121 + DenseASPP), q, k, v all (B, N, d') as RGNet's phi(X), theta(X), X.

Memory: XLA's compiled memory analysis (temp bytes: everything but inputs and outputs) of the
jitted forward, and of the jitted forward + backward (the gradients w.r.t. q, k, v for the
output cotangent w, via jax.vjp; the output itself is a temporary there, kept for the backward
pass), without running anything. The baseline is 'explicit' in the same run. The last memory
column is the older measure, value and gradient of the loss <out, w>: XLA on CPU materialises
out * w for that loss value and keeps it live across the backward loops, one (B, N, d') array
that belongs to the test loss rather than to the propagation.
On CPU, XLA's default YNNPACK fusion wraps the whole explicit graph into one library call whose
internal buffers the analysis does not see (it reports 0 bytes for an N x N softmax), so the
analysis compiles with `xla_cpu_experimental_ynn_fusion_type=''` (YNN fusion off).
Measured (B=1, N <= --time_max_nodes, each in a fresh subprocess with default XLA flags): how
much the first forward + backward call raises the process's peak RSS above its peak so far
(inputs and compilation; it includes the outputs and one-off runtime set-up, and reads 0 if the
call needs less than the compiler did), and the median wall time of --repeats further calls.
--region_graph adds the analysis for the whole 3-layer RegionGraph (forward + backward w.r.t.
its parameters and input). --region_graph_run=IMPL instead runs that forward + backward once
(after compiling) at the first --nodes and --batches and prints its seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgraphs.models.heads.region_graph import RegionGraph
from jaxgraphs.models.layers.graph_attention import graph_propagate

IMPLEMENTATIONS = ("explicit", "fused", "blocked")


def propagation_functions(implementation: str, block_size: int, query_block_size: int | None = None):
  """(forward, forward+backward, value and gradient of <out, w>) of graph_propagate for one implementation."""

  def forward(q, k, v):
    return graph_propagate(
      q, k, v, implementation=implementation, block_size=block_size, query_block_size=query_block_size
    )

  def gradients(q, k, v, w):
    return jax.vjp(forward, q, k, v)[1](w)

  def loss(q, k, v, w):
    return jnp.vdot(forward(q, k, v), w)

  return forward, gradients, jax.value_and_grad(loss, argnums=(0, 1, 2))


def region_graph_train_step(implementation: str, block_size: int):
  """Forward + backward of the 3-layer RegionGraph w.r.t. its parameters and input."""
  graph = RegionGraph(implementation=implementation, block_size=block_size)

  def loss(params, x, w):
    out, _ = graph.apply({"params": params}, x)
    return jnp.vdot(out, w)

  return graph, jax.value_and_grad(loss, argnums=(0, 1))


def analysis_compiler_options() -> dict[str, str] | None:
  """Compiler options under which the memory analysis sees every buffer: on CPU, YNNPACK fusion off."""
  return {"xla_cpu_experimental_ynn_fusion_type": ""} if jax.default_backend() == "cpu" else None


def temp_bytes(function, *shapes) -> int:
  """Temp bytes XLA allocates for the compiled function (inputs and outputs excluded)."""
  compiled = jax.jit(function).lower(*shapes).compile(compiler_options=analysis_compiler_options())
  return compiled.memory_analysis().temp_size_in_bytes


def high_water_mib() -> float:
  """This process's peak resident set size so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_increase_and_seconds(function, *arrays, repeats: int = 5):
  """(rise of the process's peak RSS during the first call, median seconds of `repeats` more calls)."""
  compiled = jax.jit(function).lower(*arrays).compile()
  before = high_water_mib()
  jax.block_until_ready(compiled(*arrays))
  increase = high_water_mib() - before
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*arrays))
    times.append(time.perf_counter() - start)
  return increase, statistics.median(times)


def measure_in_this_process(implementation: str, nodes: int, args) -> dict:
  """Runs forward + backward for B=1 and returns {'peak_mib', 'seconds'}."""
  rng = np.random.default_rng(0)
  shape = (1, nodes, args.features)
  q, k, v, w = (jnp.asarray(rng.normal(size=shape).astype(np.float32) * 0.05) for _ in range(4))
  _, gradients, _ = propagation_functions(implementation, args.block_size, args.query_block_size)
  peak, seconds = peak_increase_and_seconds(gradients, q, k, v, w, repeats=args.repeats)
  return {"peak_mib": peak, "seconds": seconds}


def measure_in_subprocess(implementation: str, nodes: int, args) -> dict:
  """measure_in_this_process in a fresh interpreter, so earlier runs leave no memory behind."""
  command = [
    sys.executable,
    "-m",
    "benchmarks.graph_memory",
    f"--measure={implementation}",
    f"--nodes={nodes}",
    f"--features={args.features}",
    f"--block_size={args.block_size}",
    f"--query_block_size={args.query_block_size}",
    f"--repeats={args.repeats}",
  ]
  result = subprocess.run(command, capture_output=True, text=True, check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def run_region_graph(args) -> None:
  """Runs one forward + backward of the 3-layer RegionGraph and prints its wall time and peak RSS."""
  side, batch = round(args.nodes[0] ** 0.5), args.batches[0]
  rng = np.random.default_rng(0)
  x, w = (jnp.asarray(rng.normal(size=(batch, side, side, args.features)).astype(np.float32)) for _ in range(2))
  graph, train_step = region_graph_train_step(args.region_graph_run, args.block_size)
  params = graph.init(jax.random.PRNGKey(0), x)["params"]
  compiled = jax.jit(train_step).lower(params, x, w).compile()
  start = time.perf_counter()
  loss, _ = jax.block_until_ready(compiled(params, x, w))
  print(
    f"RegionGraph {args.region_graph_run} (block_size={args.block_size}) {side}^2 regions, batch {batch}, "
    f"d'={args.features}: forward + backward {time.perf_counter() - start:.1f} s, loss {float(loss):.4g}, "
    f"process peak RSS {high_water_mib():,.0f} MiB"
  )


def mib(num_bytes: float) -> str:
  return f"{num_bytes / 2**20:,.1f}"


def propagation_table(args) -> None:
  """Prints one row per (N, B, implementation) for graph_propagate alone."""
  print(
    f"\ngraph_propagate S V, q/k/v (B, N, {args.features}) float32, "
    f"block_size={args.block_size}, query_block_size={args.query_block_size}"
  )
  header = (
    f"{'N':>7} {'B':>3} {'implementation':<15}{'N*N*B*4 MiB':>12}{'fwd temp MiB':>14}"
    f"{'x vs explicit':>14}{'fwd+bwd temp MiB':>18}{'x vs explicit':>14}"
    f"{'RSS peak rise MiB':>19}{'fwd+bwd s':>11}{'<out,w> v&g MiB':>17}{'x vs explicit':>14}"
  )
  print(header)
  print("-" * len(header))
  for nodes in args.nodes:
    for batch in args.batches:
      qkv = jax.ShapeDtypeStruct((batch, nodes, args.features), jnp.float32)
      dense_matrix = batch * nodes * nodes * 4
      baseline = None
      for implementation in IMPLEMENTATIONS:
        forward, gradients, value_and_grad = propagation_functions(
          implementation, args.block_size, args.query_block_size
        )
        fwd = temp_bytes(forward, qkv, qkv, qkv)
        bwd = temp_bytes(gradients, qkv, qkv, qkv, qkv)
        loss_bwd = temp_bytes(value_and_grad, qkv, qkv, qkv, qkv)
        baseline = baseline or (fwd, bwd, loss_bwd)
        peak = seconds = "-"
        if nodes <= args.time_max_nodes and batch == 1:
          measured = measure_in_subprocess(implementation, nodes, args)
          peak, seconds = f"{measured['peak_mib']:,.1f}", f"{measured['seconds']:.2f}"
        print(
          f"{nodes:>7} {batch:>3} {implementation:<15}{mib(dense_matrix):>12}{mib(fwd):>14}"
          f"{baseline[0] / max(fwd, 1):>14.1f}{mib(bwd):>18}{baseline[1] / max(bwd, 1):>14.1f}"
          f"{peak:>19}{seconds:>11}{mib(loss_bwd):>17}{baseline[2] / max(loss_bwd, 1):>14.1f}",
          flush=True,
        )


def region_graph_table(args) -> None:
  """Prints forward+backward temp memory of the whole 3-layer RegionGraph."""
  print(f"\nRegionGraph (3 layers, shared S, d'={args.features}) forward+backward w.r.t. params and input")
  header = f"{'N':>7} {'B':>3} {'implementation':<15}{'fwd+bwd temp MiB':>18}{'x vs explicit':>14}"
  print(header)
  print("-" * len(header))
  for nodes in args.nodes:
    side = round(nodes**0.5)
    for batch in args.batches:
      x = jax.ShapeDtypeStruct((batch, side, side, args.features), jnp.float32)
      baseline = None
      for implementation in IMPLEMENTATIONS:
        graph, train_step = region_graph_train_step(implementation, args.block_size)
        params = jax.eval_shape(graph.init, jax.random.PRNGKey(0), x)["params"]
        bwd = temp_bytes(train_step, params, x, x)
        baseline = baseline or bwd
        print(
          f"{side * side:>7} {batch:>3} {implementation:<15}{mib(bwd):>18}{baseline / max(bwd, 1):>14.1f}", flush=True
        )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--nodes", type=lambda s: [int(n) for n in s.split(",")], default=[37**2, 75**2, 128**2])
  parser.add_argument("--batches", type=lambda s: [int(n) for n in s.split(",")], default=[1, 4])
  parser.add_argument("--features", type=int, default=1024 + 4 * 64)
  parser.add_argument("--block_size", type=int, default=512, help="key block of 'blocked'")
  parser.add_argument("--query_block_size", type=int, default=512, help="query block of 'blocked'")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls after the first (median)")
  parser.add_argument("--time_max_nodes", type=int, default=75**2, help="time fwd+bwd (B=1) up to this N; 0: never")
  parser.add_argument("--region_graph", action="store_true", help="also the whole 3-layer RegionGraph")
  parser.add_argument("--region_graph_run", choices=IMPLEMENTATIONS, help="run the RegionGraph once (first N, B)")
  parser.add_argument("--measure", choices=IMPLEMENTATIONS, help="internal: measure one run (first --nodes, B=1)")
  args = parser.parse_args()
  if args.measure:
    print(json.dumps(measure_in_this_process(args.measure, args.nodes[0], args)))
    return
  if args.region_graph_run:
    run_region_graph(args)
    return
  device = jax.devices()[0]
  print(
    f"platform {device.platform} ({device.device_kind}), jax {jax.__version__}, {os.cpu_count()} CPUs; "
    "'fused' = jax.nn.dot_product_attention(implementation=None), which jax 0.10 maps to 'xla'"
  )
  propagation_table(args)
  if args.region_graph:
    region_graph_table(args)


if __name__ == "__main__":
  main()
