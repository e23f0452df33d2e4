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


@pytest.mark.slow  # 30-50 s on a shared 2-core CPU: a 2-step training run and a prediction run, each compiling
def test_predict_on_a_detector_run_without_boxes(tmp_path):
  """Train the tiny detector 2 steps through the CLI, then predict on a 100 x 80 PNG and on a missing file."""
  from jaxgraphs.data.builders import shapes

  workdir = str(tmp_path / "run")
  train = run_module(
    "jaxgraphs.main",
    "--config=configs/faster_rcnn_shapes.py:tiny",
    f"--workdir={workdir}",
    f"--config.data.data_dir={tmp_path / 'tfds'}",
    "--config.total_steps=2",
    merged=True,
    timeout=600,
  )
  assert train.returncode == 0, train.stdout[-4000:]
  photo_path, out_dir = str(tmp_path / "photo.png"), str(tmp_path / "pictures")
  photo = np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)
  Image.fromarray(photo).save(photo_path)

  proc = run_module("jaxgraphs.predict", f"--checkpoint={workdir}", f"--out_dir={out_dir}", photo_path, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  lines = proc.stdout.splitlines()
  assert len(lines) == 1
  result = json.loads(lines[0])
  assert result["image"] == photo_path and result["detections"]  # after 2 steps: low scores, but detections
  for detection in result["detections"]:
    x1, y1, x2, y2 = detection["box"]
    assert 0 <= x1 <= x2 <= 99 and 0 <= y1 <= y2 <= 79, detection
    assert detection["label"] in shapes.CATEGORY_NAMES and 0 <= detection["score"] <= 1
  picture = Image.open(os.path.join(out_dir, "photo_detections.png"))
  # Drawn over the photo (enlarged for display) with a title and a legend: at least the photo's size.
  assert picture.width >= 100 and picture.height >= 80

  missing = str(tmp_path / "missing.png")
  proc = run_module("jaxgraphs.predict", f"--checkpoint={workdir}", missing, timeout=600)
  assert proc.returncode == 1 and proc.stdout == ""
  assert f"{missing}: cannot open (No such file or directory)" in proc.stderr.splitlines()
