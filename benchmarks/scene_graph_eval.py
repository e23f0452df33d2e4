"""Time of SceneGraphEvaluator on a VG-150 test split sized workload against loop-based baselines.

Workload: 26,000 PredCls images, 64 objects each, all 64 * 63 = 4,032 ordered pairs with 51 predicate
scores, 10 GT relations; R@ / ngR@ / mR@ / zR@ {20, 50, 100}. Images are generated one at a time (the full
score tensor would be 26,000 * 4,032 * 51 floats = 21 GB) and only the evaluator's `update` is timed.

Baselines, timed in the same run on the first `--baseline_images` images and extrapolated linearly:
- naive loop: plain Python loops over pairs and predicates, a stable sort of Python tuples, and a loop
  over the kept predictions for every GT relation (a direct transcription of the protocol);
- per-GT NumPy: the structure of the neural-motifs / Scene-Graph-Benchmark evaluator - full (stable) argsort
  of all 201,600 (pair, predicate) scores, a Python loop over GT relations, matches as lists, and
  `reduce(np.union1d, ...)` per K.
Both must give the same R@K / ngR@K as the evaluator on the shared images; the script checks it.

  python benchmarks/scene_graph_eval.py                      # full run (~3 min on one free core)
  python benchmarks/scene_graph_eval.py --num_images 2000    # quick
"""

from __future__ import annotations

import argparse
import time
from functools import reduce

import numpy as np

from jaxgraphs.evaluation.scene_graph_recall import SceneGraphEvaluator, box_iou

KS = (20, 50, 100)
NUM_PREDICATES = 50
NUM_CLASSES = 150


def make_image(rng: np.random.Generator, num_objects: int, num_relations: int) -> dict:
  """One PredCls image; GT pairs get a boost on their GT predicate so recall is far from 0 and 1."""
  xy = rng.uniform(0, 500, (num_objects, 2))
  boxes = np.concatenate([xy, xy + rng.uniform(10, 300, (num_objects, 2))], axis=1).astype(np.float32)
  labels = rng.integers(1, NUM_CLASSES + 1, num_objects)
  flat = rng.choice(num_objects * (num_objects - 1), num_relations, replace=False)
  subjects, objects = np.nonzero(~np.eye(num_objects, dtype=bool))
  pairs = np.stack([subjects, objects], axis=1)
  relations = np.column_stack([pairs[flat], rng.integers(1, NUM_PREDICATES + 1, num_relations)])
  scores = rng.random((len(pairs), NUM_PREDICATES + 1), dtype=np.float32)
  scores[flat, relations[:, 2]] += 3.0 * rng.random(num_relations, dtype=np.float32)
  scores /= scores.sum(axis=1, keepdims=True)
  return {"gt_boxes": boxes, "gt_labels": labels, "gt_relations": relations, "pairs": pairs, "pair_scores": scores}


def naive_loop_recall(image: dict, k_max: int) -> tuple[list, list]:
  """Per K, the recall of one image with and without graph constraint, from plain Python loops."""
  boxes, labels = image["gt_boxes"].tolist(), image["gt_labels"].tolist()
  graph, no_graph = [], []
  for (s, o), row in zip(image["pairs"].tolist(), image["pair_scores"].tolist()):
    best = 1
    for p in range(2, len(row)):
      if row[p] > row[best]:
        best = p
    graph.append((row[best], s, o, best))  # PredCls: object scores are 1
    for p in range(1, len(row)):
      no_graph.append((row[p], s, o, p))

  def iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(w, 0) * max(h, 0)
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)

  recalls = []
  for triplets in (graph, no_graph):
    kept = sorted(triplets, key=lambda t: -t[0])[:k_max]
    first_hit = []
    for gs, go, gp in image["gt_relations"].tolist():
      rank = next(
        (
          r
          for r, (_, s, o, p) in enumerate(kept)
          if p == gp
          and labels[s] == labels[gs]
          and labels[o] == labels[go]
          and iou(boxes[gs], boxes[s]) >= 0.5
          and iou(boxes[go], boxes[o]) >= 0.5
        ),
        k_max,
      )
      first_hit.append(rank)
    recalls.append([sum(r < k for r in first_hit) / len(first_hit) for k in KS])
  return recalls[0], recalls[1]


