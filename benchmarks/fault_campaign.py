r"""What survives what: repeated faults on the built-in baseline, each compared with an uninterrupted run.

  JAX_PLATFORMS=cpu python -m benchmarks.fault_campaign --trials=3 [--workdir=/tmp/jaxgraphs/faults]

The baseline is one uninterrupted run of `configs/baseline_shapes.py:tiny` (24 steps, a checkpoint every 4
steps, measured in the same campaign). Each fault is applied `--trials` times at seeded random points; a trial
succeeds when the run, restarted with the same command until it finishes, ends with every saved array equal to
the baseline's (bit for bit), and the command line said what the fault expects (exit code, one `error:` line,
the fallback message). The faults:

- SIGKILL once the run has written a seeded random number of checkpoints (1-4);
- SIGKILL while an asynchronous save is in flight (as soon as Orbax's temporary step folder appears);
- the final checkpoint truncated, or 4 KB of random bytes written into it, then the run restarted;
- SIGTERM at a random moment of training: exit 75 after saving, then the resumed run.

A table of tries and outcomes is printed at the end.
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ("--config.total_steps=24", "--config.checkpoint.every_steps=4", "--config.checkpoint.keep=10")


def command(workdir: str, *extra: str) -> list[str]:
  """The campaign's `python -m jaxgraphs.main` command line."""
  return [
    sys.executable,
    "-m",
    "jaxgraphs.main",
    "--config=configs/baseline_shapes.py:tiny",
    f"--workdir={workdir}",
    *STEPS,
    *extra,
  ]


