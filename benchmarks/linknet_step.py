r"""Train-step images/s of LinkNet (configs/linknet_vg_predcls.py, paper widths) at VG-150's 592 px, beside its backbone.

LinkNet's step: VGG-16 on 592 x 592 inputs, RoIAlign 7x7 + fc6/fc7 for `--objects` real objects (padded to 64, as
pack_scene_graph(64, 128) pads VG-150), the object / edge relational embeddings, union-box features and the
predicate classifier for 256 sampled pairs per image (the reference's RELS_PER_IMG), the eq. 18 loss, SGD; the
trainer's own `Experiment` jits it on this machine's JAX devices. Random batches shaped as the VG-150 pipeline
shapes them (`--objects` real objects, 2 relations per object, 64 of 256 pairs foreground).

Baseline, measured in the same run: the train step of the multi-label baseline (configs/baseline_coco.py:
backbone + global average pooling + linear, sigmoid cross-entropy) with the same VGG-16 at the same input size,
i.e. what the backbone alone costs; the ratio column is LinkNet's step time over the baseline's.

  JAX_PLATFORMS=cpu python benchmarks/linknet_step.py                       # full widths, batch 1
  JAX_PLATFORMS=cpu python benchmarks/linknet_step.py --batch_size=2 --steps=3 --objects=12
  python benchmarks/linknet_step.py --batch_size=6 --steps=10               # an accelerator, the paper's batch
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from jaxgraphs.configs import common as config_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_OBJECTS, MAX_RELATIONS, PAIRS = 64, 128, 256


def load_config(name: str, arg=None):
  """get_config(arg) of configs/<name>.py."""
  return config_loader.load_config(os.path.join(REPO, "configs", f"{name}.py"), arg)


def scene_graph_batch(
  rng: np.random.Generator, batch_size: int, size: int, objects: int, num_classes: int, num_predicates: int
) -> dict[str, np.ndarray]:
  """A random batch with the keys and shapes of the VG-150 train pipeline."""
  corners = rng.uniform(0, size, (batch_size, MAX_OBJECTS, 2, 2))
  boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2) + 8], axis=-1).clip(0, size - 1)
  object_mask = np.zeros((batch_size, MAX_OBJECTS), np.float32)
  object_mask[:, :objects] = 1
  labels = np.where(object_mask > 0, rng.integers(1, num_classes, (batch_size, MAX_OBJECTS)), 0)
  candidates = np.array([(s, o) for s in range(objects) for o in range(objects) if s != o])
  pairs = np.stack(
    [candidates[rng.choice(len(candidates), PAIRS, replace=len(candidates) < PAIRS)] for _ in range(batch_size)]
  ).astype(np.int32)
  pair_labels = np.zeros((batch_size, PAIRS), np.int32)
  pair_labels[:, : PAIRS // 4] = rng.integers(1, num_predicates + 1, (batch_size, PAIRS // 4))
  relations = np.zeros((batch_size, MAX_RELATIONS, 3), np.int32)
  relations[:, : PAIRS // 4, :2] = pairs[:, : PAIRS // 4]
  relations[:, : PAIRS // 4, 2] = pair_labels[:, : PAIRS // 4]
  relation_mask = np.zeros((batch_size, MAX_RELATIONS), np.float32)
  relation_mask[:, : min(2 * objects, PAIRS // 4)] = 1
  present = np.zeros((batch_size, num_classes), np.float32)
  np.put_along_axis(present, labels, 1.0, axis=1)
  present[:, 0] = 0
  return {
    "image": rng.normal(size=(batch_size, size, size, 3)).astype(np.float32),
    "mask": np.ones(batch_size, np.float32),
    "labels": present,
    "label_weights": np.ones_like(present),
    "object_boxes": boxes.astype(np.float32),
    "object_labels": labels.astype(np.int32),
    "object_mask": object_mask,
    "relations": relations,
    "relation_mask": relation_mask,
    "num_cut_objects": np.zeros(batch_size, np.int32),
    "num_cut_relations": np.zeros(batch_size, np.int32),
    "pairs": pairs,
    "pair_labels": pair_labels,
    "pair_mask": np.ones((batch_size, PAIRS), np.float32),
  }


def images_per_second(config, batch: dict[str, np.ndarray], steps: int) -> tuple[float, float]:
  """(images/s, seconds of compile + first step) of the trainer's jitted train step on `batch`."""
  from jaxgraphs.training import sharding
  from jaxgraphs.training.trainer import Experiment

  experiment = Experiment(config)
  state = experiment.build_state(batch)
  experiment.compile()
  device_batch = sharding.global_batch(batch, experiment.mesh)
  start = time.perf_counter()
  state, metrics = experiment.jit_train_step(state, device_batch)
  jax.block_until_ready(metrics)
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = experiment.jit_train_step(state, device_batch)
  jax.block_until_ready(metrics)
  return steps * len(batch["mask"]) / (time.perf_counter() - start), first


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_size", type=int, default=1)
  parser.add_argument("--steps", type=int, default=2, help="timed steps after the first (compiling) one")
  parser.add_argument("--objects", type=int, default=20, help="real objects per image (VG-150 averages ~12)")
  parser.add_argument("--size", type=int, default=592)
  args = parser.parse_args()
  rng = np.random.default_rng(0)

  config = load_config("linknet_vg_predcls")
  config.batch_size = args.batch_size
  config.task.zero_shot = False  # no VG-150 needed: the train triplets are only for zR@K
  config.data.pp_train = config.data.pp_eval = f"decode|resize({args.size})"  # unused: batches are given
  from jaxgraphs.data import sources

  source = sources.get_source("vg150")
  batch = scene_graph_batch(
    rng, args.batch_size, args.size, args.objects, source.num_classes, len(source.predicate_names) - 1
  )
  linknet_rate, linknet_first = images_per_second(config, batch, args.steps)

  baseline = load_config("baseline_coco")
  baseline.batch_size = args.batch_size
  baseline.model.backbone, baseline.model.feature_key = "vgg16", "pool5"
  baseline_batch = {
    "image": batch["image"],
    "mask": batch["mask"],
    "labels": np.zeros((args.batch_size, 80), np.float32),
    "label_weights": np.ones((args.batch_size, 80), np.float32),
  }
  baseline_rate, baseline_first = images_per_second(baseline, baseline_batch, args.steps)

  device = jax.devices()[0]
  print(
    f"\nTrain step at {args.size} x {args.size}, batch {args.batch_size}, {args.objects} objects/image "
    f"(padded to {MAX_OBJECTS}), {PAIRS} pairs/image, {args.steps} timed steps on {device.platform} "
    f"({device.device_kind}, {jax.device_count()} device(s))"
  )
  print(f"{'step':<44} {'images/s':>9} {'s/image':>8} {'compile+1st (s)':>16} {'x baseline':>11}")
  for name, rate, first in (
    ("LinkNet PredCls (VGG-16, paper widths)", linknet_rate, linknet_first),
    ("baseline: VGG-16 + GAP + linear (same input)", baseline_rate, baseline_first),
  ):
    print(f"{name:<44} {rate:>9.3f} {1 / rate:>8.2f} {first:>16.1f} {baseline_rate / rate:>11.2f}")


if __name__ == "__main__":
  main()
