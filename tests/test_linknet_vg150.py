"""LinkNet trains and evaluates on a fake VG-150 prepared by the real builder, with VG-150's pp strings (592 px)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from test_vg150_builder import NUM_VAL, _write_fake_vg150

from jaxgraphs.data import sources
from jaxgraphs.data.builders import vg150
from training_helpers import config_file
from jaxgraphs.training import trainer


@pytest.fixture(scope="module")
def fake_vg150(tmp_path_factory):
  """The fake VG-150 of test_vg150_builder, prepared with a 2-image val split."""
  root = tmp_path_factory.mktemp("vg150")
  manual_dir = root / "manual"
  manual_dir.mkdir()
  _write_fake_vg150(manual_dir)
  builder = vg150.Vg150(config=vg150.Vg150Config(name="test_val2", num_val_images=NUM_VAL), data_dir=str(root / "data"))
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  return builder


@pytest.mark.slow  # ~3.5 min each on a shared 2-core CPU (compiling 592 px steps and the 64 x 64-pair evaluation)
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_train_step_and_evaluation_on_fake_vg150(fake_vg150, monkeypatch, tmp_path, mode):
  monkeypatch.setitem(
    sources.SOURCES, "vg150", dataclasses.replace(sources.SOURCES["vg150"], prepare=lambda data_dir: fake_vg150)
  )
  config = config_file(f"linknet_vg_{mode}")
  config.model.detector_run = ""  # no detector run here: random weights (allow_random_frozen_backbone below)
  config.model.backbone_kwargs = {"width": 4, "fc_width": 32, "stage_sizes": (1, 1, 1, 1, 1)}
  config.model.update(embed_dim=8, hidden_dim=16, geometry_dim=8, union_chunk_size=2048)
  config.batch_size = 2
  config.total_steps = 1
  config.allow_random_frozen_backbone = True  # a unit test: no ImageNet weights
  config.log_every_steps = 1
  config.data.shuffle_buffer = 4
  metrics = trainer.train_and_evaluate(config, str(tmp_path))
  assert metrics[f"{mode}/num_images"] == NUM_VAL
  per_predicate = metrics[f"{mode}/per_predicate_R@100"]
  assert len(per_predicate) == 50
  # One step of a random model recalls nothing here (measured R@20 = R@50 = R@100 = 0 in both modes), so the check
  # is on the wiring: the predicates with a recall (not NaN) are exactly those of the val split's relations.
  # (Entry i is predicate i + 1; the fake dictionary's names are placeholders, the report uses VG-150's.)
  val_predicates = {
    int(p)
    for example in fake_vg150.as_dataset(split="val").as_numpy_iterator()
    for p in example["relations"]["predicate"]
  }
  recalled = {index + 1 for index, recall in enumerate(per_predicate.values()) if not np.isnan(recall)}
  assert val_predicates and recalled == val_predicates
  assert 0.0 <= metrics[f"{mode}/R@20"] <= metrics[f"{mode}/R@50"] <= metrics[f"{mode}/R@100"] <= 1.0
  # zR@K uses the builder's recorded train triplets; the fake val split has triplets unseen in train.
  assert metrics[f"{mode}/num_zero_shot_images"] >= 1
  assert metrics["num_cut_objects"] == 0 and metrics["num_cut_relations"] == 0
  with open(os.path.join(tmp_path, "eval_1.json")) as f:
    assert json.load(f)["split"] == "val"


@pytest.mark.slow  # ~2 min on a shared 2-core CPU: compiling a detector step, its evaluation, then SGDet's
def test_detector_step_then_sgdet_step_on_fake_vg150(fake_vg150, monkeypatch, tmp_path):
  monkeypatch.setitem(
    sources.SOURCES, "vg150", dataclasses.replace(sources.SOURCES["vg150"], prepare=lambda data_dir: fake_vg150)
  )
  tiny_vgg = {"width": 4, "fc_width": 32, "stage_sizes": (1, 1, 1, 1, 1)}

  def shrink(config):
    """The VG configs at tiny widths, 128 px instead of 592 (the builder, sources and pp ops are VG-150's)."""
    config.model.backbone_kwargs = dict(tiny_vgg)
    config.data.pp_train = config.data.pp_train.replace("592", "128")
    config.data.pp_eval = config.data.pp_eval.replace("592", "128")
    config.batch_size = 2
    config.total_steps = 1
    config.log_every_steps = 1
    config.data.shuffle_buffer = 4
    config.allow_random_frozen_backbone = True  # a unit test: no ImageNet weights

  detector = config_file("faster_rcnn_vg150")
  shrink(detector)
  detector.model.rpn_channels = 8
  detector_metrics = trainer.train_and_evaluate(detector, str(tmp_path / "detector"))
  assert detector_metrics["num_images"] == NUM_VAL and len(detector_metrics["per_class_AP50"]) == 150

  sgdet = config_file("linknet_vg_sgdet")
  shrink(sgdet)
  sgdet.model.update(embed_dim=8, hidden_dim=16, geometry_dim=8, union_chunk_size=2048)
  sgdet.model.detector.rpn_channels = 8
  sgdet.model.detector_run = str(tmp_path / "detector")
  metrics = trainer.train_and_evaluate(sgdet, str(tmp_path / "sgdet"))
  assert metrics["sgdet/num_images"] == NUM_VAL
  assert 0.0 <= metrics["sgdet/R@20"] <= metrics["sgdet/R@50"] <= metrics["sgdet/R@100"] <= 1.0
