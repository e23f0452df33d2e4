r"""Prediction on image files with a trained checkpoint: one JSON line per image, optional pictures.

  python -m jaxgraphs.predict --config=configs/ssgrl_shapes.py --checkpoint=/tmp/jaxgraphs/ssgrl_shapes \
      [--out_dir=/tmp/pictures] [--config.key=value ...] IMAGE [IMAGE ...]
  python -m jaxgraphs.predict --checkpoint=/tmp/jaxgraphs/linknet_shapes --boxes=boxes.json IMAGE [IMAGE ...]
  python -m jaxgraphs.predict --checkpoint=/tmp/jaxgraphs/faster_rcnn_shapes [--out_dir=/tmp/pictures] \
      IMAGE [IMAGE ...]

`--checkpoint` is a workdir (its latest checkpoint), its `checkpoints/` or `checkpoints_best/` folder, or one
step folder in them (e.g. WORKDIR/checkpoints/600). Without `--config`, the workdir's config.json (written by the
trainer, command-line overrides included) is used. The model and task are built exactly as for training
(`trainer.Experiment`) and the state restored by `Experiment.restore`; each image is read with the config's `pp_eval`.
Model constants come from where training took them: SSGRL counts its label graph on the train split once and
caches it beside the dataset, so that cache (or the dataset) must be present.

Output: for every image a JSON object on one line, {"image": path, ...the task's `predict_json`...}, on stdout;
with `--out_dir`, the task's `predict_pictures` as PNG files `<image stem>_<picture name>.png`: multi-label
models with attention the maps of the three most probable classes, RGNet its region scores and Fig. 6
strip, scene-graph models the graph, detectors their detections. Pictures are drawn over the photo itself
(shrunk to 1024 px on its long side if larger, enlarged to at least 256 px if smaller), with titles, captions
and colour bars: what was computed on the network input is mapped back through the inverse of `pp_eval`'s
geometry. That inverse exists for decode, resize, resize_short, resize_long, center_crop and pad_bottom_right
(and the non-geometric normalize_imagenet, value_range, keep_image_size, pack_scene_graph); any other op in
`pp_eval` is refused with one line naming it. An image that is missing or cannot be decoded gets one line on
stderr and the others are still predicted; the exit status is then 1.

Scene-graph models (LinkNet, PredCls and SGCls) take the objects' boxes from `--boxes`, a JSON file
{"<image path or file name>": {"boxes": [[x1, y1, x2, y2], ...], "labels": ["red circle", ...]}} in pixels of
the image file (labels: class names or indices; required by PredCls, ignored by SGCls), and print the scene
graph: the objects (boxes in pixels of the image file again) and the top 20 relations with graph constraint;
the PNG draws the top 10 relations whose score is at least 0.1, numbered, with a legend beside the photo.
An image without an entry gets one line on stderr, as an unreadable one.

Detectors (Faster R-CNN, configs/faster_rcnn_shapes.py) find the objects themselves and take no `--boxes`: each
image is read with `pp_eval` as it is (its `pack_scene_graph` gets no ground truth) and the line holds the
detections, {"detections": [{"box": [x1, y1, x2, y2], "label": "red circle", "score": 0.93}, ...]}, at most the
model's `max_detections`, boxes in pixels of the image file (inclusive corners, within 0..width-1 and
0..height-1); the PNG draws those with score >= 0.3 over the photo, numbered, with a legend beside it.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from jaxgraphs.errors import ConfigError
from jaxgraphs.training.run_dirs import config_from_workdir, resolve_checkpoint

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command's flags; called by `run` only, so importing this module defines none."""
  config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py); default: <workdir>/config.json.", lock_config=True
  )
  flags.DEFINE_string("checkpoint", None, "A workdir, its checkpoints/ or checkpoints_best/ folder, or a step folder.")
  flags.DEFINE_string("out_dir", None, "Where to write the task's pictures as PNG (none if unset).")
  flags.DEFINE_string(
    "boxes", None, "Scene-graph models (not detectors): JSON file of each image's boxes and labels (module doc)."
  )


