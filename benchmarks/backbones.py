"""Training throughput (forward + backward) and peak memory of the Flax backbones vs torchvision.

  python -m benchmarks.backbones [--archs=densenet121_os8,resnet101,vgg16] [--size=N] [--batch=2]
      [--threads=2] [--reps=5] [--device=cpu|cuda] [--dtype=float32|bfloat16] [--xla_flags="..."]

Each (arch, framework) runs in its own subprocess, one after the other, with the same batch, image
size, and CPU threads (the process is pinned to the first --threads CPUs; torch.set_num_threads):
batch-norm in train mode, loss = mean of the final feature map, gradients of all parameters.
Default sizes are the papers': DenseNet-121 at output stride 8 on 300x300 (RGNet), ResNet-101 on
576x576 (SSGRL), VGG-16 on 592x592 (LinkNet); ResNet-50 on 224 reproduces the "Flax is slower than
torchvision on CPU" comparison. Time: median of --reps steps after two warm-up steps (JAX compiles
before them). Memory: on GPU each framework's own peak allocator statistic; on CPU how far the process's
RSS peaks during the first step above its level before it (activations, gradients, workspace;
parameters, inputs and, for JAX, compilation happen before and are not counted), plus XLA's own
estimate of the step's temporary buffers ('xla temp') and the JAX compile time.
The CPU here is usually shared: read ratios, not absolute numbers, and compare runs of one call.
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

# arch: (jaxgraphs backbone, Flax attributes, torchvision constructor, default size)
ARCHS = {
  "resnet50": ("resnet50", {}, "resnet50", 224),
  "resnet101": ("resnet101", {}, "resnet101", 576),
  "resnet101_os8": ("resnet101", {"output_stride": 8}, "resnet101_os8", 576),
  "densenet121": ("densenet121", {}, "densenet121", 224),
  "densenet121_os8": ("densenet121", {"output_stride": 8}, "densenet121_os8", 300),
  "vgg16": ("vgg16", {}, "vgg16", 592),
  "vgg16_os8": ("vgg16", {"output_stride": 8}, "vgg16_os8", 300),
}
DEFAULT_ARCHS = "densenet121_os8,resnet101,vgg16"


def rss_mib() -> float:
  """Current resident set size of this process."""
  with open("/proc/self/statm") as statm:
    return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> None:
  """Restarts the kernel's peak-RSS counter (VmHWM) of this process (Linux >= 4.0)."""
  with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")


def peak_rss_mib() -> float:
  """Peak resident set size (VmHWM) of this process since the last reset."""
  with open("/proc/self/status") as status:
    for line in status:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torch_model(name: str):
  """torchvision's fully convolutional part (what the Flax FCN form computes) for `name`."""
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision  # pylint: disable=import-outside-toplevel

  models = torchvision.models
  if name.startswith("resnet"):
    dilate = [False, True, True] if name.endswith("_os8") else [False, False, False]
    net = getattr(models, name.split("_")[0])(replace_stride_with_dilation=dilate)
    return torch.nn.Sequential(*list(net.children())[:-2])
  if name.startswith("densenet"):
    net = getattr(models, name.split("_")[0])()
    if name.endswith("_os8"):  # as jaxgraphs' DenseNet: no pooling in transitions 2, 3; blocks 3, 4 dilated 2, 4
      for transition, dilation in (("transition2", 2), ("transition3", 4)):
        getattr(net.features, transition).pool = torch.nn.Identity()
        for layer in getattr(net.features, "denseblock" + str(int(transition[-1]) + 1)).values():
          layer.conv2.dilation, layer.conv2.padding = (dilation, dilation), (dilation, dilation)
    return torch.nn.Sequential(net.features, torch.nn.ReLU())
  net = models.vgg16()
  if name.endswith("_os8"):  # as jaxgraphs' VGG: pools 4, 5 at stride 1 (3x3), block 5 dilated 2
    pools = [i for i, m in enumerate(net.features) if isinstance(m, torch.nn.MaxPool2d)]
    for index in pools[3:]:
      net.features[index] = torch.nn.MaxPool2d(3, stride=1, padding=1)
    for module in list(net.features)[pools[3] :]:
      if isinstance(module, torch.nn.Conv2d):
        module.dilation, module.padding = (2, 2), (2, 2)
  return net.features


