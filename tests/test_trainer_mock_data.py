"""One real train step (and an evaluation) on COCO 2014 and VOC 2007 served by `tfds.testing.mock_data`."""

import numpy as np
import pytest

from mock_tfds import mock_data

from training_helpers import one_step_and_evaluation


@pytest.mark.slow  # compiles a whole model's train step (20-40 s with a cold cache)
@pytest.mark.parametrize(
  "config_file,source,num_classes",
  [
    ("baseline_coco", "coco/2014", 80),
    ("baseline_voc2007", "voc/2007", 20),
  ],
)
def test_one_train_step_on_mock_data(tmp_path, config_file, source, num_classes):
  from training_helpers import config_file as load_config_file

  config = load_config_file(config_file)
  assert config.data.source == source
  config.model.backbone = "resnet18"
  config.model.backbone_kwargs = {"width": 4}
  config.batch_size = 4
  config.total_steps = 1
  config.log_every_steps = 1
  config.data.shuffle_buffer = 4
  # mock_data swaps TFDS's file system; Orbax's background save thread must not outlive it.
  config.checkpoint.async_save = False
  # The papers' 576-pixel crops, shrunk: the transform chain is the same, only the sizes differ.
  config.data.pp_train = "decode|resize(40)|random_crop_choice((40, 36, 32))|resize(32)|flip_lr|normalize_imagenet"
  config.data.pp_eval = "decode|resize(40)|center_crop(32)|normalize_imagenet"
  # In-process step + evaluation, no checkpoints: under mock_data TFDS remaps file paths, and Orbax's checkpoint
  # folder then lands in (and vanishes with) its temporary root in some runs. Checkpoints are tested on real files.
  with mock_data(num_examples=6):
    _, step_metrics, metrics, _ = one_step_and_evaluation(config)
  assert np.isfinite(float(step_metrics["loss"]))
  assert len(metrics["per_class_AP"]) == num_classes
  assert np.isfinite(metrics["OF1"])
