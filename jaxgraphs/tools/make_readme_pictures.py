r"""Makes the README's example pictures: three short runs on the built-in data, then `jaxgraphs.predict` on one
test image each.

  python -m jaxgraphs.tools.make_readme_pictures --out=docs/pictures [--workdir=/tmp/readme_runs] [--steps=300]

SSGRL, RGNet and LinkNet (PredCls) train at the unit tests' size (the configs' ',tiny' form: builtin_shapes/tiny,
48 px images, widths a few channels) for `--steps` steps each, in <workdir>/<name> (a run that already reached
that step is reused). Then `python -m jaxgraphs.predict` draws over one test image of each (an image with
several labels for SSGRL, several objects and relations for LinkNet, whose boxes and labels come from the
dataset) and the pictures are copied to `--out` as ssgrl_attention.png, rgnet_region_dependency.png and
linknet_scene_graph.png. Models this small and this briefly trained are far from good: the pictures show
what is drawn, not what the papers reach. A few minutes on a laptop CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl import app, flags

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# name -> (config file and argument, the predict picture to keep, its name in --out)
RUNS = {
  "ssgrl": ("configs/ssgrl_shapes.py:full,tiny", "attention_top3", "ssgrl_attention.png"),
  "rgnet": ("configs/rgnet_shapes.py:tiny", "region_dependency", "rgnet_region_dependency.png"),
  "linknet": ("configs/linknet_shapes.py:predcls,tiny", "scene_graph", "linknet_scene_graph.png"),
}


def _define_flags():
  """Command-line flags, defined only when run as a program so importing this module defines none."""
  flags.DEFINE_string("out", None, "Folder for the PNG files (created if missing).")
  flags.DEFINE_string("workdir", None, "Folder for the three runs and the test images (default: a temporary one).")
  flags.DEFINE_string("data_dir", None, "Where builtin_shapes/tiny is generated (default: <workdir>/tfds).")
  flags.DEFINE_integer("steps", 300, "Training steps of each run.")


def train(name: str, workdir: str, data_dir: str, steps: int) -> str:
  """Trains run `name` of RUNS for `steps` steps unless <workdir>/<name> already has that checkpoint."""
  run_dir = os.path.join(workdir, name)
  if os.path.isdir(os.path.join(run_dir, "checkpoints", str(steps))):
    print(f"{name}: reusing {run_dir}", flush=True)
    return run_dir
  print(f"{name}: training {steps} steps in {run_dir} ...", flush=True)
  command = [
    sys.executable,
    "-m",
    "jaxgraphs.main",
    f"--config={os.path.join(REPO, RUNS[name][0])}",
    f"--workdir={run_dir}",
    f"--config.data.data_dir={data_dir}",
    f"--config.total_steps={steps}",
    f"--config.checkpoint.every_steps={steps}",
    f"--config.log_every_steps={max(steps // 5, 1)}",
  ]
  subprocess.run(command, check=True)
  return run_dir


def pick_test_images(data_dir: str, folder: str) -> dict[str, str]:
  """Saves three builtin_shapes/tiny test images as PNG: the first with >= 2 labels (SSGRL), the first with
  >= 3 objects and >= 3 relations (LinkNet, with its boxes file beside it), and the first one (RGNet)."""
  from PIL import Image

  from jaxgraphs.data.builders import shapes

  builder = shapes.ensure_prepared("tiny", data_dir)
  names = builder.info.features["objects"]["label"].names
  chosen: dict[str, str] = {}
  for index, example in enumerate(builder.as_dataset(split="test").as_numpy_iterator()):
    path = os.path.join(folder, f"test{index}.png")
    wanted = []
    if "rgnet" not in chosen:
      wanted.append("rgnet")
    if "ssgrl" not in chosen and len(example["labels"]) >= 2:
      wanted.append("ssgrl")
    if "linknet" not in chosen and len(example["objects"]["label"]) >= 3 and len(example["relations"]["subject"]) >= 3:
      wanted.append("linknet")
      height, width = example["image"].shape[:2]
      boxes = [
        [float(x1 * width), float(y1 * height), float(x2 * width), float(y2 * height)]
        for y1, x1, y2, x2 in example["objects"]["bbox"]
      ]
      labels = [names[label] for label in example["objects"]["label"]]
      with open(os.path.join(folder, "boxes.json"), "w") as f:
        json.dump({os.path.basename(path): {"boxes": boxes, "labels": labels}}, f)
    if wanted:
      Image.fromarray(example["image"]).save(path)
      chosen.update({name: path for name in wanted})
    if len(chosen) == len(RUNS):
      return chosen
  raise RuntimeError(f"builtin_shapes/tiny's test split has no image for {sorted(set(RUNS) - set(chosen))}")


def predict_picture(name: str, run_dir: str, image: str, folder: str) -> str:
  """Runs `python -m jaxgraphs.predict` on `image` with run `name`; returns the path of the kept picture."""
  out_dir = os.path.join(folder, f"{name}_pictures")
  command = [sys.executable, "-m", "jaxgraphs.predict", f"--checkpoint={run_dir}", f"--out_dir={out_dir}", image]
  if name == "linknet":
    command.insert(-1, f"--boxes={os.path.join(folder, 'boxes.json')}")
  subprocess.run(command, check=True)
  stem = os.path.splitext(os.path.basename(image))[0]
  return os.path.join(out_dir, f"{stem}_{RUNS[name][1]}.png")


def main(argv):
  """Trains the three runs, predicts and copies the pictures to --out."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workdir = os.path.abspath(FLAGS.workdir or tempfile.mkdtemp(prefix="jaxgraphs_readme_"))
  data_dir = os.path.abspath(FLAGS.data_dir or os.path.join(workdir, "tfds"))
  photos = os.path.join(workdir, "photos")
  os.makedirs(photos, exist_ok=True)
  os.makedirs(FLAGS.out, exist_ok=True)
  images = pick_test_images(data_dir, photos)
  for name in RUNS:
    run_dir = train(name, workdir, data_dir, FLAGS.steps)
    picture = predict_picture(name, run_dir, images[name], photos)
    target = os.path.join(FLAGS.out, RUNS[name][2])
    shutil.copyfile(picture, target)
    print(f"{name}: {target}", flush=True)


if __name__ == "__main__":
  _define_flags()
  flags.mark_flags_as_required(["out"])
  from jaxgraphs import cli

  cli.run(main)
