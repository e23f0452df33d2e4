"""Running the real command line in a subprocess and reading what it leaves in the workdir."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_file(name: str, arg: str | None = None):
  """get_config(arg) of configs/<name>.py, through the library's one config loader."""
  from jaxgraphs.configs.common import load_config

  return load_config(os.path.join(REPO, "configs", f"{name}.py"), arg)


def main_command(workdir: str, data_dir: str, *overrides: str, config: str = "configs/baseline_shapes.py"):
  """The `python -m jaxgraphs.main` argv for a run of `config` at its ':tiny' size (32 px data, base width 4)."""
  return [
    sys.executable,
    "-m",
    "jaxgraphs.main",
    f"--config={config}{',' if ':' in config else ':'}tiny",
    f"--workdir={workdir}",
    f"--config.data.data_dir={data_dir}",
    *overrides,
  ]


def cpu_env(devices: int = 1) -> dict[str, str]:
  """Environment for a CPU run with `devices` simulated devices."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def run_module(module: str, *args: str, merged: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
  """`python -m module args` from the repository on CPU; stderr kept apart from stdout unless `merged`."""
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT if merged else subprocess.PIPE,
    text=True,
    timeout=timeout,
    check=False,
  )


def run_main(
  workdir: str, data_dir: str, *overrides: str, devices: int = 1, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess:
  """Runs the command line to completion and returns it (stdout and stderr merged)."""
  proc = subprocess.run(
    main_command(workdir, data_dir, *overrides),
    cwd=REPO,
    env=cpu_env(devices),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=timeout,
  )
  if check and proc.returncode != 0:
    raise AssertionError(f"jaxgraphs.main exited {proc.returncode}:\n{proc.stdout[-6000:]}")
  return proc


def tensorboard_scalars(workdir: str) -> dict[str, dict[int, float]]:
  """Every scalar in `<workdir>/tensorboard` as {tag: {step: value}}."""
  import tensorflow as tf

  scalars: dict[str, dict[int, float]] = {}
  for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "scalars":
          scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  return scalars


def tensorboard_tags(workdir: str) -> set[str]:
  """Tags of every summary (scalars, images, text) in `<workdir>/tensorboard`."""
  import tensorflow as tf

  tags = set()
  for path in glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(v.tag for v in event.summary.value)
  return tags


def checkpoint_arrays(workdir: str, step: int, subdir: str = "checkpoints") -> dict[str, np.ndarray]:
  """The saved train state of one step as {'/'-joined path: array}, read without a target."""
  import orbax.checkpoint as ocp
  from jaxgraphs.training.tree_paths import path_strings
  import jax

  tree = ocp.StandardCheckpointer().restore(os.path.join(workdir, subdir, str(step), "state"))
  paths = jax.tree.leaves(path_strings(tree))
  return {p: np.asarray(v) for p, v in zip(paths, jax.tree.leaves(tree))}


def one_step_and_evaluation(config):
  """In-process: builds the experiment of `config`, runs one train step and evaluates; (state, step metrics,
  eval results, eval pictures). No checkpoints, so it is safe under tfds mock_data."""
  from jaxgraphs.data import pipeline
  from jaxgraphs.training import sharding, trainer

  experiment = trainer.Experiment(config)
  batches = pipeline.build_train_dataset(config.data, local_batch_size=config.batch_size, seed=0)
  state = experiment.build_state(batches.batch_spec)
  local = next(batches)
  experiment.compile()
  state, metrics = experiment.jit_train_step(state, sharding.global_batch(local, experiment.mesh))
  results, pictures = experiment.evaluate(state, pipeline.dataset_info(config.data).eval_split)
  return state, metrics, results, pictures
