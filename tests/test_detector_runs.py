"""`python -m jaxgraphs.predict` on a Faster R-CNN run: no --boxes, detections in the photo's pixels, a picture."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from training_helpers import config_file, run_module

from jaxgraphs import predict
from jaxgraphs.errors import ConfigError
from jaxgraphs.tasks.detection import DetectionTask
from jaxgraphs.tasks.input_frame import photo_frame

CLASS_NAMES = ("__background__", "red circle", "blue square")


def test_detection_boxes_map_to_inclusive_photo_pixels():
  """A box up to the input's last real pixel ends at the photo's last pixel, wherever the photo's size."""
  pp_eval = config_file("faster_rcnn_shapes", "tiny").data.pp_eval
  task = DetectionTask(CLASS_NAMES)
  # 100 x 80 -> 64 x 51 (long side 64), padded to 64 x 64; the detector clips to the 64 x 51 real pixels.
  outputs = {
    "detection_boxes": np.array([[[0.0, 0.0, 63.0, 50.0], [16.0, 8.0, 31.0, 23.0], [0.0, 0.0, 0.0, 0.0]]]),
    "detection_labels": np.array([[1, 2, 1]]),
    "detection_scores": np.array([[0.9, 0.5, 0.1]]),
    "detection_mask": np.array([[1.0, 1.0, 0.0]]),
  }
  prediction = task.predict_json(outputs, 0, frame=photo_frame(pp_eval, (80, 100)))
  boxes = [d["box"] for d in prediction["detections"]]
  np.testing.assert_allclose(boxes, [[0, 0, 99, 79], [25, 80 / 51 * 8, 50 - 1, 80 / 51 * 24 - 1]], atol=1e-6)
  assert [(d["label"], d["score"]) for d in prediction["detections"]] == [("red circle", 0.9), ("blue square", 0.5)]
  # A photo smaller than the input (enlarged to 64 px) keeps its boxes within its pixels too.
  small = task.predict_json(outputs, 0, frame=photo_frame(pp_eval, (20, 25)))
  np.testing.assert_allclose(small["detections"][0]["box"], [0, 0, 24, 19], atol=1e-6)


def test_boxes_flag_is_for_scene_graph_models_only(tmp_path):
  """A detector takes no --boxes and needs none; a scene-graph task (no needs_boxes_file = False) still needs it."""
  fields = predict.boxes_fields(DetectionTask(CLASS_NAMES), None)
  assert fields("any.png")((80, 100))["boxes"].shape == (0, 4)
  with pytest.raises(ConfigError, match="finds the objects itself and takes no boxes"):
    predict.boxes_fields(DetectionTask(CLASS_NAMES), str(tmp_path / "boxes.json"))

  class SceneGraphLike:
    def prediction_fields(self, annotation, image_size):
      return {}

  with pytest.raises(ConfigError, match="--boxes is required for scene-graph models"):
    predict.boxes_fields(SceneGraphLike(), None)


def test_a_missing_detector_run_is_named_before_anything_is_built(tmp_path):
  from jaxgraphs.training import defaults

  config = config_file("linknet_shapes", "sgdet,tiny")
  config.model.detector_run = str(tmp_path / "nowhere")
  with pytest.raises(ConfigError, match=r"config.model.detector_run='.*nowhere': no detector checkpoint there"):
    defaults.check_config(config)
  (tmp_path / "nowhere" / "checkpoints").mkdir(parents=True)  # a workdir whose run never saved
  with pytest.raises(ConfigError, match="no detector checkpoint there"):
    defaults.check_config(config)


# The built-in detector at half its recipe's 600 steps and SGDet at 200 of its 1,500, as the chain below runs them,
# each evaluated on the first 300 validation images. Measured with seeds 0, 1, 2: AP50 0.104, 0.056, 0.150; SGDet
# R@50 0.0104, 0.0115, 0.0125 (on all 1,000 images: 0.104, 0.049, 0.142 and 0.0123, 0.0084, 0.0141). An untrained
# detector scores AP50 0.0003 and SGDet on it R@50 0.0; the margins sit at 0.3-0.4x the worst seed, so a detector
# whose boxes, labels or NMS were wrong would not pass them.
DETECTOR_STEPS, MIN_AP50 = 300, 0.02
SGDET_STEPS, MIN_SGDET_R50 = 200, 0.003
EVAL_IMAGES = 300


