r"""Images/s of the train input pipeline (decode + augment + batch) beside PyTorch's DataLoader + PIL, same JPEGs.

Three inputs, each read as its config reads it (`pipeline.build_train_dataset`: shuffle, robust decode with
skip-on-failure, stateless augmentation, batch, prefetch; decode and geometry fused as `config.data.fuse_decode`
does by default, `--ops_as_written` runs the ops one by one):

  ssgrl_576    sources.SSGRL_PP_TRAIN (configs/ssgrl_*.py) on 640x480 JPEGs
               decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|normalize_imagenet
  rgnet_300    sources.RGNET_PP_TRAIN (configs/rgnet_*.py) on 640x480 JPEGs
               decode|resize(300)|flip_lr|random_scale_crop(1.05, 1.25, 300)|normalize_imagenet
  linknet_592  the image ops of sources.VG150_PP_TRAIN (configs/linknet_vg_*.py) on VG-like 1024x768 JPEGs
               decode|resize_long(592)|flip_lr|normalize_imagenet|pad_bottom_right(592)
               (its scene-graph ops only touch boxes and relations; the benchmark images carry none)

Data: `--num_images` synthetic JPEGs per size (multi-scale noise, quality 87: ~150 KB at 640x480, about a
COCO image's size and entropy), written once to a temporary TFDS dataset and, byte for byte, as .jpg files.

Baseline, in the same run on the same files: a torch `DataLoader` (shuffle, batch, `num_workers` = the CPU
budget) over a Dataset that opens each file with PIL and applies the reference torchvision transforms of the
same recipe (Resize((640, 640)) -> RandomChoice of RandomCrop -> Resize((576, 576)); Resize((300, 300)) ->
RandomHorizontalFlip -> scale by U(1.05, 1.25) -> RandomCrop(300); long side to 592 -> RandomHorizontalFlip ->
pad bottom/right to 592; then ToTensor + Normalize(ImageNet)). It runs in a subprocess (torchvision must not be
imported after TensorFlow here). Equal CPU budgets: the whole run (and so both pipelines and the torch workers)
is pinned to `--cpus` cores with sched_setaffinity; tf.data's parallelism is AUTOTUNE as in the configs.

Rounds alternate the two pipelines, `--rounds` of each, and the table gives the medians and the ratio
(project / PyTorch). Without torch installed only the project's column is printed.

  python benchmarks/input_pipeline.py                      # all three inputs, 2 CPUs, 3 rounds
  python benchmarks/input_pipeline.py --inputs=linknet_592 --rounds=1
  python benchmarks/input_pipeline.py --ops_as_written    # the op sequences, unfused
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as `python benchmarks/input_pipeline.py`: the repository root holds `benchmarks`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUM_CLASSES = 80
# name: (image width, height, project pp string, torch recipe, output side)
INPUTS = {
  "ssgrl_576": (640, 480, "ssgrl", 576),
  "rgnet_300": (640, 480, "rgnet", 300),
  "linknet_592": (1024, 768, "linknet", 592),
}


def project_pp(name: str) -> str:
  from jaxgraphs.data import sources

  recipe = INPUTS[name][2]
  if recipe == "ssgrl":
    return sources.SSGRL_PP_TRAIN
  if recipe == "rgnet":
    return sources.RGNET_PP_TRAIN
  image_ops = [op for op in sources.VG150_PP_TRAIN.split("|") if not op.startswith(("one_pred", "pack_", "sample_"))]
  return "|".join(image_ops)


def synthetic_jpeg(rng: np.random.Generator, width: int = 640, height: int = 480) -> bytes:
  """A JPEG with structure at several scales, so its size and decode cost resemble a photo's."""
  image = np.zeros((height, width, 3))
  for scale, amplitude in [(32, 60), (8, 40), (2, 25), (1, 12)]:
    noise = rng.normal(0, 1, (height // scale, width // scale, 3))
    layer = Image.fromarray(((noise + 4) * 30).clip(0, 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    image += amplitude * (np.asarray(layer, np.float64) / 30 - 4)
  buf = io.BytesIO()
  Image.fromarray(np.clip(image + 128, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=87)
  return buf.getvalue()


def write_jpegs(folder: pathlib.Path, num: int, width: int, height: int) -> list[pathlib.Path]:
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  paths = []
  for i in range(num):
    path = folder / f"{i}.jpg"
    path.write_bytes(synthetic_jpeg(rng, width, height))
    paths.append(path)
  return paths


# ---- PyTorch baseline (run in a subprocess: `--torch_worker=JSON`) -------------------------------------
def torch_images_per_second(spec: dict) -> float:
  import torch
  import torchvision.transforms as T
  import torchvision.transforms.functional as F

  mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
  recipe = spec["recipe"]
  if recipe == "ssgrl":
    crops = T.RandomChoice([T.RandomCrop(s) for s in (640, 576, 512, 384, 320)])
    geometry = [T.Resize((640, 640)), crops, T.Resize((576, 576))]
  elif recipe == "rgnet":

    def random_scale(img):
      s = float(torch.empty(()).uniform_(1.05, 1.25))
      return F.resize(img, [round(img.height * s), round(img.width * s)])

    geometry = [T.Resize((300, 300)), T.RandomHorizontalFlip(), T.Lambda(random_scale), T.RandomCrop(300)]
  else:

    def resize_long(img):
      scale = 592 / max(img.size)
      return img.resize((max(round(img.width * scale), 1), max(round(img.height * scale), 1)), Image.BILINEAR)

    geometry = [T.Lambda(resize_long), T.RandomHorizontalFlip()]
  tail = [T.ToTensor(), T.Normalize(mean, std)]
  if recipe == "linknet":
    tail.append(T.Lambda(lambda x: F.pad(x, [0, 0, 592 - x.shape[2], 592 - x.shape[1]])))
  transform = T.Compose(geometry + tail)
  paths = spec["paths"]

  class Files(torch.utils.data.Dataset):
    def __len__(self):
      return len(paths)

    def __getitem__(self, i):
      with Image.open(paths[i]) as img:
        return transform(img.convert("RGB")), torch.zeros(NUM_CLASSES)

  loader = torch.utils.data.DataLoader(
    Files(),
    batch_size=spec["batch_size"],
    shuffle=True,
    num_workers=spec["cpus"],
    drop_last=True,
    persistent_workers=spec["cpus"] > 0,
  )

  def batches():
    while True:
      yield from loader

  stream = batches()
  for _ in range(spec["warmup"]):
    images, _ = next(stream)
  assert tuple(images.shape[1:]) == (3, spec["size"], spec["size"]), images.shape
  start = time.perf_counter()
  for _ in range(spec["num_batches"]):
    next(stream)
  return spec["num_batches"] * spec["batch_size"] / (time.perf_counter() - start)


def run_torch(spec: dict) -> float:
  out = subprocess.run(
    [sys.executable, os.path.abspath(__file__), "--torch_worker", json.dumps(spec)],
    capture_output=True,
    text=True,
    check=True,
  )
  return float(out.stdout.strip().splitlines()[-1])


# ---- the project's pipeline ----------------------------------------------------------------------------
BUILDERS = {}  # data_dir -> prepared builder (the benchmark source's `prepare`)


def prepare_tfds(data_dir: str, jpeg_dir: pathlib.Path, num_images: int) -> None:
  """A TFDS dataset of the JPEG files of `jpeg_dir` (TFDS stores a JPEG's bytes unchanged), with random labels."""
  import tensorflow_datasets as tfds

  class JaxgraphsBenchmarkJpegs(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Synthetic photo-sized JPEGs with random multi-hot labels (benchmark data only)."""

    VERSION = tfds.core.Version("1.0.0")

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
      rng = np.random.default_rng(1)
      for i in range(num_images):
        labels = sorted(set(rng.integers(0, NUM_CLASSES, rng.integers(1, 4)).tolist()))
        yield i, {"image": jpeg_dir / f"{i}.jpg", "image/filename": f"{i}.jpg", "labels": labels}

  builder = JaxgraphsBenchmarkJpegs(data_dir=data_dir)
  builder.download_and_prepare()
  BUILDERS[data_dir] = builder


def project_images_per_second(data_dir: str, pp: str, size: int, args) -> float:
  from jaxgraphs.data import pipeline

  config = pipeline.default_data_config()
  config.source = "benchmark_jpegs"
  config.data_dir = data_dir
  config.pp_train = pp
  config.fuse_decode = not args.ops_as_written
  config.shuffle_buffer = args.num_images
  config.decode_chunk_size = 64  # what a real split (>= 2048 examples) gets by default; these are fewer
  stream = pipeline.build_train_dataset(
    config, local_batch_size=args.batch_size, seed=0, process_index=0, process_count=1
  )
  for _ in range(args.warmup):
    batch = next(stream)
  assert batch["image"].shape == (args.batch_size, size, size, 3), batch["image"].shape
  start = time.perf_counter()
  for _ in range(args.num_batches):
    next(stream)
  return args.num_batches * args.batch_size / (time.perf_counter() - start)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--inputs", default=",".join(INPUTS))
  parser.add_argument("--cpus", type=int, default=2, help="CPU budget of both pipelines (sched_setaffinity)")
  parser.add_argument("--num_images", type=int, default=256, help="distinct JPEGs per image size")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--warmup", type=int, default=3, help="batches read before timing")
  parser.add_argument("--num_batches", type=int, default=12, help="batches timed per round")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the table gives medians")
  parser.add_argument("--no_torch", action="store_true")
  parser.add_argument(
    "--ops_as_written", action="store_true", help="the project's pipeline with config.data.fuse_decode=False"
  )
  parser.add_argument("--torch_worker", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.torch_worker:
    print(torch_images_per_second(json.loads(args.torch_worker)))
    return
  cpus = sorted(os.sched_getaffinity(0))[: args.cpus]
  os.sched_setaffinity(0, cpus)  # children (the torch subprocess and its workers) inherit it
  names = args.inputs.split(",")
  with_torch = not args.no_torch and importlib.util.find_spec("torch") is not None

  from jaxgraphs.data import sources

  sources.SOURCES["benchmark_jpegs"] = sources.Source(
    "jaxgraphs_benchmark_jpegs",
    sources.class_label_example,
    lambda: tuple(map(str, range(NUM_CLASSES))),
    "train",
    "train",
    sources.SSGRL_PP_TRAIN,
    sources.SSGRL_PP_TRAIN,
    prepare=BUILDERS.__getitem__,
  )
  results = {name: {"project": [], "torch": []} for name in names}
  with tempfile.TemporaryDirectory() as tmp:
    data = {}
    for width, height in sorted({INPUTS[n][:2] for n in names}):
      folder = pathlib.Path(tmp) / f"{width}x{height}"
      paths = write_jpegs(folder / "jpeg", args.num_images, width, height)
      prepare_tfds(str(folder / "tfds"), folder / "jpeg", args.num_images)
      kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
      data[(width, height)] = (str(folder / "tfds"), [str(p) for p in paths], kb)
    for _ in range(args.rounds):
      for name in names:
        width, height, recipe, size = INPUTS[name]
        data_dir, paths, _ = data[(width, height)]
        results[name]["project"].append(project_images_per_second(data_dir, project_pp(name), size, args))
        if with_torch:
          spec = dict(
            recipe=recipe,
            size=size,
            paths=paths,
            cpus=len(cpus),
            batch_size=args.batch_size,
            warmup=args.warmup,
            num_batches=args.num_batches,
          )
          results[name]["torch"].append(run_torch(spec))

  print(
    f"\n{args.num_images} synthetic JPEGs per size, batch {args.batch_size}, {len(cpus)} CPUs for each pipeline "
    f"(load average {os.getloadavg()[0]:.1f}), median of {args.rounds} alternating rounds of {args.num_batches} batches"
  )
  print(f"{'input':<12} | {'JPEG':>15} | {'project img/s':>13} | {'PyTorch img/s':>13} | {'ratio':>5}")
  print("-" * 72)
  for name in names:
    width, height, _, _ = INPUTS[name]
    project = statistics.median(results[name]["project"])
    jpeg = f"{width}x{height} {data[(width, height)][2]:.0f}KB"
    if with_torch:
      torch_rate = statistics.median(results[name]["torch"])
      print(f"{name:<12} | {jpeg:>15} | {project:>13.1f} | {torch_rate:>13.1f} | {project / torch_rate:>5.2f}")
    else:
      print(f"{name:<12} | {jpeg:>15} | {project:>13.1f} | {'-':>13} | {'-':>5}")
  return results


if __name__ == "__main__":
  main()
