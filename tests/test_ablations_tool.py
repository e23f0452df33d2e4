"""`python -m jaxgraphs.tools.ablations`: the table over seeds, resuming, and its errors (no training here)."""

import json
import os

import numpy as np
from training_helpers import run_module

from jaxgraphs.tools import ablations


def fake_run(root, variant, seed, total_steps, metrics):
  workdir = ablations.run_dir(root, variant, seed)
  os.makedirs(workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"total_steps": total_steps}, f)
  with open(os.path.join(workdir, f"eval_{total_steps}.json"), "w") as f:
    json.dump(metrics, f)


def test_table_gives_mean_and_sample_std_over_seeds_and_names_the_runs(tmp_path):
  root = str(tmp_path)
  values = {0: 0.61, 1: 0.92, 2: 0.74}
  for seed, value in values.items():
    fake_run(root, "fcn_a_g", seed, 10, {"accuracy": value, "loss": 3.0 + seed})
  fake_run(root, "predcls,rem=0", 0, 10, {"accuracy": 0.5, "loss": 2.0})
  text, numbers = ablations.table(root, ["fcn_a_g", "predcls,rem=0"], [0, 1, 2], ["accuracy", "loss"])
  expected = np.array(list(values.values()))
  assert numbers["fcn_a_g"]["accuracy"]["mean"] == np.mean(expected)
  assert numbers["fcn_a_g"]["accuracy"]["std"] == np.std(expected, ddof=1)
  # Fractions are printed x 100, other metrics as they are; a row says which seeds it has.
  assert "| fcn_a_g | 75.7 ± 15.6 (61.0, 92.0, 74.0) | 4.0 ± 1.0 (3.0, 4.0, 5.0) | seeds 0,1,2 |" in text
  assert "| predcls,rem=0 | 50.0 ± 0.0 (50.0) | 2.0 ± 0.0 (2.0) | seeds 0 |" in text


def test_finished_runs_are_not_trained_again_and_the_table_is_written(tmp_path):
  for seed in (0, 1):
    fake_run(str(tmp_path), "fcn_a", seed, 5, {"accuracy": 0.5 + 0.1 * seed})
  proc = run_module(
    "jaxgraphs.tools.ablations",
    "--config=configs/rgnet_diagnostic.py",
    "--variants=fcn_a",
    "--seeds=0,1",
    "--metrics=accuracy",
    f"--root={tmp_path}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.count("finished, not trained again") == 2
  assert "| fcn_a | 55.0 ± 7.1 (50.0, 60.0) | seeds 0,1 |" in proc.stdout
  assert json.loads((tmp_path / "table.json").read_text())["fcn_a"]["accuracy"]["per_seed"] == {"0": 0.5, "1": 0.6}
  assert (tmp_path / "table.md").read_text().strip() in proc.stdout


def test_missing_flags_and_an_argument_in_the_config_path_are_config_errors(tmp_path):
  proc = run_module("jaxgraphs.tools.ablations", "--config=configs/rgnet_diagnostic.py", f"--root={tmp_path}")
  assert proc.returncode == 2 and "--variants is required" in proc.stderr
  proc = run_module(
    "jaxgraphs.tools.ablations",
    "--config=configs/rgnet_diagnostic.py:fcn",
    "--variants=fcn",
    "--metrics=accuracy",
    f"--root={tmp_path}",
  )
  assert proc.returncode == 2 and "give the file alone" in proc.stderr