def run_torch(arch: str, size: int, batch: int, reps: int, device: str, dtype: str) -> dict:
  """Median seconds per forward + backward step and peak memory of torchvision's network."""
  import torch  # pylint: disable=import-outside-toplevel

  model = torch_model(ARCHS[arch][2]).to(device).train()
  x = torch.randn(batch, 3, size, size, device=device)
  autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

  def step():
    model.zero_grad(set_to_none=True)
    with autocast:
      loss = model(x).float().mean()
    loss.backward()
    if device == "cuda":
      torch.cuda.synchronize()

  if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
  times, cpu_times, rss_rise = timed(step, reps)
  memory = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else rss_rise
  return {"times": times, "cpu_times": cpu_times, "memory_mib": memory}


def run_jax(arch: str, size: int, batch: int, reps: int, device: str, dtype: str) -> dict:
  """Median seconds per forward + backward step and peak memory of the jaxgraphs backbone."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from jaxgraphs.models.backbones import build_backbone  # pylint: disable=import-outside-toplevel

  name, kwargs, _, _ = ARCHS[arch]
  model = build_backbone(name, dtype=jnp.dtype(dtype), **kwargs)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, 3)), jnp.float32)
  # Random values straight from NumPy: compiling the initialisers would cost more than the benchmark.
  rng = np.random.default_rng(0)
  abstract = jax.eval_shape(model.init, jax.random.key(0), x[:1])
  variables = jax.tree.map(
    lambda leaf: jnp.asarray(
      rng.normal(size=leaf.shape) * np.sqrt(2 / max(np.prod(leaf.shape[:-1]), 1))
      if leaf.ndim > 1
      else np.ones(leaf.shape),
      jnp.float32,
    ),
    abstract,
  )

  def loss(params, batch_stats, images):
    outputs, updates = model.apply(
      {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
    )
    return jnp.mean(outputs["feature_map"].astype(jnp.float32)), updates

  batch_stats = variables.get("batch_stats", {})
  start = time.perf_counter()
  grad_step = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(variables["params"], batch_stats, x).compile()
  compile_seconds = time.perf_counter() - start

  def step():
    jax.block_until_ready(grad_step(variables["params"], batch_stats, x))

  times, cpu_times, rss_rise = timed(step, reps)
  memory = jax.devices()[0].memory_stats()["peak_bytes_in_use"] / 2**20 if device == "cuda" else rss_rise
  return {
    "times": times,
    "cpu_times": cpu_times,
    "memory_mib": memory,
    "compile_seconds": compile_seconds,
    "xla_temp_mib": grad_step.memory_analysis().temp_size_in_bytes / 2**20,
  }


def timed(step, reps: int) -> tuple[list[float], list[float], float]:
  """(wall seconds, process CPU seconds) of `reps` calls of `step` after two warm-up calls, and how far
  the process's RSS peaked above its level during the first call (later calls reuse freed heap)."""
  baseline = rss_mib()
  reset_peak_rss()
  step()
  rss_rise = peak_rss_mib() - baseline
  step()
  times, cpu_times = [], []
  for _ in range(reps):
    start, cpu_start = time.perf_counter(), time.process_time()
    step()
    times.append(time.perf_counter() - start)
    cpu_times.append(time.process_time() - cpu_start)
  return times, cpu_times, rss_rise


def worker(args) -> None:
  """Runs one (framework, arch) measurement in this process and prints it as JSON."""
  if args.device == "cpu":
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
  if args.framework == "torch":
    import torch  # pylint: disable=import-outside-toplevel

    if args.device == "cpu":
      torch.set_num_threads(args.threads)
    result = run_torch(args.archs, args.size, args.batch, args.reps, args.device, args.dtype)
  else:
    result = run_jax(args.archs, args.size, args.batch, args.reps, args.device, args.dtype)
  print(json.dumps(result))


