r"""Images/s of the train input pipeline (decode + augment) at 300 and 576 px, beside the baseline train step.

Data: `--num_images` synthetic 640x480 JPEGs (multi-scale noise, quality 87: ~150 KB each, about a COCO
image's size and entropy), written once to a temporary TFDS dataset. The pipeline is
`pipeline.build_train_dataset` exactly as the trainer builds it (shuffle, robust decode, stateless
augmentation, batch, prefetch), read for `--num_batches` batches after `--warmup` batches:

  576 px: SSGRL's  decode|resize(640)|random_crop_choice((640,576,512,384,320))|resize(576)|flip_lr|normalize_imagenet
  300 px: RGNet's  decode|resize(300)|flip_lr|random_scale_crop(1.05,1.25,300)|normalize_imagenet

Baseline, measured in the same run: the images/s the multi-label baseline's train step consumes at the same
input size (configs/baseline_coco.py: ResNet-101 + global average pooling + linear, sigmoid cross-entropy,
Adam): the trainer's own `Experiment.jit_train_step` on this machine's JAX devices, fed random batches of
`--model_batch_size` and timed by benchmarks/step_timing.py (median of `--model_steps` steps after the first).
The pipeline keeps up when its column is the larger one. `--model=none` skips it (a ResNet-101 step at 576 px
takes seconds per image on a CPU).

  python benchmarks/input_pipeline.py                                    # pipeline + ResNet-101 step
  JAX_PLATFORMS=cpu python benchmarks/input_pipeline.py --model=none     # pipeline only
  JAX_PLATFORMS=cpu python benchmarks/input_pipeline.py --model=resnet18 --model_batch_size=2 --model_steps=2
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

if __package__ in (None, ""):  # run as `python benchmarks/input_pipeline.py`: the repository root holds `benchmarks`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import step_timing
from jaxgraphs.data import pipeline, sources

PP = {
  576: sources.SSGRL_PP_TRAIN,
  300: "decode|resize(300)|flip_lr|random_scale_crop(1.05, 1.25, 300)|normalize_imagenet",
}
NUM_CLASSES = 80


def synthetic_jpeg(rng: np.random.Generator) -> bytes:
  """640x480 JPEG with structure at several scales, so its size and decode cost resemble a photo's."""
  image = np.zeros((480, 640, 3))
  for scale, amplitude in [(32, 60), (8, 40), (2, 25), (1, 12)]:
    noise = rng.normal(0, 1, (480 // scale, 640 // scale, 3))
    layer = Image.fromarray(((noise + 4) * 30).clip(0, 255).astype(np.uint8)).resize((640, 480), Image.BICUBIC)
    image += amplitude * (np.asarray(layer, np.float64) / 30 - 4)
  buf = io.BytesIO()
  Image.fromarray(np.clip(image + 128, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=87)
  return buf.getvalue()


class JaxgraphsBenchmarkJpegs(tfds.core.GeneratorBasedBuilder):
  """Synthetic photo-sized JPEGs with random multi-hot labels (benchmark data only)."""

  VERSION = tfds.core.Version("1.0.0")
  NUM_IMAGES = 256

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(encoding_format="jpeg"),
          "image/filename": tfds.features.Text(),
          "labels": tfds.features.Sequence(tfds.features.ClassLabel(num_classes=NUM_CLASSES)),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for i in range(self.NUM_IMAGES):
      labels = sorted(set(rng.integers(0, NUM_CLASSES, rng.integers(1, 4)).tolist()))
      yield i, {"image": synthetic_jpeg(rng), "image/filename": f"{i}.jpg", "labels": labels}


def pipeline_images_per_second(data_dir: str, size: int, args) -> tuple[float, float]:
  """(images/s, seconds to build and fill the pipeline) of the train stream with PP[size]."""
  config = pipeline.default_data_config()
  config.source = "benchmark_jpegs"
  config.data_dir = data_dir
  config.pp_train = PP[size]
  config.shuffle_buffer = args.num_images
  start = time.perf_counter()
  stream = pipeline.build_train_dataset(
    config, local_batch_size=args.batch_size, seed=0, process_index=0, process_count=1
  )
  for _ in range(args.warmup):
    batch = next(stream)
  assert batch["image"].shape == (args.batch_size, size, size, 3)
  startup = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(args.num_batches):
    next(stream)
  return args.num_batches * args.batch_size / (time.perf_counter() - start), startup


def train_step_images_per_second(size: int, args) -> float:
  """Images/s of the baseline's train step (the trainer's Experiment.jit_train_step) on random batches."""
  config = step_timing.load_config("baseline_coco")
  config.batch_size = args.model_batch_size
  config.model.backbone = args.model
  from jaxgraphs.training import sharding

  rng = np.random.default_rng(0)
  b = sharding.check_batch_size(args.model_batch_size)  # this process's part
  local = {
    "image": rng.normal(size=(b, size, size, 3)).astype(np.float32),
    "labels": (rng.random((b, NUM_CLASSES)) < 0.05).astype(np.float32),
    "label_weights": np.ones((b, NUM_CLASSES), np.float32),
    "mask": np.ones((b,), np.float32),
  }
  return step_timing.measure(f"{args.model} baseline", config, local, args.model_steps).images_per_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="300,576")
  parser.add_argument("--num_images", type=int, default=256, help="distinct JPEGs in the temporary dataset")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--warmup", type=int, default=3, help="batches read before timing")
  parser.add_argument("--num_batches", type=int, default=20, help="batches timed")
  parser.add_argument("--model", default="resnet101", help="baseline backbone, or 'none'")
  parser.add_argument("--model_batch_size", type=int, default=16)
  parser.add_argument("--model_steps", type=int, default=5)
  args = parser.parse_args()
  sizes = [int(s) for s in args.sizes.split(",")]

  JaxgraphsBenchmarkJpegs.NUM_IMAGES = args.num_images
  sources.SOURCES["benchmark_jpegs"] = sources.Source(
    "jaxgraphs_benchmark_jpegs",
    sources.class_label_example,
    lambda: tuple(map(str, range(NUM_CLASSES))),
    "train",
    "train",
    PP[576],
    PP[576],
  )
  with tempfile.TemporaryDirectory() as data_dir:
    builder = JaxgraphsBenchmarkJpegs(data_dir=data_dir)
    builder.download_and_prepare()
    mean_kb = sum(os.path.getsize(p) for p in pathlib.Path(data_dir).rglob("*.tfrecord*")) / args.num_images / 1024
    rows = []
    for size in sizes:
      rate, startup = pipeline_images_per_second(data_dir, size, args)
      step = train_step_images_per_second(size, args) if args.model != "none" else float("nan")
      rows.append((size, rate, startup, step))

  import jax

  print(
    f"\n{args.num_images} synthetic 640x480 JPEGs (~{mean_kb:.0f} KB each), batch {args.batch_size}, "
    f"{os.cpu_count()} host CPUs (load average {os.getloadavg()[0]:.1f}); "
    f"JAX devices: {jax.devices()[0].device_kind} x {jax.device_count()}"
  )
  model = args.model if args.model != "none" else "(skipped)"
  print(f"{'size':>5} | {'pipeline img/s':>14} | {'startup s':>9} | {f'{model} train step img/s':>30} | keeps up")
  print("-" * 80)
  for size, rate, startup, step in rows:
    keeps_up = "-" if np.isnan(step) else ("yes" if rate >= step else f"no ({step / rate:.1f}x short)")
    print(f"{size:>5} | {rate:>14.1f} | {startup:>9.1f} | {step:>30.2f} | {keeps_up}")


if __name__ == "__main__":
  main()
