r"""The one timing helper of the step benchmarks: the trainer's own jitted train step, built from a config.

Every benchmark that times a train step (ssgrl_step, rgnet_step, linknet_step and input_pipeline's baseline
column) builds an `Experiment` from a config file, initialises its state (random weights) for a batch of the
benchmark's shapes and times `Experiment.jit_train_step`, the function `train_and_evaluate` runs. What is
measured is what trains: the task's loss, the configured optimiser (freezing, weight decay, schedule,
clipping), the step's metrics and the donation of the old state.

Times: compilation (lower + compile) apart from the first call of the compiled step (allocation, one-off
work) and from the steady state, the median of `steps` further calls, each waited for with
`jax.block_until_ready`. Memory: XLA's compiled estimate of the step's peak (temporaries, arguments and
outputs, less what the donated state aliases) on every platform, and the device's own peak bytes in use
where the platform reports them (GPUs and TPUs; XLA's CPU backend does not). The device peak covers the
whole process so far, so a row never shows less than the rows measured before it.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxgraphs.configs import common as config_loader
from jaxgraphs.training import sharding
from jaxgraphs.training.trainer import Experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2**20


def load_config(name: str, arg: str | None = None):
  """get_config(arg) of configs/<name>.py, through the library's one config loader."""
  return config_loader.load_config(os.path.join(REPO, "configs", f"{name}.py"), arg)


def prepare(config, batch_spec: Mapping[str, Any]) -> tuple[Experiment, Any]:
  """The experiment of `config`, its state initialised with random weights for batches shaped like `batch_spec`
  (arrays or ShapeDtypeStructs, this process's part of the batch), and its steps jitted."""
  experiment = Experiment(config)
  state = experiment.build_state(batch_spec, load_weights=False)
  experiment.compile()
  return experiment, state


@dataclasses.dataclass(frozen=True)
class Memory:
  """XLA's memory analysis of one compiled step, in bytes."""

  temp: int  # activations kept for the backward pass and scratch
  arguments: int  # state and batch
  peak: int  # temp + arguments + outputs - aliased (the donated state)


def _memory(compiled) -> Memory:
  analysis = compiled.memory_analysis()
  peak = (
    analysis.temp_size_in_bytes
    + analysis.argument_size_in_bytes
    + analysis.output_size_in_bytes
    - analysis.alias_size_in_bytes
  )
  return Memory(analysis.temp_size_in_bytes, analysis.argument_size_in_bytes, peak)


def compiled_memory(experiment: Experiment, batch_spec: Mapping[str, Any], compiler_options=None) -> Memory:
  """Memory analysis of the experiment's train step compiled for global batches shaped like `batch_spec`; runs
  nothing, so it also answers for sizes that would not fit."""
  spec = {key: jax.ShapeDtypeStruct(value.shape, value.dtype) for key, value in batch_spec.items()}
  lowered = experiment.jit_train_step.lower(experiment.abstract_state, spec)
  return _memory(lowered.compile(compiler_options=compiler_options))


@dataclasses.dataclass(frozen=True)
class StepTiming:
  """One timed train step."""

  name: str
  batch_size: int  # global
  compile_s: float  # lower + compile
  first_step_s: float  # the first call of the compiled step
  step_s: float  # median of `steps` calls after the first
  steps: int
  memory: Memory
  device_peak_bytes: int | None  # the device's peak bytes in use so far; None where not reported
  loss: float

  @property
  def images_per_s(self) -> float:
    """Global images per second of the steady state."""
    return self.batch_size / self.step_s


def device_peak_bytes() -> int | None:
  """Peak bytes in use on the first local device so far, where its platform reports it."""
  stats = jax.local_devices()[0].memory_stats()
  return None if not stats else stats.get("peak_bytes_in_use")


