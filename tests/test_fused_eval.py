"""Ten-crop evaluation and fusion (jaxgraphs/tools/fused_eval.py): the crops vs NumPy, the pp rewrite, fusion
checks, and on a tiny trained SSGRL run: plain evaluation equals the trainer's, a run fused with itself is itself."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from jaxgraphs.data import transforms
from jaxgraphs.tools import fused_eval
from training_helpers import REPO, cpu_env, main_command


def test_ten_crop_matches_numpy_slices():
  fused_eval._register_ten_crop()
  image = np.arange(7 * 9 * 3, dtype=np.uint8).reshape(7, 9, 3)
  crops = transforms.build("ten_crop(4)")({"image": tf.constant(image)})["image"].numpy()
  mirrored = image[:, ::-1]
  want = []
  for source in (image, mirrored):
    # torchvision's centre: round-half-even((7 - 4) / 2) = 2 rows, (9 - 4) / 2 = 2.5 -> 2 columns.
    want += [source[:4, :4], source[:4, 5:], source[3:, :4], source[3:, 5:], source[2:6, 2:6]]
  np.testing.assert_array_equal(crops, np.stack(want))


def test_ten_crop_pp_replaces_the_single_center_crop():
  assert (
    fused_eval.ten_crop_pp("decode|resize(640)|center_crop(576)|normalize_imagenet")
    == "decode|resize(640)|ten_crop(576)|normalize_imagenet"
  )
  with pytest.raises(ValueError, match="exactly one center_crop"):
    fused_eval.ten_crop_pp("decode|resize(576)|normalize_imagenet")


def test_fusion_averages_and_refuses_different_labels():
  run = {
    "probs": np.array([[0.2, 0.8]]),
    "labels": np.array([[0.0, 1.0]]),
    "label_weights": np.ones((1, 2)),
    "mask": np.ones(1),
  }
  other = {**run, "probs": np.array([[0.4, 0.6]])}
  np.testing.assert_allclose(fused_eval.fuse([run, other], ["a", "b"])["probs"], [[0.3, 0.7]])
  with pytest.raises(ValueError, match="b and a disagree on 'labels'"):
    fused_eval.fuse([run, {**other, "labels": np.array([[1.0, 1.0]])}], ["a", "b"])


@pytest.mark.slow
def test_plain_evaluation_matches_the_trainer_and_ten_crop_runs(tmp_path):
  data_dir, workdir = str(tmp_path / "tfds"), str(tmp_path / "run")
  command = main_command(
    workdir,
    data_dir,
    # The run of test_ssgrl.py's command-line test: its compilations come from the shared cache.
    "--config.total_steps=6",
    "--config.model.joint_dim=16",
    "--config.model.attention_hidden_dim=16",
    "--config.checkpoint.every_steps=6",
    config="configs/ssgrl_shapes.py",
  )
  proc = subprocess.run(
    command, cwd=REPO, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
  )
  assert proc.returncode == 0, proc.stdout[-4000:]
  with open(os.path.join(workdir, "eval_6.json")) as f:
    trainer_metrics = json.load(f)
  # The command line on the same run: one run fused alone is that run, as the trainer evaluated it.
  out = tmp_path / "fused.json"
  proc = subprocess.run(
    [sys.executable, "-m", "jaxgraphs.tools.fused_eval", f"--workdir={workdir}", f"--out={out}"],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=900,
  )
  assert proc.returncode == 0, proc.stdout[-4000:]
  assert any(line.startswith("fused: ") and "mAP " in line for line in proc.stdout.splitlines()), proc.stdout[-2000:]
  with open(out) as f:
    written = json.load(f)
  assert written["workdirs"] == [workdir] and written["ten_crop"] is False
  for key in ("mAP", "CF1", "OF1"):
    assert written["fused"][key] == pytest.approx(trainer_metrics[key], abs=1e-6), key
  plain = fused_eval.run_probabilities(workdir)
  assert plain["probs"].shape == (128, 12) and plain["mask"].sum() == 128
  metrics = fused_eval.metrics_of(plain)
  for key in ("mAP", "CF1", "OF1"):
    assert metrics[key] == pytest.approx(trainer_metrics[key], abs=1e-6), key
  ten = fused_eval.run_probabilities(workdir, ten_crop=True)
  np.testing.assert_array_equal(ten["labels"], plain["labels"])
  assert not np.allclose(ten["probs"], plain["probs"])  # nine more views of each image
  both = fused_eval.fuse([plain, ten], ["plain", "ten"])
  np.testing.assert_allclose(both["probs"], (plain["probs"] + ten["probs"]) / 2)