@pytest.mark.slow  # ~3 min on 2 cores: 2 training runs that learn, 2 prediction runs, each compiling
def test_detector_learns_then_predicts_then_sgdet_learns_from_it_and_predicts(tmp_path):
  """The chain a user runs, through the CLI: train the built-in detector (it learns); predict on a photo without
  --boxes; train LinkNet SGDet from that detector run (it recalls relations); predict a scene graph from the image
  alone."""
  import tensorflow_datasets as tfds

  from jaxgraphs.data.builders import shapes
  from training_helpers import checkpoint_arrays, tensorboard_tags

  workdir, data_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
  steps = lambda n: (
    f"--config.total_steps={n}",
    "--config.eval_every_steps=0",
    f"--config.checkpoint.every_steps={n}",
    f"--config.data.eval_split=validation[:{EVAL_IMAGES}]",
  )
  train = run_module(
    "jaxgraphs.main",
    "--config=configs/faster_rcnn_shapes.py",
    f"--workdir={workdir}",
    f"--config.data.data_dir={data_dir}",
    *steps(DETECTOR_STEPS),
    merged=True,
    timeout=900,
  )
  assert train.returncode == 0, train.stdout[-4000:]
  with open(os.path.join(workdir, f"eval_{DETECTOR_STEPS}.json")) as f:
    detector_metrics = json.load(f)
  assert detector_metrics["num_images"] == EVAL_IMAGES
  assert detector_metrics["AP50"] > MIN_AP50, detector_metrics["AP50"]
  assert set(detector_metrics["per_class_AP50"]) == set(shapes.CATEGORY_NAMES)
  assert {"eval/AP50", "eval/detections"} <= tensorboard_tags(workdir)  # the metric and the pictures

  # A validation image of the built-in data, written as a PNG file (96 x 96 pixels).
  example = next(iter(tfds.load("builtin_shapes/small", split="validation", data_dir=data_dir).take(1)))
  photo_path, out_dir = str(tmp_path / "photo.png"), str(tmp_path / "pictures")
  Image.fromarray(example["image"].numpy()).save(photo_path)
  width, height = Image.open(photo_path).size

  proc = run_module("jaxgraphs.predict", f"--checkpoint={workdir}", f"--out_dir={out_dir}", photo_path, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  lines = proc.stdout.splitlines()
  assert len(lines) == 1
  result = json.loads(lines[0])
  assert result["image"] == photo_path and result["detections"]
  for detection in result["detections"]:
    x1, y1, x2, y2 = detection["box"]
    assert 0 <= x1 <= x2 <= width - 1 and 0 <= y1 <= y2 <= height - 1, detection
    assert detection["label"] in shapes.CATEGORY_NAMES and 0 <= detection["score"] <= 1
  picture = Image.open(os.path.join(out_dir, "photo_detections.png"))
  # Drawn over the photo (enlarged for display) with a title and a legend: at least the photo's size.
  assert picture.width >= width and picture.height >= height

  # (A missing or broken photo is reported the same way for every model: tests/test_predict.py.)

  sgdet_dir = str(tmp_path / "sgdet")
  train = run_module(
    "jaxgraphs.main",
    "--config=configs/linknet_shapes.py:sgdet",
    f"--workdir={sgdet_dir}",
    f"--config.data.data_dir={data_dir}",
    f"--config.model.detector_run={workdir}",
    *steps(SGDET_STEPS),
    merged=True,
    timeout=900,
  )
  assert train.returncode == 0, train.stdout[-4000:]
  assert f"Loaded the detector's weights from {workdir}" in train.stdout
  with open(os.path.join(sgdet_dir, f"eval_{SGDET_STEPS}.json")) as f:
    sgdet_metrics = json.load(f)
  assert sgdet_metrics["sgdet/num_images"] == EVAL_IMAGES
  assert sgdet_metrics["sgdet/R@50"] > MIN_SGDET_R50, sgdet_metrics["sgdet/R@50"]
  # The detector came from the detector run and stayed frozen through LinkNet's steps.
  detector = checkpoint_arrays(workdir, DETECTOR_STEPS)
  linknet = checkpoint_arrays(sgdet_dir, SGDET_STEPS)
  loaded = [path for path in linknet if path.startswith("params/detector/")]
  assert len(loaded) == len([path for path in detector if path.startswith("params/")]) > 10
  for path in loaded:
    np.testing.assert_array_equal(linknet[path], detector[path.replace("detector/", "", 1)], err_msg=path)

  proc = run_module("jaxgraphs.predict", f"--checkpoint={sgdet_dir}", photo_path, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  graph = json.loads(proc.stdout.splitlines()[0])
  assert graph["mode"] == "sgdet" and graph["objects"]
  for obj in graph["objects"]:
    x1, y1, x2, y2 = obj["box"]
    assert -1 <= x1 <= x2 <= width and -1 <= y1 <= y2 <= height and obj["label"] in shapes.CATEGORY_NAMES
