r"""A paper's ablation table over seeds: train every (variant, seed) run, then print mean +- std per variant.

  python -m jaxgraphs.tools.ablations --config=configs/rgnet_diagnostic.py --variants=fcn_a_g,fcn_a \
      --seeds=0,1,2 --metrics=accuracy,AP --root=/tmp/jaxgraphs/rgnet_diagnostic_table

Each run is `python -m jaxgraphs.main --config=CONFIG:VARIANT --config.seed=SEED --workdir=ROOT/VARIANT/seed_SEED`
(plus any `--override=key=value`), in its own process and one after the other. A run whose workdir already
holds its final evaluation is not trained again, so an interrupted table resumes where it stopped (an
interrupted run resumes from its last checkpoint). Variants are config arguments with ';' for the ',' inside
one (the list itself is comma-separated): `fcn_a`, `predcls;rem=0`; `--suffix=,tiny` is appended to every one. The table (markdown: mean +- sample standard deviation over the
seeds and each seed's value, metrics x 100 when they are fractions) is printed and written to ROOT/table.md,
the numbers to ROOT/table.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

from jaxgraphs.errors import ConfigError

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Config file (e.g. configs/rgnet_diagnostic.py), without ':ARG'.")
flags.DEFINE_list("variants", None, "Config arguments, one per table row; ';' stands for ',' within one.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "config.seed of each run.")
flags.DEFINE_list("metrics", None, "Eval metrics to tabulate (keys of the run's eval JSON).")
flags.DEFINE_string("root", None, "Directory of the runs (ROOT/VARIANT/seed_N) and of table.md / table.json.")
flags.DEFINE_string("suffix", "", "Appended to every variant's config argument, e.g. ',tiny'.")
flags.DEFINE_multi_string("override", [], "key=value passed to every run as --config.key=value.")
flags.DEFINE_boolean("table_only", False, "Tabulate the runs already finished; train nothing.")


def run_dir(root: str, variant: str, seed: int) -> str:
  """ROOT/VARIANT/seed_SEED with the variant's ',' and '=' made file-name safe."""
  safe = variant.replace(",", "+").replace("=", "-") or "default"
  return os.path.join(root, safe, f"seed_{seed}")


def final_metrics(workdir: str) -> dict | None:
  """The eval JSON of the run's last evaluated step, or None when it has none."""
  if not os.path.isdir(workdir):
    return None
  steps = [int(name[5:-5]) for name in os.listdir(workdir) if name.startswith("eval_") and name[5:-5].isdigit()]
  if not steps:
    return None
  with open(os.path.join(workdir, f"eval_{max(steps)}.json")) as f:
    return json.load(f)


def _finished(workdir: str) -> bool:
  """True when the run evaluated at its config's total_steps."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      total_steps = json.load(f)["total_steps"]
  except (OSError, KeyError, ValueError):
    return False
  return os.path.exists(os.path.join(workdir, f"eval_{total_steps}.json"))


def train(config: str, variant: str, seed: int, workdir: str, overrides: list[str]) -> None:
  """Runs one training to the end in a child process; raises naming the command when it fails."""
  command = [
    sys.executable,
    "-m",
    "jaxgraphs.main",
    f"--config={config}:{variant}" if variant else f"--config={config}",
    f"--config.seed={seed}",
    f"--workdir={workdir}",
    *[f"--config.{override}" for override in overrides],
  ]
  start = time.perf_counter()
  print(f"[ablations] {' '.join(command[1:])}", flush=True)
  result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  if result.returncode != 0:
    raise RuntimeError(f"run failed (exit {result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
  print(f"[ablations]   done in {time.perf_counter() - start:.0f} s", flush=True)


def summarise(values: list[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (0 for one value)."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def table(root: str, variants: list[str], seeds: list[int], metrics: list[str], suffix: str = "") -> tuple[str, dict]:
  """The markdown table and its numbers over the finished runs (missing runs are left out and named)."""
  numbers: dict = {}
  lines = [
    "| variant | " + " | ".join(metrics) + " | runs |",
    "|---|" + "---:|" * len(metrics) + "---|",
  ]
  for variant in variants:
    found = {seed: final_metrics(run_dir(root, variant + suffix, seed)) for seed in seeds}
    found = {seed: m for seed, m in found.items() if m is not None}
    row = {}
    cells = []
    for metric in metrics:
      values = [float(m[metric]) for m in found.values() if metric in m]
      if not values:
        cells.append("-")
        continue
      scale = 100.0 if all(0.0 <= v <= 1.0 for v in values) else 1.0
      mean, std = summarise(values)
      row[metric] = {"mean": mean, "std": std, "per_seed": dict(zip(map(str, found), values))}
      cells.append(f"{scale * mean:.1f} ± {scale * std:.1f} ({', '.join(f'{scale * v:.1f}' for v in values)})")
    numbers[variant] = row
    lines.append(f"| {variant or 'default'} | " + " | ".join(cells) + f" | seeds {','.join(map(str, found))} |")
  return "\n".join(lines), numbers


def main(argv):
  del argv
  for name in ("config", "variants", "metrics", "root"):
    if not getattr(FLAGS, name):
      raise ConfigError(f"--{name} is required (python -m jaxgraphs.tools.ablations --help)")
  if ":" in os.path.basename(FLAGS.config):
    raise ConfigError(f"--config={FLAGS.config!r}: give the file alone; rows come from --variants")
  seeds = [int(seed) for seed in FLAGS.seeds]
  variants = [variant.replace(";", ",") for variant in FLAGS.variants]
  if not FLAGS.table_only:
    for seed in seeds:  # seed-major: an early stop leaves whole seeds of every row
      for variant in variants:
        workdir = run_dir(FLAGS.root, variant + FLAGS.suffix, seed)
        if _finished(workdir):
          print(f"[ablations] {workdir}: finished, not trained again", flush=True)
          continue
        train(FLAGS.config, variant + FLAGS.suffix, seed, workdir, FLAGS.override)
  text, numbers = table(FLAGS.root, variants, seeds, FLAGS.metrics, FLAGS.suffix)
  os.makedirs(FLAGS.root, exist_ok=True)
  with open(os.path.join(FLAGS.root, "table.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(FLAGS.root, "table.json"), "w") as f:
    json.dump(numbers, f, indent=2)
  print(text)


if __name__ == "__main__":
  from jaxgraphs.cli import run

  run(main)
