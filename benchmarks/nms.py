r"""NMS of an RPN's proposals: jaxgraphs' jitted fixed-shape `nms` against torchvision.ops.nms, in one run.

The proposals imitate an RPN's top 12,000 on a 592 px image: boxes clustered around a few hundred objects of
varied sizes (jittered copies, as anchors regressed onto the same object give), plus some background boxes,
clipped to the image, with scores that are higher near an object's true box. Both take the same boxes (given to
torchvision as x2 + 1, y2 + 1, its exclusive corners) and the same threshold; torchvision's keep list is cut
to the first `max_output`, as the RPN does. Times are the median of `repeats` calls after one warm-up call
(which compiles the jitted function), each waited for (`jax.block_until_ready`).

  python benchmarks/nms.py [--num_boxes=12000] [--repeats=10] [--max_output=2000] [--iou_threshold=0.7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):  # run as `python benchmarks/nms.py`: the repository root holds `jaxgraphs`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgraphs.models.detection import nms as nms_lib

IMAGE_SIZE = 592


def rpn_like_proposals(num_boxes: int, seed: int = 0, num_objects: int = 300) -> tuple[np.ndarray, np.ndarray]:
  """Boxes (num_boxes, 4) float32 (+1 convention) and scores (num_boxes,) float32 clustered like RPN proposals."""
  rng = np.random.default_rng(seed)
  centres = rng.uniform(0, IMAGE_SIZE, (num_objects, 2))
  sizes = np.exp(rng.uniform(np.log(16), np.log(IMAGE_SIZE), (num_objects, 2)))
  num_background = num_boxes // 10
  owner = rng.integers(0, num_objects, num_boxes - num_background)
  # Regressed anchors scatter around their object by a fraction of its size.
  noise = rng.normal(0.0, 0.12, (owner.size, 4))
  centre = centres[owner] + noise[:, :2] * sizes[owner]
  size = sizes[owner] * np.exp(noise[:, 2:])
  background_centre = rng.uniform(0, IMAGE_SIZE, (num_background, 2))
  background_size = np.exp(rng.uniform(np.log(8), np.log(IMAGE_SIZE), (num_background, 2)))
  centre = np.concatenate([centre, background_centre])
  size = np.concatenate([size, background_size])
  boxes = np.concatenate([centre - 0.5 * size, centre + 0.5 * size - 1.0], axis=1)
  boxes = np.clip(boxes, 0.0, IMAGE_SIZE - 1.0)
  closeness = np.concatenate([np.exp(-np.sum(noise**2, axis=1)), np.zeros(num_background)])
  scores = closeness + 0.3 * rng.uniform(size=num_boxes)
  permutation = rng.permutation(num_boxes)
  return boxes[permutation].astype(np.float32), scores[permutation].astype(np.float32)


def median_ms(function, repeats: int) -> float:
  """Median milliseconds of `repeats` calls of `function()` after one warm-up call, each waited for."""
  jax.block_until_ready(function())
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(function())
    seconds.append(time.perf_counter() - start)
  return 1000.0 * statistics.median(seconds)


def main(argv=None) -> None:
  """Times both NMS implementations and prints one table."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_boxes", type=int, default=12000)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--max_output", type=int, default=2000)
  parser.add_argument("--iou_threshold", type=float, default=0.7)
  parser.add_argument("--block_size", type=int, default=nms_lib.DEFAULT_BLOCK_SIZE)
  args = parser.parse_args(argv)

  boxes, scores = rpn_like_proposals(args.num_boxes)
  device_boxes, device_scores = jnp.asarray(boxes), jnp.asarray(scores)
  device_valid = jnp.ones((args.num_boxes,), bool)
  jitted = jax.jit(nms_lib.nms, static_argnames=("iou_threshold", "max_output", "block_size"))

  def ours():
    return jitted(
      device_boxes, device_scores, device_valid, iou_threshold=args.iou_threshold, max_output=args.max_output,
      block_size=args.block_size,
    )  # fmt: skip

  start = time.perf_counter()
  indices, keep = jax.block_until_ready(ours())
  compile_s = time.perf_counter() - start
  ours_kept = np.asarray(indices)[np.asarray(keep)]
  rows = [("jaxgraphs nms (jit)", median_ms(ours, args.repeats), ours_kept)]

  try:
    import torch
    import torchvision
  except ImportError:
    torch = None
  if torch is not None:
    exclusive = torch.from_numpy(boxes.copy())
    exclusive[:, 2:] += 1.0
    torch_scores = torch.from_numpy(scores)

    def theirs():
      return torchvision.ops.nms(exclusive, torch_scores, args.iou_threshold)[: args.max_output]

    rows.append(("torchvision.ops.nms", median_ms(theirs, args.repeats), theirs().numpy()))

  device = jax.devices()[0]
  print(
    f"NMS of {args.num_boxes} RPN-like proposals ({IMAGE_SIZE} px image), IoU > {args.iou_threshold}, first "
    f"{args.max_output} kept, block {args.block_size}; {device.platform} ({device.device_kind}), jax "
    f"{jax.__version__}, {os.cpu_count()} host CPUs" + ("" if torch is None else f", torch {torch.__version__}")
  )
  reference = rows[-1]
  width = max(len(name) for name, _, _ in rows) + 2
  header = f"{'nms':<{width}}{'ms':>10}{'x torchvision':>15}{'kept':>7}{'same keep list':>16}"
  lines = [header, "-" * len(header)]
  for name, ms, kept in rows:
    ratio = "-" if torch is None else f"{ms / reference[1]:.2f}"
    same = "-" if torch is None else ("yes" if np.array_equal(kept, reference[2]) else "NO")
    lines.append(f"{name:<{width}}{ms:>10.2f}{ratio:>15}{len(kept):>7}{same:>16}")
  lines.append(
    f"ms: median of {args.repeats} calls after a warm-up call (jaxgraphs' first call, compilation included: "
    f"{compile_s:.2f} s); same keep list: equal indices in equal order to torchvision's"
  )
  print("\n".join(lines), flush=True)


if __name__ == "__main__":
  main()
