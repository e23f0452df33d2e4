r"""Train-step images/s of LinkNet (configs/linknet_vg_predcls.py, paper widths) at VG-150's 592 px, beside its
backbone.

LinkNet's step: VGG-16 on 592 x 592 inputs, RoIAlign 7x7 + fc6/fc7 for `--objects` real objects (padded to 64, as
pack_scene_graph(64, 128) pads VG-150), the object / edge relational embeddings, union-box features and the
predicate classifier for 256 sampled pairs per image (the reference's RELS_PER_IMG), the eq. 18 loss, SGD: the
trainer's own `Experiment.jit_train_step`, timed by benchmarks/step_timing.py on this machine's JAX devices.
Random batches shaped as the VG-150 pipeline shapes them (`--objects` real objects, 2 relations per object, 64
of 256 pairs foreground).

Baseline, measured in the same run: the train step of the multi-label baseline (configs/baseline_coco.py:
backbone + global average pooling + linear, sigmoid cross-entropy) with the same VGG-16 at the same input size,
i.e. what the backbone alone costs; the 'x baseline' column is each step's time over the baseline's.

  JAX_PLATFORMS=cpu python benchmarks/linknet_step.py                       # full widths, batch 1
  JAX_PLATFORMS=cpu python benchmarks/linknet_step.py --batch_size=2 --steps=3 --objects=12
  python benchmarks/linknet_step.py --batch_size=6 --steps=10               # an accelerator, the paper's batch
  JAX_PLATFORMS=cpu python benchmarks/linknet_step.py --tiny                # configs/linknet_shapes.py:tiny, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

if __package__ in (None, ""):  # run as `python benchmarks/linknet_step.py`: the repository root holds `benchmarks`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import step_timing
from jaxgraphs.data import pipeline


@dataclasses.dataclass(frozen=True)
class Packing:
  """How a batch is padded: objects and relations per image, sampled pairs per image."""

  max_objects: int
  max_relations: int
  pairs: int


VG150 = Packing(64, 128, 256)  # pack_scene_graph(64, 128)|sample_relation_pairs(256, 0.25)
TINY = Packing(8, 16, 16)  # the built-in scene graphs' pack_scene_graph(8, 16)


def scene_graph_batch(
  rng: np.random.Generator,
  batch_size: int,
  size: int,
  objects: int,
  num_classes: int,
  num_predicates: int,
  packing: Packing = VG150,
) -> dict[str, np.ndarray]:
  """A random batch with the keys and shapes of the VG-150 train pipeline."""
  max_objects, max_relations, num_pairs = packing.max_objects, packing.max_relations, packing.pairs
  corners = rng.uniform(0, size, (batch_size, max_objects, 2, 2))
  boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2) + 8], axis=-1).clip(0, size - 1)
  object_mask = np.zeros((batch_size, max_objects), np.float32)
  object_mask[:, :objects] = 1
  labels = np.where(object_mask > 0, rng.integers(1, num_classes, (batch_size, max_objects)), 0)
  candidates = np.array([(s, o) for s in range(objects) for o in range(objects) if s != o])
  pairs = np.stack(
    [candidates[rng.choice(len(candidates), num_pairs, replace=len(candidates) < num_pairs)] for _ in range(batch_size)]
  ).astype(np.int32)
  foreground = min(num_pairs // 4, max_relations)
  pair_labels = np.zeros((batch_size, num_pairs), np.int32)
  pair_labels[:, :foreground] = rng.integers(1, num_predicates + 1, (batch_size, foreground))
  relations = np.zeros((batch_size, max_relations, 3), np.int32)
  relations[:, :foreground, :2] = pairs[:, :foreground]
  relations[:, :foreground, 2] = pair_labels[:, :foreground]
  relation_mask = np.zeros((batch_size, max_relations), np.float32)
  relation_mask[:, : min(2 * objects, foreground)] = 1
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
    "pair_mask": np.ones((batch_size, num_pairs), np.float32),
  }


def main(argv=None):
  """Times LinkNet's train step and the same backbone's multi-label step; prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_size", type=int, default=1)
  parser.add_argument("--steps", type=int, default=2, help="timed steps after the first (compiling) one")
  parser.add_argument("--objects", type=int, default=None, help="real objects per image (default 20; --tiny: 4)")
  parser.add_argument("--size", type=int, default=None, help="image side (default 592; --tiny: 64)")
  parser.add_argument("--tiny", action="store_true", help="configs/linknet_shapes.py:predcls,tiny (the unit tests')")
  args = parser.parse_args(argv)
  size = args.size or (64 if args.tiny else 592)
  objects = args.objects or (4 if args.tiny else 20)
  packing = TINY if args.tiny else VG150
  rng = np.random.default_rng(0)

  if args.tiny:
    config, name = step_timing.load_config("linknet_shapes", "predcls,tiny"), "LinkNet PredCls (tiny widths)"
    baseline, backbone = step_timing.load_config("baseline_shapes", "tiny"), "tiny VGG"
  else:
    config, name = step_timing.load_config("linknet_vg_predcls"), "LinkNet PredCls (VGG-16, paper widths)"
    baseline, backbone = step_timing.load_config("baseline_coco"), "VGG-16"
  config.batch_size = args.batch_size
  config.task.zero_shot = False  # no dataset needed: the train triplets are only for zR@K
  info = pipeline.dataset_info(config.data)
  batch = scene_graph_batch(
    rng, args.batch_size, size, objects, info.num_classes, len(info.predicate_names) - 1, packing
  )
  rows = [step_timing.measure(name, config, batch, args.steps)]

  # The baseline's backbone is LinkNet's, at the same widths, pooled after its last convolution block.
  baseline.batch_size = args.batch_size
  baseline.model.backbone, baseline.model.feature_key = config.model.backbone, "pool5"
  baseline.model.backbone_kwargs = dict(config.model.backbone_kwargs)
  classes = pipeline.dataset_info(baseline.data).num_classes
  baseline_batch = {
    "image": batch["image"],
    "mask": batch["mask"],
    "labels": np.zeros((args.batch_size, classes), np.float32),
    "label_weights": np.ones((args.batch_size, classes), np.float32),
  }
  baseline_name = f"baseline: {backbone} + GAP + linear (same input)"
  rows.append(step_timing.measure(baseline_name, baseline, baseline_batch, args.steps))

  print(
    f"\nTrain step at {size} x {size}, batch {args.batch_size}, {objects} objects/image "
    f"(padded to {packing.max_objects}), {packing.pairs} pairs/image; {step_timing.platform_line()}"
  )
  step_timing.print_table(rows, baseline_name)
  return rows


if __name__ == "__main__":
  main()