def environment(cache: str) -> dict[str, str]:
  """CPU, one device, a shared compilation cache so that restarts skip most compiling."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", JAX_COMPILATION_CACHE_DIR=cache)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def run_to_end(workdir: str, env, *extra: str) -> subprocess.CompletedProcess:
  """Runs (or resumes) to completion and returns the finished process (output merged)."""
  return subprocess.run(command(workdir, *extra), cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)


def arrays(workdir: str, step: int) -> dict[str, np.ndarray]:
  """Every saved array of one checkpoint, by path."""
  import jax
  import orbax.checkpoint as ocp

  from jaxgraphs.training.tree_paths import path_strings

  tree = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))
  return {p: np.asarray(v) for p, v in zip(jax.tree.leaves(path_strings(tree)), jax.tree.leaves(tree))}


def equal_to(baseline: dict[str, np.ndarray], workdir: str) -> bool:
  """Whether the run's final checkpoint equals the baseline's on every array."""
  final = arrays(workdir, 24)
  return final.keys() == baseline.keys() and all(np.array_equal(final[k], baseline[k]) for k in baseline)


def steps_on_disk(workdir: str) -> list[int]:
  """Complete checkpoint steps of a run."""
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(folder) else []


def kill_when(workdir: str, env, ready) -> None:
  """Starts the run and SIGKILLs it once `ready()` is true (or when it ends by itself)."""
  proc = subprocess.Popen(command(workdir), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  while proc.poll() is None and not ready():
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()


def trial_kill_after_checkpoints(workdir, env, rng, baseline) -> tuple[bool, str]:
  """SIGKILL after a random number of checkpoints, then resume."""
  count = rng.randint(1, 4)
  kill_when(workdir, env, lambda: len(steps_on_disk(workdir)) >= count)
  kept = steps_on_disk(workdir)
  proc = run_to_end(workdir, env)
  return proc.returncode == 0 and equal_to(baseline, workdir), f"killed with checkpoints {kept}"


def trial_kill_during_save(workdir, env, rng, baseline) -> tuple[bool, str]:
  """SIGKILL as soon as a temporary (unfinished) step folder appears, then resume."""
  pattern = os.path.join(workdir, "checkpoints", "*.orbax-checkpoint-tmp*")
  skip = rng.randint(0, 3)  # which save to interrupt
  seen = set()

  def saving():
    seen.update(os.path.basename(p).split(".")[0] for p in glob.glob(pattern))
    return len(seen) > skip

  kill_when(workdir, env, saving)
  mid_save = bool(glob.glob(pattern))
  proc = run_to_end(workdir, env)
  return proc.returncode == 0 and equal_to(baseline, workdir), f"mid-save: {mid_save}, kept {steps_on_disk(workdir)}"


def trial_corrupt_latest(workdir, env, rng, baseline) -> tuple[bool, str]:
  """Train to the end, damage the final step's largest data file, rerun: it must fall back to step 20 and redo
  steps 21-24."""
  run_to_end(workdir, env)
  files = [f for f in glob.glob(os.path.join(workdir, "checkpoints", "24", "state", "**", "*"), recursive=True)]
  data = max((f for f in files if os.path.isfile(f)), key=os.path.getsize)
  how = rng.choice(["truncated", "overwritten"])
  if how == "truncated":
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) // 2)
  else:
    with open(data, "r+b") as f:
      f.seek(rng.randint(0, max(0, os.path.getsize(data) - 4096)))
      f.write(random.Random(rng.random()).randbytes(4096))
  proc = run_to_end(workdir, env)
  fell_back = "step 24 was corrupt" in proc.stderr + proc.stdout and os.path.isdir(
    os.path.join(workdir, "checkpoints", "corrupt", "24")
  )
  return proc.returncode == 0 and fell_back and equal_to(baseline, workdir), f"{how}, fell back: {fell_back}"


def trial_sigterm(workdir, env, rng, baseline) -> tuple[bool, str]:
  """SIGTERM a random number of seconds after the first step started compiling: exit 75, then resume."""
  proc = subprocess.Popen(
    command(workdir), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if "Compiling the train step" in line:
      time.sleep(rng.uniform(0.0, 3.0))
      proc.send_signal(signal.SIGTERM)
      break
  lines += proc.stdout.readlines()
  code = proc.wait()
  errors = [line for line in lines if line.startswith("error:")]
  stopped = code == 75 and len(errors) == 1 and "stopped by SIGTERM" in errors[0]
  finished_anyway = code == 0  # the signal came after the last step: nothing to resume
  resumed = run_to_end(workdir, env)
  ok = (stopped or finished_anyway) and resumed.returncode == 0 and equal_to(baseline, workdir)
  return ok, f"exit {code}" + (f", {errors[0].strip()[:60]}" if errors else "")


FAULTS = {
  "SIGKILL after 1-4 checkpoints": trial_kill_after_checkpoints,
  "SIGKILL during an asynchronous save": trial_kill_during_save,
  "latest checkpoint truncated / overwritten": trial_corrupt_latest,
  "SIGTERM (preemption) during training": trial_sigterm,
}


def main(argv=None) -> dict[str, tuple[int, int]]:
  """Runs the campaign and prints the table; returns {fault: (successes, tries)}."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--trials", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workdir", default="/tmp/jaxgraphs/faults")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir of the built-in data (default: TFDS's)")
  args = parser.parse_args(argv)
  shutil.rmtree(args.workdir, ignore_errors=True)
  env = environment(os.path.join(args.workdir, "compilation_cache"))
  if args.data_dir:
    env["TFDS_DATA_DIR"] = args.data_dir  # TFDS's default data dir, so every command of the campaign reads it
  rng = random.Random(args.seed)
  start = time.time()
  reference = os.path.join(args.workdir, "baseline")
  proc = run_to_end(reference, env)
  if proc.returncode:
    raise SystemExit(f"the uninterrupted baseline failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
  baseline = arrays(reference, 24)
  print(f"baseline: uninterrupted run, {len(baseline)} arrays at step 24 ({time.time() - start:.0f} s)", flush=True)
  results = {}
  for fault, trial in FAULTS.items():
    results[fault] = [0, 0]
    for t in range(args.trials):
      workdir = os.path.join(args.workdir, f"{trial.__name__}_{t}")
      ok, detail = trial(workdir, env, rng, baseline)
      results[fault][0] += ok
      results[fault][1] += 1
      print(f"{fault} #{t + 1}: {'equal to the baseline' if ok else 'FAILED'} ({detail})", flush=True)
  print(f"\n{'fault':<45} {'tries':>5} {'final state equal to the uninterrupted baseline':>48}")
  for fault, (good, tries) in results.items():
    print(f"{fault:<45} {tries:>5} {good:>48}")
  print(f"({time.time() - start:.0f} s in all)")
  return {k: tuple(v) for k, v in results.items()}


if __name__ == "__main__":
  main()
