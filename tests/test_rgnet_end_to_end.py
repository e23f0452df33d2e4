"""RGNet end to end: a real train step and evaluation through the trainer on a fake AVA tree (the builder tests'
files), the error for an unprepared AVA, and a short command-line run on the built-in composition labels
followed by `jaxgraphs.predict` on its checkpoint."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxgraphs.data import sources
from test_rgnet_train import REPO, load_config, toy_config
from training_helpers import cpu_env, tensorboard_scalars, tensorboard_tags


@pytest.fixture(scope="module")
def fake_ava_builder(tmp_path_factory):
  """The fake AVA tree of tests/test_ava_builder.py prepared with a 2-image validation holdout."""
  from test_ava_builder import make_ava_tree
  from jaxgraphs.data.builders import ava

  manual_dir = tmp_path_factory.mktemp("ava_manual")
  make_ava_tree(manual_dir)
  builder = ava.Ava(
    config=ava.AvaConfig(name="holdout2", validation_size=2), data_dir=str(tmp_path_factory.mktemp("ava_data"))
  )
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


@pytest.mark.slow  # compiles a whole model's train step (20-40 s with a cold cache)
def test_train_step_and_evaluation_on_a_fake_ava_tree(fake_ava_builder, tmp_path, monkeypatch):
  from jaxgraphs.training import trainer

  # The 'ava' source reading this small build (the real one reads the default 2,000-image-holdout config).
  monkeypatch.setitem(
    sources.SOURCES,
    "ava_fake",
    dataclasses.replace(sources.SOURCES["ava"], tfds_name="ava/holdout2", prepare=lambda data_dir: fake_ava_builder),
  )
  config = toy_config("fcn_a_g")
  config.data = load_config("rgnet_ava").data
  config.data.source = "ava_fake"
  config.data.shuffle_buffer = 4
  # The paper's preprocessing at 32 instead of 300 px: resize, flip, scale 1.05-1.25 and crop; resize.
  config.data.pp_train = "decode|resize(32)|flip_lr|random_scale_crop(1.05, 1.25, 32)|normalize_imagenet"
  config.data.pp_eval = "decode|resize(32)|normalize_imagenet"
  config.data.eval_split = "test"
  config.batch_size = 4
  config.total_steps = 1
  config.log_every_steps = 1
  metrics = trainer.train_and_evaluate(config, str(tmp_path))
  assert metrics["num_examples"] == 3  # the fake tree's readable test images
  assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["AP"] <= 1
  with open(tmp_path / "eval_1.json") as f:
    assert json.load(f)["split"] == "test"
  assert {"train/loss", "train/accuracy", "eval/accuracy", "eval/AP", "eval/region_dependency"} <= tensorboard_tags(
    str(tmp_path)
  )


def test_unprepared_ava_names_the_prepare_command(tmp_path):
  with pytest.raises(FileNotFoundError, match="jaxgraphs.tools.prepare_dataset --dataset=ava"):
    sources.get_source("ava").builder(str(tmp_path))


@pytest.mark.slow
def test_short_command_line_run_on_builtin_composition(tmp_path):
  command = [
    sys.executable,
    "-m",
    "jaxgraphs.main",
    "--config=configs/rgnet_shapes.py:fcn_a_g,tiny",
    f"--workdir={tmp_path}",
    f"--config.data.data_dir={tmp_path / 'data'}",
    "--config.batch_size=16",
    "--config.total_steps=30",
    "--config.log_every_steps=10",
    "--config.eval_every_steps=0",
    "--config.checkpoint.every_steps=30",
  ]
  proc = subprocess.run(
    command, cwd=REPO, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
  )
  assert proc.returncode == 0, proc.stdout[-4000:]
  with open(tmp_path / "eval_30.json") as f:
    result = json.load(f)
  assert result["num_examples"] == 128 and 0 <= result["accuracy"] <= 1
  # 30 steps of the tiny model do not beat chance on validation (accuracy 0.49, AP 0.51 against 46% 'high'), but
  # the loss must leave its start: 0.722 at step 10 -> 0.695 at step 30 on CPU with these seeds (margin half that).
  losses = tensorboard_scalars(str(tmp_path))["train/loss"]
  assert losses[30] < losses[10] - 0.013
  assert "Final evaluation (step " in proc.stdout

  # jaxgraphs.predict on that run (config from its config.json): p(high) per image and the region pictures.
  image = tmp_path / "scene.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(image)
  predicted = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgraphs.predict",
      f"--checkpoint={tmp_path}",
      f"--out_dir={tmp_path / 'pictures'}",
      str(image),
    ],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    timeout=900,
  )
  assert predicted.returncode == 0, predicted.stderr[-4000:]
  line = json.loads(predicted.stdout.strip().splitlines()[-1])
  assert line["image"] == str(image) and 0 < line["p_high"] < 1 and line["label"] in ("low", "high")
  assert sorted(os.listdir(tmp_path / "pictures")) == ["scene_region_dependency.png", "scene_region_scores.png"]
  # The 48 px photo enlarged 6x, a title above, a caption and a colour bar below.
  width, height = Image.open(tmp_path / "pictures" / "scene_region_scores.png").size
  assert width == 288 and height > 288 + 3 * 16