def time_train_step(experiment: Experiment, state, batch: Mapping[str, np.ndarray], name: str, steps: int = 3):
  """Times `experiment.jit_train_step` on `batch` (this process's part, numpy); returns a StepTiming. The state
  is donated to the step, so `state` must not be used afterwards."""
  if steps < 1:
    raise ValueError(f"steps={steps}: at least one timed step after the first")
  device_batch = sharding.global_batch(dict(batch), experiment.mesh)
  start = time.perf_counter()
  compiled = experiment.jit_train_step.lower(state, device_batch).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  state, metrics = compiled(state, device_batch)
  jax.block_until_ready((state, metrics))
  first_step_s = time.perf_counter() - start
  seconds = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, device_batch)
    jax.block_until_ready((state, metrics))
    seconds.append(time.perf_counter() - start)
  loss = float(jax.device_get(metrics["loss"]))
  if not np.isfinite(loss):  # a step that diverged may take a different path (NaN propagation is not free)
    raise FloatingPointError(f"{name}: the training loss is {loss} after {steps + 1} steps")
  return StepTiming(
    name=name,
    batch_size=int(next(iter(device_batch.values())).shape[0]),
    compile_s=compile_s,
    first_step_s=first_step_s,
    step_s=statistics.median(seconds),
    steps=steps,
    memory=_memory(compiled),
    device_peak_bytes=device_peak_bytes(),
    loss=loss,
  )


def measure(name: str, config, batch: Mapping[str, np.ndarray], steps: int = 3) -> StepTiming:
  """Builds the experiment of `config` for `batch` and times its train step (`time_train_step`)."""
  experiment, state = prepare(config, batch)
  return time_train_step(experiment, state, batch, name, steps)


def median_seconds(function: Callable, *args, reps: int = 3) -> float:
  """Median seconds of `reps` calls of the jitted `function(*args)` after one warm-up call; for the parts of a
  step that a benchmark times beside it (e.g. one head on fixed features)."""
  jitted = jax.jit(function)
  jax.block_until_ready(jitted(*args))
  seconds = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(jitted(*args))
    seconds.append(time.perf_counter() - start)
  return statistics.median(seconds)


def platform_line() -> str:
  """Where the numbers come from: platform, device kind and count, jax version, host CPUs."""
  device = jax.devices()[0]
  return (
    f"{device.platform} ({device.device_kind}) x {jax.device_count()}, jax {jax.__version__}, "
    f"{os.cpu_count()} host CPUs"
  )


def table(rows: Sequence[StepTiming], baseline: str) -> list[str]:
  """The timed steps as text lines, each row's step time as a multiple of the row named `baseline`."""
  by_name = {row.name: row for row in rows}
  if baseline not in by_name:
    raise ValueError(f"baseline {baseline!r} is not one of the rows {sorted(by_name)}")
  width = max(len("step"), *(len(row.name) for row in rows)) + 2
  header = (
    f"{'step':<{width}}{'images/s':>10}{'s/step':>9}{'compile s':>11}{'1st step s':>12}"
    f"{'XLA peak MiB':>14}{'device peak MiB':>17}{'x baseline':>12}"
  )
  lines = [header, "-" * len(header)]
  for row in rows:
    device = "-" if row.device_peak_bytes is None else f"{row.device_peak_bytes / MIB:,.0f}"
    lines.append(
      f"{row.name:<{width}}{row.images_per_s:>10.3f}{row.step_s:>9.3f}{row.compile_s:>11.1f}"
      f"{row.first_step_s:>12.2f}{row.memory.peak / MIB:>14,.0f}{device:>17}"
      f"{row.step_s / by_name[baseline].step_s:>12.2f}"
    )
  steps = sorted({row.steps for row in rows})
  lines.append(
    f"s/step: median of {'/'.join(map(str, steps))} steps after the first; x baseline: s/step over that of "
    f"'{baseline}', measured in this run; the step is the trainer's Experiment.jit_train_step"
  )
  return lines


def print_table(rows: Sequence[StepTiming], baseline: str) -> None:
  """Prints `table(rows, baseline)`."""
  print("\n".join(table(rows, baseline)), flush=True)
