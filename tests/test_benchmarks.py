"""The step benchmarks at their tiny size: each prints its table and times the trainer's own jitted train step
through benchmarks/step_timing.py (a benchmark that went back to a hand-written step fails here)."""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import pytest
from training_helpers import REPO

if REPO not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
  sys.path.insert(0, REPO)

from benchmarks import detector_step, linknet_step, rgnet_step, ssgrl_step, step_timing
from jaxgraphs.training import trainer


@pytest.fixture
def timed_steps(monkeypatch):
  """Records (experiment, timing, experiments whose own train_step was traced so far) of every step the helper
  times; `Experiment.train_step` is what `Experiment.compile` jits, so it is traced when the step is lowered."""
  traced, records = [], []
  train_step, time_train_step = trainer.Experiment.train_step, step_timing.time_train_step

  def traced_train_step(self, state, batch):
    traced.append(self)
    return train_step(self, state, batch)

  def recorded_time_train_step(experiment, state, batch, name, steps=3):
    timing = time_train_step(experiment, state, batch, name, steps)
    records.append((experiment, timing, list(traced)))
    return timing

  monkeypatch.setattr(trainer.Experiment, "train_step", traced_train_step)
  monkeypatch.setattr(step_timing, "time_train_step", recorded_time_train_step)
  return records


def check_trainer_steps(records, rows, names):
  """Each printed row is a StepTiming of an Experiment whose own train step was traced for it."""
  assert [row.name for row in rows] == names
  assert [timing for _, timing, _ in records] == rows
  for experiment, timing, traced in records:
    assert isinstance(experiment, trainer.Experiment), timing.name
    assert any(other is experiment for other in traced), f"{timing.name}: not the trainer's train step"
    assert timing.steps == 1 and timing.step_s > 0 and timing.compile_s > 0 and timing.memory.peak > 0
  # One experiment per row: the rows compare different configs, not one step timed twice.
  assert len({id(experiment) for experiment, _, _ in records}) == len(rows)


def table_rows(output: str, names) -> dict[str, list[str]]:
  """The table lines of `output` that start with one of `names`, split into columns after the name."""
  lines = {}
  for line in output.splitlines():
    for name in names:
      if line.startswith(name + "  "):
        lines[name] = line[len(name) :].split()
  return lines


def check_table(output: str, names, baseline: str):
  """The helper's table is printed with every row, and the baseline's ratio column reads 1.00."""
  assert "step_s" not in output and f"over that of '{baseline}'" in output
  rows = table_rows(output, names)
  assert sorted(rows) == sorted(names), output
  assert all(len(columns) == 7 for columns in rows.values()), output
  assert rows[baseline][-1] == "1.00"


@pytest.mark.parametrize("module", [ssgrl_step, rgnet_step, linknet_step, detector_step], ids=lambda m: m.__name__)
def test_step_benchmarks_build_experiments_and_write_no_step_of_their_own(module):
  # The in-process runs below check RGNet and LinkNet end to end; SSGRL's three tiny experiments take minutes
  # to compile, so for all of them this reads the source: no loss-and-update code of their own (a plain
  # `jax.grad` of the SSGRL head alone is its backbone/head time split, not a train step; detector_step's torch
  # optimiser is its torchvision baseline's).
  import ast
  import inspect

  tree = ast.parse(inspect.getsource(module))
  names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
  assert "time_train_step" in names or "measure" in names, "must time through benchmarks/step_timing.py"
  assert not names & {"value_and_grad", "apply_updates", "adam", "adamw", "sgd", "build_optimizer"}, names
  imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
  assert "step_timing" in imported


# Benchmarks that take a train step of their own instead of the trainer's, and why.
OWN_STEP = {
  # It must run on a bare accelerator image with nothing but jax, flax, optax and numpy: the trainer's data
  # pipeline imports TensorFlow, so it builds the models and the tasks' losses directly (its docstring says how
  # its step differs from the trainer's).
  "accelerator.py": "runs without TensorFlow, so without jaxgraphs.training.trainer",
}