def measure(framework: str, arch: str, size: int, args) -> dict:
  """Runs one worker subprocess and returns its JSON result (or the error)."""
  env = dict(os.environ)
  if framework == "jax":
    env["JAX_PLATFORMS"] = "cuda" if args.device == "cuda" else "cpu"
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS", ""), args.xla_flags]))
  if args.device == "cpu":
    env["OMP_NUM_THREADS"] = str(args.threads)
  command = [
    sys.executable,
    "-m",
    "benchmarks.backbones",
    f"--worker={framework}",
    f"--archs={arch}",
    f"--size={size}",
    f"--batch={args.batch}",
    f"--reps={args.reps}",
    f"--threads={args.threads}",
    f"--device={args.device}",
    f"--dtype={args.dtype}",
  ]
  result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
  return json.loads(result.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict], batch: int) -> dict:
  """Throughput from the median step over all runs, CPU seconds per image, the largest memory reading."""
  times = [t for run in runs for t in run["times"]]
  cpu_times = [t for run in runs for t in run["cpu_times"]]
  summary = {
    "img_s": batch / statistics.median(times),
    "cpu_s_per_img": statistics.median(cpu_times) / batch,
    "memory_mib": max(run["memory_mib"] for run in runs),
  }
  if "xla_temp_mib" in runs[0]:
    summary["xla_temp_mib"] = runs[0]["xla_temp_mib"]
    summary["compile_seconds"] = statistics.median(run["compile_seconds"] for run in runs)
  return summary


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--archs", default=DEFAULT_ARCHS, help=f"comma-separated, from {', '.join(ARCHS)}")
  parser.add_argument("--size", type=int, default=None, help="image side; default: each arch's paper size")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--threads", type=int, default=2, help="CPU threads of both frameworks")
  parser.add_argument("--reps", type=int, default=3, help="timed steps per subprocess")
  parser.add_argument(
    "--rounds",
    type=int,
    default=3,
    help="subprocesses per framework, alternating torch and jax (a shared CPU's load drifts)",
  )
  parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  parser.add_argument("--xla_flags", default="", help="extra XLA_FLAGS for the JAX runs")
  parser.add_argument("--frameworks", default="torch,jax")
  parser.add_argument("--worker", choices=("torch", "jax"), default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    args.framework = args.worker
    worker(args)
    return

  frameworks = args.frameworks.split(",")
  compare = sorted(frameworks) == ["jax", "torch"]
  print(
    f"device={args.device} threads={args.threads} batch={args.batch} dtype={args.dtype} reps={args.reps} "
    f"rounds={args.rounds} xla_flags={args.xla_flags!r} load average at start={os.getloadavg()[0]:.1f}"
  )
  header = f"{'arch':16} {'size':>5}" + "".join(
    f" {f + ' img/s':>11} {f + ' cpu-s/img':>15} {f + ' MiB':>9}" for f in frameworks
  )
  if compare:
    header += f" {'jax/torch speed (range over rounds)':>36}"
  if "jax" in frameworks:
    header += f" {'xla temp MiB':>12} {'compile s':>9}"
  print(header)
  for arch in args.archs.split(","):
    if arch not in ARCHS:
      raise SystemExit(f"--archs: unknown {arch!r}; valid: {', '.join(ARCHS)}")
    size = args.size or ARCHS[arch][3]
    runs = {framework: [] for framework in frameworks}
    ratios, errors = [], {}
    for round_index in range(args.rounds):
      order = frameworks if round_index % 2 == 0 else frameworks[::-1]
      result = {framework: measure(framework, arch, size, args) for framework in order}
      for framework, run in result.items():
        if "error" in run:
          errors[framework] = run["error"]
        else:
          runs[framework].append(run)
      if compare and not errors:
        ratios.append(statistics.median(result["torch"]["times"]) / statistics.median(result["jax"]["times"]))
    row = f"{arch:16} {size:5d}"
    for framework in frameworks:
      if framework in errors:
        row += f" {'error':>11} {'':>15} {'':>9}"
        print(f"  {framework}: {errors[framework]}", file=sys.stderr)
      else:
        summary = summarise(runs[framework], args.batch)
        row += f" {summary['img_s']:11.2f} {summary['cpu_s_per_img']:15.2f} {summary['memory_mib']:9.0f}"
    if ratios:
      row += f" {statistics.median(ratios):22.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    if "jax" in frameworks and runs["jax"]:
      summary = summarise(runs["jax"], args.batch)
      row += f" {summary['xla_temp_mib']:12.0f} {summary['compile_seconds']:9.1f}"
    print(row, flush=True)
  print(f"load average at end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
