"""The one train loop end to end: real command line, real pipeline, tiny network, CPU."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from training_helpers import (
  REPO,
  checkpoint_arrays,
  cpu_env,
  main_command,
  run_main,
  tensorboard_scalars,
  tensorboard_tags,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """builtin_shapes/tiny prepared once for this module."""
  path = str(tmp_path_factory.mktemp("tfds"))
  from jaxgraphs.data.builders import shapes

  shapes.ensure_prepared("tiny", path)
  return path


# The reference run: 24 uninterrupted steps on one device, read by several tests below (the resumed run and the
# 8-device run are compared with it, init_from starts from it), so that it is computed once per test worker.
STEPS = ("--config.total_steps=24", "--config.checkpoint.every_steps=4", "--config.checkpoint.keep=10")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_dir):
  """Workdir of the reference run (profiling steps 2-3; the best checkpoint by the task's metric, mAP, is kept
  because config.checkpoint.best_metric defaults to 'task')."""
  workdir = str(tmp_path_factory.mktemp("reference") / "run")
  run_main(workdir, data_dir, *STEPS, "--config.profile_steps=(2, 3)")
  return workdir


@pytest.mark.slow  # a command-line run
def test_short_run_logs_checkpoints_and_evaluates(reference_run, data_dir):
  workdir = reference_run
  assert glob.glob(os.path.join(workdir, "profile", "**", "*.xplane.pb"), recursive=True)
  scalars = tensorboard_scalars(workdir)
  assert sorted(scalars["train/loss"]) == list(range(1, 25))
  assert all(np.isfinite(v) for v in scalars["train/loss"].values())
  for tag in (
    "train/learning_rate",
    "train/steps_per_sec",
    "train/images_per_sec",
    "data/skipped_images",
    "eval/mAP",
    "eval/OF1",
  ):
    assert tag in scalars, tag
  assert "train/images" in tensorboard_tags(workdir)
  assert sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints"))) == [4, 8, 12, 16, 20, 24]
  assert os.listdir(os.path.join(workdir, "checkpoints_best")) == ["24"]
  with open(os.path.join(workdir, "checkpoints_best", "24", "meta", "metadata")) as f:
    assert json.load(f)["metric"] == "mAP"
  with open(os.path.join(workdir, "eval_24.json")) as f:
    result = json.load(f)
  assert result["split"] == "validation" and len(result["per_class_AP"]) == 12
  assert result["mAP"] == pytest.approx(scalars["eval/mAP"][24], rel=1e-6)

  # Evaluation-only mode reproduces the same numbers from the saved checkpoint.
  proc = subprocess.run(
    main_command(workdir, data_dir, *STEPS) + ["--mode=eval", "--checkpoint=24"],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  assert proc.returncode == 0, proc.stdout[-3000:]
  with open(os.path.join(workdir, "eval_validation_step24.json")) as f:
    again = json.load(f)
  assert again["mAP"] == pytest.approx(result["mAP"], abs=1e-6)


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(tmp_path, data_dir, reference_run):
  killed = str(tmp_path / "killed")
  proc = subprocess.Popen(
    main_command(killed, data_dir, *STEPS),
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  checkpoints = os.path.join(killed, "checkpoints")
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    done = [d for d in os.listdir(checkpoints) if d.isdigit()] if os.path.isdir(checkpoints) else []
    if done:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  kept = sorted(int(d) for d in os.listdir(checkpoints) if d.isdigit())
  assert kept and kept[-1] < 24, f"the run was not interrupted before its end: {kept}"

  run_main(killed, data_dir, *STEPS)
  a, b = checkpoint_arrays(reference_run, 24), checkpoint_arrays(killed, 24)
  assert a.keys() == b.keys()
  for path in a:
    np.testing.assert_array_equal(a[path], b[path], err_msg=path)


@pytest.mark.slow
def test_eight_devices_give_the_loss_of_one_and_restore_on_one(tmp_path, data_dir, reference_run):
  eight = str(tmp_path / "eight")
  run_main(eight, data_dir, *STEPS, devices=8)
  loss_one, loss_eight = tensorboard_scalars(reference_run)["train/loss"], tensorboard_scalars(eight)["train/loss"]
  np.testing.assert_allclose([loss_eight[s] for s in (1, 2, 3)], [loss_one[s] for s in (1, 2, 3)], rtol=2e-4)

  # A checkpoint written on 8 devices restores and evaluates on 1.
  proc = subprocess.run(
    main_command(eight, data_dir, *STEPS) + ["--mode=eval"],
    cwd=REPO,
    env=cpu_env(1),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  assert proc.returncode == 0, proc.stdout[-3000:]
  with open(os.path.join(eight, "eval_validation_step24.json")) as f, open(os.path.join(eight, "eval_24.json")) as g:
    assert json.load(f)["mAP"] == pytest.approx(json.load(g)["mAP"], abs=1e-4)


@pytest.mark.slow
def test_two_processes_train_together_and_agree(tmp_path, data_dir):
  workdir = str(tmp_path / "pod")
  import sys

  proc = subprocess.run(
    [
      sys.executable,
      "launch/local_multiprocess.py",
      "--num_processes=2",
      "--devices_per_process=1",
      "--",
      *main_command(workdir, data_dir, "--config.total_steps=3")[3:],
    ],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=600,
  )
  logs = [open(os.path.join(workdir, f"process_{i}.log")).read() for i in range(2)]
  assert proc.returncode == 0, proc.stdout + "\n".join(log[-3000:] for log in logs)

  def losses(log):
    return [line.split("| loss ")[1].split(" |")[0] for line in log.splitlines() if "| loss " in line]

  assert len(losses(logs[0])) == 3 and losses(logs[0]) == losses(logs[1])
  evals = [[line.split("eval at step")[1] for line in log.splitlines() if "eval at step" in line] for log in logs]
  assert evals[0] and evals[0] == evals[1]
  assert "3" in os.listdir(os.path.join(workdir, "checkpoints"))


@pytest.mark.slow  # a command-line run
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, data_dir):
  workdir = str(tmp_path / "nan")
  # An absurd learning rate overflows the weights after the first update.
  proc = run_main(
    workdir,
    data_dir,
    "--config.total_steps=6",
    "--config.checkpoint.every_steps=1",
    "--config.optimizer.learning_rate=1e38",
    "--config.optimizer.name=sgd",
    "--config.optimizer.momentum=0.0",
    check=False,
  )
  assert proc.returncode != 0
  assert "training loss became" in proc.stdout
  bad_step = int(proc.stdout.split("training loss became")[1].split("at step ")[1].split(";")[0])
  kept = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
  assert kept and kept[-1] == bad_step - 1
  assert all(np.isfinite(v).all() for v in checkpoint_arrays(workdir, kept[-1]).values())


@pytest.mark.slow  # command-line runs
@pytest.mark.parametrize(
  "overrides,expected",
  [
    (("--config.batch_size=6",), "config.batch_size=6 is not divisible by the 4 devices"),
    (("--config.data.source=imagenet_sketch",), "config.data.source: unknown source 'imagenet_sketch'"),
    (("--config.model.backbnoe=resnet50",), "--config.model.backbnoe=resnet50: config.model has no key 'backbnoe'"),
  ],
)
def test_config_mistakes_give_one_clear_line(tmp_path, data_dir, overrides, expected):
  proc = run_main(str(tmp_path / "bad"), data_dir, *overrides, devices=4, check=False)
  assert proc.returncode != 0
  assert expected in proc.stdout
  assert "Traceback" not in proc.stdout


@pytest.mark.slow  # a command-line run
def test_missing_workdir_is_one_line(data_dir):
  import sys

  proc = subprocess.run(
    [sys.executable, "-m", "jaxgraphs.main", "--config=configs/baseline_shapes.py"],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  assert proc.returncode != 0 and "--workdir is required" in proc.stdout and "Traceback" not in proc.stdout


@pytest.mark.slow  # a command-line run
def test_init_from_another_run_copies_weights_except_dont_load(tmp_path, data_dir, reference_run):
  source, target = reference_run, str(tmp_path / "target")
  # A zero learning rate keeps the loaded weights through the one step the target takes.
  run_main(
    target,
    data_dir,
    "--config.total_steps=1",
    f"--config.init_from.workdir={source}",
    "--config.init_from.dont_load=('params/classifier/.*',)",
    "--config.optimizer.learning_rate=0.0",
    "--config.seed=7",
  )
  a, b = checkpoint_arrays(source, 24), checkpoint_arrays(target, 1)
  backbone = [p for p in a if p.startswith("params/backbone/")]
  assert backbone
  for path in backbone:
    np.testing.assert_array_equal(a[path], b[path], err_msg=path)
  assert not np.array_equal(a["params/classifier/kernel"], b["params/classifier/kernel"])
  assert int(b["step"]) == 1  # the step and optimiser state are the target's own


@pytest.mark.slow  # compiles a whole model's train step (20-40 s with a cold cache)
def test_bfloat16_compute_keeps_float32_parameters(data_dir, no_implicit_transfers):
  from jaxgraphs.data import pipeline
  from jaxgraphs.training import defaults, trainer

  config = defaults.base_config()
  config.data.source, config.data.data_dir = "builtin_shapes/tiny", data_dir
  config.model.backbone, config.model.backbone_kwargs = "resnet18", {"width": 4}
  config.model.dtype, config.batch_size, config.total_steps = "bfloat16", 8, 2
  experiment = trainer.Experiment(config)
  batches = pipeline.build_train_dataset(config.data, local_batch_size=8, seed=0)
  local = next(batches)
  with jax.transfer_guard("allow"):  # building the state reads the host batch's shapes
    state = experiment.build_state(local)
  experiment.compile()
  from jaxgraphs.training import sharding

  batch = sharding.global_batch(local, experiment.mesh)
  outputs = experiment.jit_forward(state, batch)
  assert outputs["pre_logits"].dtype == jnp.float32  # pooled in float32 on purpose

  activations = jax.eval_shape(
    lambda s, b: experiment.model.apply(
      {"params": s.params, **s.model_state},
      b["image"],
      train=False,
      capture_intermediates=True,
      mutable=["intermediates"],
    )[1],
    state,
    batch,
  )
  conv_out = activations["intermediates"]["backbone"]["conv1"]["__call__"][0]
  assert conv_out.dtype == jnp.bfloat16
  state, metrics = experiment.jit_train_step(state, batch)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(state.params))
  assert np.isfinite(float(jax.device_get(metrics["loss"])))


@pytest.mark.slow
def test_quickstart_sized_run_learns_far_above_chance(tmp_path, tmp_path_factory):
  # The quickstart itself (configs/baseline_shapes.py on builtin_shapes/small), at a quarter of its budget.
  workdir, data_dir = str(tmp_path / "quick"), str(tmp_path_factory.mktemp("tfds_small"))
  import sys

  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgraphs.main",
      "--config=configs/baseline_shapes.py",
      f"--workdir={workdir}",
      f"--config.data.data_dir={data_dir}",
      "--config.total_steps=150",
      "--config.eval_every_steps=0",
      "--config.optimizer.schedule.warmup_steps=20",
    ],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stdout[-3000:]
  with open(os.path.join(workdir, "eval_150.json")) as f:
    result = json.load(f)
  # Random scores give the mean label frequency as mAP, 0.22 on this split.
  assert result["mAP"] > 0.5, result["mAP"]
  assert "Final evaluation (step 150):" in proc.stdout


def signalled_run(workdir: str, data_dir: str, signum: int) -> tuple[int, list[str]]:
  """Runs the command line and sends `signum` when the loop announces its first compilation (the SIGTERM
  handler is in place by then); returns the exit code and the output lines."""
  proc = subprocess.Popen(
    main_command(workdir, data_dir, *STEPS),
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    # A child inherits an ignored SIGINT, and Python then installs no KeyboardInterrupt handler: something in a
    # long test session (a worker process, a library) ignores SIGINT, and this run then trained through Ctrl-C.
    # A terminal's Ctrl-C reaches a process whose SIGINT is at its default; so does this one.
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
  )
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if "Compiling the train step" in line:
      proc.send_signal(signum)
      break
  lines += proc.stdout.readlines()
  return proc.wait(timeout=600), lines


@pytest.mark.slow  # two command-line runs
def test_sigterm_saves_exits_75_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path, data_dir, reference_run):
  workdir = str(tmp_path / "preempted")
  code, lines = signalled_run(workdir, data_dir, signal.SIGTERM)
  assert code == 75, "".join(lines[-20:])
  last = [line for line in lines if line.startswith("error:")]
  assert len(last) == 1 and "stopped by SIGTERM after step" in last[0], last
  stopped = int(last[0].split("after step ")[1].split(";")[0])
  kept = sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())
  assert stopped < 24 and kept[-1] == stopped

  run_main(workdir, data_dir, *STEPS)
  a, b = checkpoint_arrays(reference_run, 24), checkpoint_arrays(workdir, 24)
  assert a.keys() == b.keys()
  for path in a:
    np.testing.assert_array_equal(a[path], b[path], err_msg=path)


@pytest.mark.slow  # command-line runs
def test_finished_run_reports_its_last_eval_and_eval_mode_reads_config_json(reference_run, data_dir):
  import sys

  again = run_main(reference_run, data_dir, *STEPS)
  with open(os.path.join(reference_run, "eval_24.json")) as f:
    saved = json.load(f)
  assert "already finished at step 24" in again.stdout
  assert "Final evaluation (step 24):" in again.stdout
  assert f"mAP                      {saved['mAP']:.4f}" in again.stdout

  # No --config: the run's own config.json (its data_dir included).
  proc = subprocess.run(
    [sys.executable, "-m", "jaxgraphs.main", f"--workdir={reference_run}", "--mode=eval", "--checkpoint=8"],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stdout[-2000:]
  restored = os.path.join(reference_run, "checkpoints", "8")
  assert f"Evaluating {restored} (--checkpoint=8)" in proc.stdout
  with open(os.path.join(reference_run, "eval_validation_step8.json")) as f:
    result = json.load(f)
  assert result["checkpoint"] == restored and result["step"] == 8
  assert isinstance(result["skipped_images"], int)
  from jaxgraphs.data.sources import get_source

  assert list(result["per_class_AP"]) == list(get_source("builtin_shapes/tiny").class_names)


@pytest.mark.slow  # a command-line run
def test_ctrl_c_is_one_line_exit_130_and_says_how_to_resume(tmp_path, data_dir):
  code, lines = signalled_run(str(tmp_path / "interrupted"), data_dir, signal.SIGINT)
  assert code == 130, "".join(lines[-20:])
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and "interrupted (Ctrl-C) at step" in errors[0] and "again to resume" in errors[0]
  assert not any("Traceback" in line for line in lines)
