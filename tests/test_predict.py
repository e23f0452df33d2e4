"""`python -m jaxgraphs.predict`: checkpoint paths, unreadable images, and a real run on a tiny SSGRL checkpoint."""

import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from jaxgraphs import predict
from jaxgraphs.data import transforms
from jaxgraphs.training import run_dirs
from training_helpers import REPO, cpu_env, main_command, run_module


def make_workdir(root, steps=(2, 4)):
  for step in steps:
    os.makedirs(os.path.join(root, "checkpoints", str(step)))
  return str(root)


def test_checkpoint_paths_resolve_to_workdir_subdir_and_step(tmp_path):
  workdir = make_workdir(tmp_path / "run")
  os.makedirs(os.path.join(workdir, "checkpoints_best", "4"))
  assert run_dirs.resolve_checkpoint(workdir) == (workdir, "checkpoints", None)
  assert run_dirs.resolve_checkpoint(os.path.join(workdir, "checkpoints")) == (workdir, "checkpoints", None)
  assert run_dirs.resolve_checkpoint(os.path.join(workdir, "checkpoints_best")) == (workdir, "checkpoints_best", None)
  assert run_dirs.resolve_checkpoint(os.path.join(workdir, "checkpoints", "2")) == (workdir, "checkpoints", 2)
  with pytest.raises(FileNotFoundError, match="no checkpoint there"):
    run_dirs.resolve_checkpoint(str(tmp_path / "elsewhere"))


def test_config_json_is_required_without_config(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json does not exist; pass --config="):
    run_dirs.config_from_workdir(str(tmp_path))


def test_unreadable_images_raise_one_clear_reason(tmp_path):
  preprocess = transforms.build("decode|resize(8)|normalize_imagenet")
  good = tmp_path / "good.png"
  Image.fromarray(np.full((5, 7, 3), 200, np.uint8)).save(good)
  (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
  assert predict.read_image(str(good), preprocess).shape == (8, 8, 3)
  with pytest.raises(ValueError, match=r"^not a decodable image"):
    predict.read_image(str(tmp_path / "bad.jpg"), preprocess)
  with pytest.raises(ValueError, match=r"^cannot open \(No such file or directory\)"):
    predict.read_image(str(tmp_path / "missing.png"), preprocess)


def test_picture_names_are_numbered_when_stems_repeat(tmp_path):
  taken = set()
  first = predict.picture_path(str(tmp_path), "/a/cat.jpg", "attention_top3", taken)
  second = predict.picture_path(str(tmp_path), "/b/cat.png", "attention_top3", taken)
  assert os.path.basename(first) == "cat_attention_top3.png"
  assert os.path.basename(second) == "cat-2_attention_top3.png"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A 2-step SSGRL run on builtin_shapes/tiny and two of its test images."""
  root = tmp_path_factory.mktemp("predict")
  data_dir, workdir = str(root / "tfds"), str(root / "run")
  from jaxgraphs.data.builders import shapes

  builder = shapes.ensure_prepared("tiny", data_dir)
  images = []
  for index, example in enumerate(builder.as_dataset(split="test").take(2).as_numpy_iterator()):
    images.append(str(root / f"shape{index}.png"))
    Image.fromarray(example["image"]).save(images[-1])
  command = main_command(
    workdir,
    data_dir,
    "--config.total_steps=2",
    "--config.model.joint_dim=16",
    "--config.model.attention_hidden_dim=16",
    config="configs/ssgrl_shapes.py",
  )
  proc = subprocess.run(
    command, cwd=REPO, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
  )
  assert proc.returncode == 0, proc.stdout[-4000:]
  return root, workdir, images


def run_predict(*args):
  return run_module("jaxgraphs.predict", *args, timeout=900)


@pytest.mark.slow
def test_predict_prints_json_writes_attention_and_reports_bad_images(trained):
  root, workdir, images = trained
  bad, missing = root / "broken.jpg", str(root / "missing.png")
  bad.write_bytes(b"\xff\xd8\xff garbage")
  out_dir = str(root / "pictures")
  proc = run_predict(f"--checkpoint={workdir}", f"--out_dir={out_dir}", images[0], str(bad), missing, images[1])
  assert proc.returncode == 1
  errors = [line for line in proc.stderr.splitlines() if line.startswith(str(root))]
  assert errors == [
    f"{bad}: not a decodable image (JPEG, PNG, GIF, BMP or WebP)",
    f"{missing}: cannot open (No such file or directory)",
  ]
  results = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [r["image"] for r in results] == images
  from jaxgraphs.data.builders import shapes

  for result in results:
    probabilities = [entry["probability"] for entry in result["top5"]]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 < p < 1 for p in probabilities)
    assert {entry["label"] for entry in result["top5"]} <= set(shapes.CATEGORY_NAMES)
    assert all(entry["probability"] >= 0.5 for entry in result["labels"])
  for index in range(2):
    picture = np.asarray(Image.open(os.path.join(out_dir, f"shape{index}_attention_top3.png")))
    # Drawn over the 48 px photo (not the 32 px network input) enlarged 6x: the photo and 3 attention panels
    # side by side, 4 px apart, a title above, captions and a colour bar below.
    assert picture.shape[1] == 4 * 288 + 3 * 4 and picture.shape[0] > 288 + 3 * 16
    enlarged = np.asarray(Image.open(images[index])).repeat(6, axis=0).repeat(6, axis=1)
    tops = [top for top in range(picture.shape[0] - 287) if np.array_equal(picture[top, :288], enlarged[0])]
    assert any(np.array_equal(picture[top : top + 288, :288], enlarged) for top in tops)

  # The same checkpoint named as a step folder with the config file gives the same predictions.
  again = run_predict(
    "--config=configs/ssgrl_shapes.py",
    f"--checkpoint={workdir}/checkpoints/2",
    f"--config.data.data_dir={root / 'tfds'}",
    "--config.data.source=builtin_shapes/tiny",
    "--config.model.backbone_kwargs.width=4",
    "--config.model.joint_dim=16",
    "--config.model.attention_hidden_dim=16",
    "--config.batch_size=8",
    *images,
  )
  assert again.returncode == 0, again.stderr[-3000:]
  assert [json.loads(line) for line in again.stdout.splitlines()] == results
