"""On each diagnostic dataset the graph variant beats its no-graph ablation, trained through the ablation tool's CLI.

Budgets are cut from the configs' to fit the suite; the thresholds sit between the two variants' results at
that budget with seed 0, which the runs use (numbers beside each case; CPU runs with fixed seeds repeat exactly).
Both variants share data, seed and budget.
"""

import json

import pytest
from training_helpers import run_module

# name -> (config, graph variant, no-graph variant, metric, steps, graph at least, no-graph at most)
CASES = {
  # 150 steps, seed 0, 400 validation images: FCN-A-G 0.673, FCN-A 0.498 (chance 0.5, which FCN-A cannot beat).
  "regions": ("configs/rgnet_diagnostic.py", "fcn_a_g", "fcn_a", "accuracy", 150, 0.58, 0.56),
  # 150 steps, seed 0, 400 validation images: R@50 0.820 with the context modules, 0.404 without (at most ~0.5).
  "objects": ("configs/linknet_diagnostic.py", "predcls", "predcls;rem=0;gcem=0", "predcls/R@50", 150, 0.7, 0.56),
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
    "--override=data.eval_split=validation[:400]",  # a 2.5x shorter evaluation; the margins are wide
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  numbers = json.loads((tmp_path / "runs" / "table.json").read_text())
  with_graph = numbers[graph][metric]["mean"]
  without_graph = numbers[ablation.replace(";", ",")][metric]["mean"]
  assert with_graph >= graph_min and without_graph <= ablation_max, (with_graph, without_graph)