def per_gt_numpy_recall(image: dict, k_max: int) -> tuple[list, list]:
  """Per K, recall with and without graph constraint, structured like the neural-motifs evaluator."""
  boxes, labels, pairs = image["gt_boxes"], image["gt_labels"], image["pairs"]
  scores = image["pair_scores"][:, 1:].astype(np.float64)
  relations = image["gt_relations"]
  gt_triplets = np.column_stack([labels[relations[:, 0]], relations[:, 2], labels[relations[:, 1]]])
  gt_boxes = np.column_stack([boxes[relations[:, 0]], boxes[relations[:, 1]]])

  graph_order = np.argsort(-scores.max(1), kind="stable")
  graph_rels = np.column_stack([pairs[graph_order], scores[graph_order].argmax(1) + 1])
  entry_order = np.argsort(-scores.ravel(), kind="stable")[:k_max]
  no_graph_rels = np.column_stack([pairs[entry_order // NUM_PREDICATES], entry_order % NUM_PREDICATES + 1])

  recalls = []
  for rels in (graph_rels, no_graph_rels):
    triplets = np.column_stack([labels[rels[:, 0]], rels[:, 2], labels[rels[:, 1]]])
    pred_boxes = np.column_stack([boxes[rels[:, 0]], boxes[rels[:, 1]]])
    pred_to_gt = [[] for _ in range(len(rels))]
    for gt_index in range(len(relations)):
      same = np.flatnonzero((triplets == gt_triplets[gt_index]).all(1))
      if same.size == 0:
        continue
      subject_iou = box_iou(gt_boxes[gt_index : gt_index + 1, :4], pred_boxes[same, :4])[0]
      object_iou = box_iou(gt_boxes[gt_index : gt_index + 1, 4:], pred_boxes[same, 4:])[0]
      for i in same[(subject_iou >= 0.5) & (object_iou >= 0.5)]:
        pred_to_gt[i].append(gt_index)
    recalls.append([len(reduce(np.union1d, pred_to_gt[:k])) / len(relations) for k in KS])
  return recalls[0], recalls[1]


class Stopwatch:
  """Accumulates wall-clock and CPU seconds of the blocks it times (the machine may be shared)."""

  def __init__(self):
    self.wall = self.cpu = 0.0

  def __enter__(self):
    self._start = time.perf_counter(), time.process_time()

  def __exit__(self, *exc):
    self.wall += time.perf_counter() - self._start[0]
    self.cpu += time.process_time() - self._start[1]


def time_baseline(function, images: list) -> tuple[Stopwatch, np.ndarray]:
  """Time over `images` and the mean (R@K..., ngR@K...)."""
  stopwatch = Stopwatch()
  with stopwatch:
    recalls = [np.concatenate(function(image, max(KS))) for image in images]
  return stopwatch, np.mean(recalls, axis=0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_images", type=int, default=26000)
  parser.add_argument("--num_objects", type=int, default=64)
  parser.add_argument("--num_relations", type=int, default=10)
  parser.add_argument("--baseline_images", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  rng = np.random.default_rng(args.seed)
  baseline_images = [make_image(rng, args.num_objects, args.num_relations) for _ in range(args.baseline_images)]
  naive_time, naive_recall = time_baseline(naive_loop_recall, baseline_images)
  per_gt_time, per_gt_recall = time_baseline(per_gt_numpy_recall, baseline_images)

  check = SceneGraphEvaluator("predcls", ks=KS)
  for image in baseline_images:
    check.update(image)
  check_result = check.result()
  ours_recall = [check_result[f"predcls/{name}@{k}"] for name in ("R", "ngR") for k in KS]
  for name, recall in (("naive loop", naive_recall), ("per-GT NumPy", per_gt_recall)):
    if not np.allclose(recall, ours_recall, atol=1e-12):
      raise SystemExit(f"{name} disagrees with SceneGraphEvaluator: {recall} vs {ours_recall}")

  # The training triplets make zR@K do real work: half of the possible GT triplets count as seen.
  classes, predicates = np.arange(1, NUM_CLASSES + 1), np.arange(1, NUM_PREDICATES + 1)
  all_triplets = np.stack(np.meshgrid(classes, classes, predicates, indexing="ij"), axis=-1).reshape(-1, 3)
  evaluator = SceneGraphEvaluator("predcls", ks=KS, train_triplets=all_triplets[::2])
  rng = np.random.default_rng(args.seed)
  generate_time, update_time = Stopwatch(), Stopwatch()
  for _ in range(args.num_images):
    with generate_time:
      image = make_image(rng, args.num_objects, args.num_relations)
    with update_time:
      evaluator.update(image)
  result = evaluator.result()

  n, b = args.num_images, args.baseline_images
  print(
    f"{n} images x {args.num_objects} objects ({args.num_objects * (args.num_objects - 1)} pairs x "
    f"{NUM_PREDICATES + 1} scores), {args.num_relations} GT relations, PredCls, K = {KS}"
  )
  print(f"data generation (not counted): {generate_time.wall:.1f} s wall, {generate_time.cpu:.1f} s CPU")
  print()
  print(
    f"| implementation | images timed | ms / image (wall) | ms / image (CPU) | CPU time for {n} images "
    "| speed-up (CPU) |"
  )
  print("|---|---:|---:|---:|---:|---:|")
  rows = (
    ("naive Python loop (baseline)", b, naive_time, "extrapolated"),
    ("per-GT NumPy, neural-motifs structure", b, per_gt_time, "extrapolated"),
    ("SceneGraphEvaluator (R, ngR, mR, zR)", n, update_time, "measured"),
  )
  for name, timed, stopwatch, how in rows:
    wall, cpu = stopwatch.wall / timed, stopwatch.cpu / timed
    print(
      f"| {name} | {timed} | {1e3 * wall:.2f} | {1e3 * cpu:.2f} | {cpu * n:.1f} s ({how}) | "
      f"{naive_time.cpu / b / cpu:.1f}x |"
    )
  print()
  for name in ("R", "ngR", "mR", "zR"):
    print(f"{name}@20/50/100 = " + " / ".join(f"{100 * result[f'predcls/{name}@{k}']:.2f}" for k in KS))
  print(f"baselines agree with the evaluator on their {b} images (R@K and ngR@K)")


if __name__ == "__main__":
  main()
