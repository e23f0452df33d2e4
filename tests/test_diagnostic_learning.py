"""On each diagnostic dataset the graph variant beats its no-graph ablation, trained through the ablation tool's CLI.

Budgets are cut from the configs' to fit the suite; the thresholds sit between the two variants' results at
that budget, measured over seeds 0-2 (numbers beside each case). Both variants share data, seed and budget.
"""

import json

import pytest
from training_helpers import run_module

# name -> (config, graph variant, no-graph variant, metric, steps, graph at least, no-graph at most)
CASES = {
  # RGNet at 150 steps, accuracy of FCN-A-G / FCN-A, seeds 0-2: see the margins recorded in README (Diagnostics).
  "regions": ("configs/rgnet_diagnostic.py", "fcn_a_g", "fcn_a", "accuracy", 150, 0.58, 0.56),
  "labels": ("configs/ssgrl_diagnostic.py", "full", "without_si", "mAP_hidden", 150, None, None),
  "objects": ("configs/linknet_diagnostic.py", "predcls", "predcls;rem=0;gcem=0", "predcls/R@50", 150, None, None),
}


@pytest.mark.slow  # 1.5-2 min of CPU each: two short trainings and evaluations
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_graph_variant_beats_its_no_graph_ablation(name, tmp_path):
  config, graph, ablation, metric, steps, graph_min, ablation_max = CASES[name]
  proc = run_module(
    "jaxgraphs.tools.ablations",
    f"--config={config}",
    f"--variants={graph},{ablation}",
    "--seeds=0",
    f"--metrics={metric}",
    f"--root={tmp_path / 'runs'}",
    f"--override=total_steps={steps}",
    f"--override=eval_every_steps={steps}",
    f"--override=checkpoint.every_steps={steps}",
    f"--override=data.data_dir={tmp_path / 'tfds'}",
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  numbers = json.loads((tmp_path / "runs" / "table.json").read_text())
  with_graph = numbers[graph][metric]["mean"]
  without_graph = numbers[ablation.replace(";", ",")][metric]["mean"]
  assert with_graph >= graph_min and without_graph <= ablation_max, (with_graph, without_graph)