def read_photo(path: str):
  """uint8 (H, W, 3) pixels of an image file, decoded as the input pipeline decodes; raises ValueError saying why
  the file cannot be used."""
  import tensorflow as tf

  from jaxgraphs.data import image_decoding

  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as error:
    raise ValueError(f"cannot open ({error.strerror or error})") from None
  try:
    return image_decoding.decode_rgb(tf.constant(data)).numpy()
  except tf.errors.InvalidArgumentError:
    raise ValueError("not a decodable image (JPEG, PNG, GIF, BMP or WebP)") from None


def read_example(path: str, preprocess, fields=None) -> tuple[dict, tuple[int, int]]:
  """(the preprocessed example of one image file as numpy arrays, the photo's (height, width));
  `fields((height, width))` adds raw fields (the --boxes of scene-graph models). Raises ValueError saying why
  the image cannot be used."""
  import tensorflow as tf

  from jaxgraphs.data import transforms

  photo = read_photo(path)
  # pp_eval's decode takes the decoded pixels as they are. It has no random ops; a fixed seed keeps any that
  # are there deterministic.
  raw = {"image": tf.constant(photo), transforms.SEED_KEY: tf.constant([0, 0], tf.int64)}
  if fields is not None:
    raw.update(fields(photo.shape[:2]))
  example = preprocess(raw)
  arrays = {
    key: value.numpy()
    for key, value in example.items()
    if key != transforms.SEED_KEY and isinstance(value, tf.Tensor) and value.dtype != tf.string
  }
  return arrays, photo.shape[:2]


def read_image(path: str, preprocess):
  """The preprocessed image of one file as a numpy array; raises ValueError saying why it cannot be read."""
  return read_example(path, preprocess)[0]["image"]


def boxes_fields(task, boxes_path: str | None):
  """path -> (image size -> raw fields) for tasks whose `pp_eval` takes objects (scene graphs, detectors), None
  for the others. A task with `needs_boxes_file = False` (a detector) makes its fields without --boxes."""
  from jaxgraphs.errors import ConfigError

  takes_boxes = hasattr(task, "prediction_fields")
  if not takes_boxes:
    if boxes_path:
      raise ConfigError(f"--boxes={boxes_path}: this model ({type(task).__name__}) takes no boxes")
    return None
  # Scene-graph tasks predict relations between given objects, so a task that does not say otherwise needs them.
  if not getattr(task, "needs_boxes_file", True):
    if boxes_path:
      raise ConfigError(
        f"--boxes={boxes_path}: this model ({type(task).__name__}) finds the objects itself and takes no boxes"
      )
    return lambda path: lambda size: task.prediction_fields({}, size)
  if not boxes_path:
    raise ConfigError(
      "--boxes is required for scene-graph models: a JSON file {image: {'boxes': [[x1, y1, x2, y2],"
      " ...], 'labels': [...]}} (python -m jaxgraphs.predict --help)"
    )
  from jaxgraphs.tasks.scene_graph import boxes_entry, load_boxes_json

  try:
    entries = load_boxes_json(boxes_path)
  except (OSError, ValueError) as error:
    raise ConfigError(f"--boxes={boxes_path}: cannot read it ({error})") from None
  return lambda path: lambda size: task.prediction_fields(boxes_entry(entries, path), size)


def picture_path(out_dir: str, image_path: str, name: str, taken: set[str]) -> str:
  """<out_dir>/<image stem>_<name>.png, numbered when two images share a stem."""
  stem = os.path.splitext(os.path.basename(image_path))[0]
  path, number = os.path.join(out_dir, f"{stem}_{name}.png"), 1
  while path in taken:
    number += 1
    path = os.path.join(out_dir, f"{stem}-{number}_{name}.png")
  taken.add(path)
  return path