def test_only_the_exempt_benchmarks_write_a_step_of_their_own():
  import ast

  folder = os.path.join(REPO, "benchmarks")
  own = set()
  for name in sorted(os.listdir(folder)):
    if name.endswith("_step.py") or name in OWN_STEP:  # the train-step benchmarks (not the learnability runs)
      with open(os.path.join(folder, name)) as f:
        tree = ast.parse(f.read())
      names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
      if "value_and_grad" in names and "apply_updates" in names:
        own.add(name)
  assert own == set(OWN_STEP), "a step benchmark takes a step of its own; time the trainer's through step_timing"
  # Every other step benchmark is one that the source check above reads.
  checked = {
    f"{module.__name__.rsplit('.', 1)[-1]}.py" for module in (ssgrl_step, rgnet_step, linknet_step, detector_step)
  }
  assert {name for name in os.listdir(folder) if name.endswith("_step.py")} == checked


@pytest.mark.slow  # ~1.5-3 min on 2 busy cores: eight tiny steps compiled
def test_accelerator_quick_measures_every_model_without_tensorflow(tmp_path):
  import json
  import subprocess

  out = tmp_path / "rows.json"
  # A fresh process, so that sys.modules at its exit tells whether anything imported TensorFlow.
  script = (
    "import runpy, sys\n"
    f"sys.argv = ['accelerator.py', '--quick', '--no_torch', '--dtypes=bfloat16', '--json={out}']\n"
    "runpy.run_path('benchmarks/accelerator.py', run_name='__main__')\n"
    "print('TENSORFLOW_IMPORTED', 'tensorflow' in sys.modules)\n"
  )
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  result = subprocess.run(
    [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "TENSORFLOW_IMPORTED False" in result.stdout, result.stdout
  rows = json.loads(out.read_text())
  keys = [(row["model"], row["dtype"]) for row in rows]
  # bfloat16 only: it exercises the dtype path, float32 runs in every other test (and halves this one's minute).
  assert sorted(keys) == sorted((m, "bfloat16") for m in ("rgnet", "ssgrl", "linknet", "detector"))
  for row in rows:
    assert row["framework"] == "jax"
    for key in ("images_per_s", "step_s", "trace_s", "compile_s", "peak_bytes", "flops"):
      assert np.isfinite(row[key]) and row[key] > 0, (row["model"], row["dtype"], key, row[key])
    assert np.isfinite(row["loss"])
  table = result.stdout.split("Train steps, --quick")[1]
  assert sum(line.split()[2:3] == ["jax"] for line in table.splitlines()) == len(rows)


@pytest.mark.slow  # ~1.5 min: two tiny RGNet experiments, a memory analysis each, one timed step
def test_rgnet_step_times_the_trainer_step_and_analyses_its_memory(timed_steps, capsys):
  rows = rgnet_step.main(["--tiny", "--graphs=explicit", "--steps=1", "--batch=2"])
  check_trainer_steps(timed_steps, rows, ["fcn_a_g explicit"])
  assert timed_steps[0][0].config.model.head.graph_implementation == "explicit"
  output = capsys.readouterr().out
  check_table(output, ["fcn_a_g explicit"], "fcn_a_g explicit")
  memory_rows = [line.split() for line in output.splitlines() if line.startswith("   48 ")]
  assert [row[3:5] for row in memory_rows] == [["fcn_a", "-"], ["fcn_a_g", "explicit"]]
  assert memory_rows[0][1] == "6x6" and memory_rows[1][-2] == "1.00"  # 48 px at output stride 8


@pytest.mark.slow  # ~1 min: LinkNet and the baseline at the unit tests' widths
def test_linknet_step_times_the_trainer_step_beside_its_backbone(timed_steps, capsys):
  rows = linknet_step.main(["--tiny", "--steps=1"])
  names = ["LinkNet PredCls (tiny widths)", "baseline: tiny VGG + GAP + linear (same input)"]
  check_trainer_steps(timed_steps, rows, names)
  linknet, baseline = (experiment for experiment, _, _ in timed_steps)
  assert (linknet.config.model.name, baseline.config.model.name) == ("linknet", "multilabel_classifier")
  assert baseline.config.model.backbone_kwargs.to_dict() == linknet.config.model.backbone_kwargs.to_dict()
  check_table(capsys.readouterr().out, names, names[1])


def test_table_gives_each_row_as_a_multiple_of_the_named_baseline():
  memory = step_timing.Memory(temp=2**20, arguments=2**20, peak=3 * 2**20)
  fast = step_timing.StepTiming("fast", 4, 1.0, 0.5, 0.25, 3, memory, None, 0.7)
  slow = dataclasses.replace(fast, name="slow", step_s=1.0, device_peak_bytes=5 * 2**20)
  lines = step_timing.table([fast, slow], baseline="slow")
  rows = table_rows("\n".join(lines), ["fast", "slow"])
  # images/s, s/step, compile s, 1st step s, XLA peak MiB, device peak MiB, x baseline
  assert rows["fast"] == ["16.000", "0.250", "1.0", "0.50", "3", "-", "0.25"]
  assert rows["slow"] == ["4.000", "1.000", "1.0", "0.50", "3", "5", "1.00"]
  assert fast.images_per_s == 16.0
  with pytest.raises(ValueError, match="baseline 'other' is not one of the rows"):
    step_timing.table([fast, slow], baseline="other")


@pytest.mark.slow  # two command-line processes on the tiny diagnostics, about 40 s
@pytest.mark.parametrize(
  "module, arg, columns",
  [
    ("benchmarks.rgnet_graph_collapse", "fcn_a_g,tiny", ("top-column share", "entropy", "cosine out")),
    ("benchmarks.ssgrl_head_statistics", "full,tiny", ("|h0|", "|pre-tanh|", "saturated")),
  ],
)
def test_head_statistics_benchmarks_run_on_the_initialisation(tmp_path, module, arg, columns):
  from training_helpers import run_module

  config = "configs/rgnet_diagnostic.py" if "rgnet" in module else "configs/ssgrl_diagnostic.py"
  proc = run_module(
    module, f"--config={config}", f"--arg={arg}", "--images=4", f"--config_override=data.data_dir={tmp_path}"
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  rule = next(i for i, line in enumerate(lines) if line and set(line) == {"-"})
  assert all(column in lines[rule - 1] for column in columns)
  rows = lines[rule + 1 :]
  assert rows and all(row.startswith("init") for row in rows)  # no --workdir: the initialisation only
  for row in rows:
    values = [float(value) for value in row.split()[-len(columns) :]]
    assert np.all(np.isfinite(values))


INPUT_NAMES = ("ssgrl_576", "rgnet_300", "linknet_592")  # benchmarks/input_pipeline.py's rows


@pytest.mark.slow  # ~20 s: three tiny TFDS datasets of JPEGs, one timed batch each
def test_input_pipeline_benchmark_runs_from_its_command_line_and_prints_one_row_per_input():
  import subprocess

  from training_helpers import cpu_env

  command = [sys.executable, "benchmarks/input_pipeline.py", "--num_images=8", "--batch_size=4", "--warmup=1"]
  command += ["--num_batches=1", "--rounds=1", "--no_torch"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env=cpu_env())
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [line.split("|") for line in result.stdout.splitlines() if line.split("|")[0].strip() in INPUT_NAMES]
  assert [row[0].strip() for row in rows] == list(INPUT_NAMES)
  for row in rows:
    assert float(row[2]) > 0 and row[3].strip() == "-" and row[4].strip() == "-"  # no torch column without torch
  assert "8 synthetic JPEGs per size, batch 4" in result.stdout