def predict(
  config, checkpoint: str, image_paths: list[str], out_dir: str | None = None, boxes: str | None = None
) -> int:
  """Prints one JSON line per readable image (and writes pictures); returns the number of unreadable ones."""
  import jax
  import numpy as np
  from PIL import Image

  from jaxgraphs.data import transforms
  from jaxgraphs.tasks.input_frame import geometry_ops, photo_frame
  from jaxgraphs.training import sharding
  from jaxgraphs.training.trainer import Experiment

  workdir, subdir, step = resolve_checkpoint(checkpoint)
  experiment = Experiment(config)
  pp_eval = experiment.data_info.pp_eval
  # Resized as the run's evaluation resizes (fused or op by op); normalised here, on the host.
  preprocess = transforms.build(pp_eval, where="config.data.pp_eval", fuse=config.data.fuse_decode)
  fields = boxes_fields(experiment.task, boxes)
  # Boxes and pictures go back onto the photo through the inverse of pp_eval's geometry (fails here, naming
  # the op, when an op has none).
  on_photo = bool(out_dir) or fields is not None
  if on_photo:
    geometry_ops(pp_eval)

  examples, names, photo_sizes, failed = [], [], [], 0
  for path in image_paths:
    try:
      example, photo_hw = read_example(path, preprocess, fields(path) if fields else None)
    except ValueError as error:
      print(f"{path}: {error}", file=sys.stderr, flush=True)
      failed += 1
      continue
    examples.append(example)
    names.append(path)
    photo_sizes.append(photo_hw)
  if not examples:
    return failed
  shapes = {key: {e[key].shape for e in examples} for key in examples[0]}
  if any(len(s) != 1 for s in shapes.values()):
    raise ValueError(
      f"config.data.pp_eval={pp_eval!r} gives examples of sizes "
      f"{ {k: sorted(s) for k, s in shapes.items() if len(s) != 1} }; it must end in a fixed size"
    )

  batch_size = experiment.local_batch_size
  example = {key: np.zeros((batch_size,) + value.shape, value.dtype) for key, value in examples[0].items()}
  example["mask"] = np.zeros(batch_size, np.float32)
  which = "best" if subdir == "checkpoints_best" else ("latest" if step is None else step)
  state = experiment.restore(workdir, which, batch_spec=example)

  if out_dir:
    os.makedirs(out_dir, exist_ok=True)
  taken: set[str] = set()
  task = experiment.task
  for start in range(0, len(examples), batch_size):
    chunk = examples[start : start + batch_size]
    batch = {key: value.copy() for key, value in example.items()}
    for key in examples[0]:
      batch[key][: len(chunk)] = np.stack([e[key] for e in chunk])
    batch["mask"][: len(chunk)] = 1.0
    outputs = jax.tree.map(
      np.asarray, jax.device_get(experiment.jit_forward(state, sharding.global_batch(batch, experiment.mesh)))
    )
    for index in range(len(chunk)):
      path = names[start + index]
      frame = photo_frame(pp_eval, photo_sizes[start + index]) if on_photo else None
      print(json.dumps({"image": path, **task.predict_json(outputs, index, frame=frame)}), flush=True)
      if out_dir:
        # Read again rather than kept: a long list of photos need not fit in memory at once.
        for name, picture in task.predict_pictures(outputs, read_photo(path), index, frame=frame).items():
          Image.fromarray(np.asarray(picture, np.uint8)).save(picture_path(out_dir, path, name, taken))
  return failed


def main(argv):
  image_paths = argv[1:]
  if not image_paths:
    raise app.UsageError("give at least one image file after the flags")
  if not FLAGS.checkpoint:
    raise app.UsageError("--checkpoint is required (a workdir, its checkpoints/ folder or a step folder)")
  from jaxgraphs.training.runtime import prepare_host

  try:
    # Checked before TensorFlow and JAX start, so a wrong path is reported at once.
    config = FLAGS.config if FLAGS.config is not None else config_from_workdir(resolve_checkpoint(FLAGS.checkpoint)[0])
    prepare_host()
    failed = predict(config, FLAGS.checkpoint, image_paths, FLAGS.out_dir, FLAGS.boxes)
  except FileNotFoundError as error:  # no such run, checkpoint or config.json: a usage mistake
    raise ConfigError(str(error)) from None
  if failed:
    raise SystemExit(1)


def run():
  """Entry point: mistakes become one line and exit 2, as in jaxgraphs.main (jaxgraphs.cli)."""
  from jaxgraphs import cli

  define_flags()
  cli.run(main)


if __name__ == "__main__":
  run()
