"""The VG detector's box arithmetic, anchors and NMS against plain NumPy loops and, where PyTorch is installed,
torchvision (whose boxes have exclusive corners: our (x1, y1, x2, y2) is its (x1, y1, x2 + 1, y2 + 1)).

Random boxes lie on a quarter-pixel grid: every width, area, intersection and union is then exact in float32,
only the IoU's division rounds, and it rounds alike everywhere, so keep lists can be compared exactly.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.detection import anchors, boxes, nms

TORCH_REASON = "comparing with torchvision needs PyTorch and torchvision (optional)"


def torchvision_or_skip():
  """torchvision's module, or a skip when PyTorch or torchvision is missing."""
  pytest.importorskip("torch", reason=TORCH_REASON)
  return pytest.importorskip("torchvision", reason=TORCH_REASON)


def exclusive(b: np.ndarray):
  """Our inclusive-corner boxes as a torch tensor of torchvision's exclusive corners."""
  import torch

  b = np.array(b, dtype=np.float32)
  b[..., 2:] += 1.0
  return torch.from_numpy(b)


def random_boxes(rng, n: int, extent: float = 600.0, max_size: float = 200.0) -> np.ndarray:
  """Boxes (n, 4) float32 on a quarter-pixel grid, at least one pixel wide and high."""
  low = np.round(rng.uniform(0, extent, (n, 2)) * 4) / 4
  size = np.round(rng.uniform(1, max_size, (n, 2)) * 4) / 4
  return np.concatenate([low, low + size - 1.0], axis=1).astype(np.float32)


def clustered_boxes(rng, n: int, clusters: int = 12) -> np.ndarray:
  """Boxes (n, 4) float32 jittered around a few objects, so that boxes overlap at every threshold."""
  centres = rng.uniform(100, 500, (clusters, 2))
  sizes = rng.uniform(20, 200, (clusters, 2))
  owner = rng.integers(0, clusters, n)
  centre = centres[owner] + rng.normal(0, 0.15, (n, 2)) * sizes[owner]
  size = np.maximum(sizes[owner] * np.exp(rng.normal(0, 0.2, (n, 2))), 1.0)
  b = np.concatenate([centre - 0.5 * size, centre + 0.5 * size - 1.0], axis=1)
  return (np.round(b * 4) / 4).astype(np.float32)


def numpy_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU (N, M) by a double loop, +1 convention, float32 arithmetic as the jitted code does."""
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  out = np.zeros((len(a), len(b)), np.float32)
  one = np.float32(1)
  for i in range(len(a)):
    for j in range(len(b)):
      area_a = max(a[i, 2] - a[i, 0] + one, 0) * max(a[i, 3] - a[i, 1] + one, 0)
      area_b = max(b[j, 2] - b[j, 0] + one, 0) * max(b[j, 3] - b[j, 1] + one, 0)
      width = max(min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]) + one, 0)
      height = max(min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]) + one, 0)
      intersection = np.float32(width * height)
      union = np.float32(area_a + area_b - intersection)
      out[i, j] = intersection / union if union > 0 else 0.0
  return out


def box_area(b: np.ndarray) -> np.ndarray:
  """Areas (...,) float32, +1 convention, 0 for degenerate boxes."""
  return np.prod(np.maximum(b[..., 2:] - b[..., :2] + np.float32(1), 0), axis=-1).astype(np.float32)


def numpy_nms(b: np.ndarray, scores: np.ndarray, valid: np.ndarray, threshold: float) -> list[int]:
  """Greedy NMS by a plain loop: descending score, equal scores lower index first, IoU > threshold drops."""
  order = sorted((i for i in range(len(b)) if valid[i]), key=lambda i: (-scores[i], i))
  kept = []
  for i in order:
    if kept:
      # IoU of one box against the kept ones, rows of the double-loop reference's float32 arithmetic.
      kept_boxes = b[kept]
      low = np.maximum(b[i, :2], kept_boxes[:, :2])
      high = np.minimum(b[i, 2:], kept_boxes[:, 2:])
      overlap = np.maximum(high - low + np.float32(1), 0).astype(np.float32)
      intersection = overlap[:, 0] * overlap[:, 1]
      union = box_area(b[i]) + box_area(kept_boxes) - intersection
      iou = np.where(union > 0, intersection / np.where(union > 0, union, 1), 0).astype(np.float32)
      # The threshold's exact value (a double), as torchvision compares.
      if np.any(iou.astype(np.float64) > threshold):
        continue
    kept.append(i)
  return kept


@functools.partial(jax.jit, static_argnames=("iou_threshold", "max_output", "block_size"))
def jit_nms(b, scores, valid, iou_threshold, max_output, block_size=nms.DEFAULT_BLOCK_SIZE):
  return nms.nms(b, scores, valid, iou_threshold, max_output, block_size)


@functools.partial(jax.jit, static_argnames=("iou_threshold", "max_output"))
def jit_batched_nms(b, scores, labels, valid, iou_threshold, max_output):
  return nms.batched_nms(b, scores, labels, valid, iou_threshold, max_output)


def kept_list(result) -> list[int]:
  """The kept indices of an (indices, keep) result, in output order; checks that the kept slots come first."""
  indices, keep = np.asarray(result[0]), np.asarray(result[1])
  count = int(keep.sum())
  assert keep[:count].all() and not keep[count:].any()
  assert (indices[count:] == 0).all()
  return indices[:count].tolist()


# ----------------------------------------------------------------------------------------------------- IoU


def test_pairwise_iou_matches_a_double_loop_with_degenerate_and_touching_boxes():
  rng = np.random.default_rng(0)
  special = np.array(
    [
      [0, 0, 9, 9],  # 10 x 10 pixels
      [10, 0, 19, 9],  # touches the first along x = 9.5: no shared pixel, IoU 0
      [9, 0, 18, 9],  # shares the column x = 9 with the first: IoU 10 / 190
      [5, 5, 3, 3],  # degenerate (x2 < x1 - 1): area 0
      [4, 4, 3, 3],  # zero width and height under +1: area 0
      [2, 2, 2, 2],  # one pixel
    ],
    np.float32,
  )
  a = np.concatenate([special, random_boxes(rng, 10, extent=40, max_size=20)])
  b = np.concatenate([special, random_boxes(rng, 7, extent=40, max_size=20)])
  got = np.asarray(boxes.pairwise_iou(jnp.asarray(a), jnp.asarray(b)))
  np.testing.assert_allclose(got, numpy_iou(a, b), rtol=1e-6, atol=0)
  assert got[0, 1] == 0.0 and got[0, 2] == pytest.approx(10 / 190)
  assert (got[3] == 0).all() and (got[4] == 0).all() and got[5, 5] == 1.0 and got[0, 0] == 1.0


# ---------------------------------------------------------------------------------------------- deltas


def numpy_encode(b: np.ndarray, ref: np.ndarray) -> np.ndarray:
  """py-faster-rcnn's bbox_transform, +1 widths, in float64."""
  b, ref = b.astype(np.float64), ref.astype(np.float64)
  w, h = ref[:, 2] - ref[:, 0] + 1, ref[:, 3] - ref[:, 1] + 1
  cx, cy = ref[:, 0] + 0.5 * w, ref[:, 1] + 0.5 * h
  gw, gh = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
  gx, gy = b[:, 0] + 0.5 * gw, b[:, 1] + 0.5 * gh
  return np.stack([(gx - cx) / w, (gy - cy) / h, np.log(gw / w), np.log(gh / h)], axis=1)


def test_encode_matches_numpy_and_decode_inverts_it():
  rng = np.random.default_rng(1)
  references, targets = random_boxes(rng, 64), random_boxes(rng, 64)
  deltas = boxes.encode(jnp.asarray(targets), jnp.asarray(references))
  np.testing.assert_allclose(np.asarray(deltas), numpy_encode(targets, references), rtol=1e-5, atol=1e-5)
  roundtrip = boxes.decode(deltas, jnp.asarray(references))
  np.testing.assert_allclose(np.asarray(roundtrip), targets, rtol=0, atol=1e-5 * 600)
  # Pixel-scale boxes in float32: relative 1e-5 of the coordinates, and exact deltas roundtrip on small ones.
  small_refs, small = random_boxes(rng, 64, extent=1, max_size=3), random_boxes(rng, 64, extent=1, max_size=3)
  again = boxes.decode(boxes.encode(jnp.asarray(small), jnp.asarray(small_refs)), jnp.asarray(small_refs))
  np.testing.assert_allclose(np.asarray(again), small, rtol=0, atol=1e-5)


def test_encode_and_decode_match_torchvision_box_coder():
  torchvision_or_skip()
  import torch
  from torchvision.models.detection._utils import BoxCoder

  rng = np.random.default_rng(2)
  references, targets = random_boxes(rng, 64), random_boxes(rng, 64)
  coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
  # Exclusive corners give torchvision the same widths (x2 + 1 - x1) and centres (x1 + w / 2) as ours.
  theirs = coder.encode_single(exclusive(targets), exclusive(references)).numpy()
  ours = np.asarray(boxes.encode(jnp.asarray(targets), jnp.asarray(references)))
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
  # Decoding, including deltas large enough for both to clamp dw, dh at log(1000 / 16).
  deltas = rng.normal(0, 1.0, (64, 4)).astype(np.float32)
  deltas[:4, 2:] = 6.0
  decoded = coder.decode_single(torch.from_numpy(deltas), exclusive(references)).numpy()
  decoded[:, 2:] -= 1.0  # back to inclusive corners
  ours = np.asarray(boxes.decode(jnp.asarray(deltas), jnp.asarray(references)))
  np.testing.assert_allclose(ours, decoded, rtol=1e-5, atol=1e-3)


# --------------------------------------------------------------------------------------------- anchors


def reference_anchors(base_size, ratios, scales) -> np.ndarray:
  """py-faster-rcnn's generate_anchors written out with loops (ratio-major)."""
  rows = []
  for ratio in ratios:
    # _whctrs of the base anchor [0, 0, base_size - 1, base_size - 1]
    w = h = float(base_size)
    x_ctr = y_ctr = 0.5 * (base_size - 1)
    # _ratio_enum
    ws = float(np.round(math.sqrt(w * h / ratio)))
    hs = float(np.round(ws * ratio))
    for scale in scales:
      # _scale_enum of the ratio anchor (same centre, its w, h are ws, hs), then _mkanchors
      sw, sh = ws * scale, hs * scale
      rows.append([x_ctr - 0.5 * (sw - 1), y_ctr - 0.5 * (sh - 1), x_ctr + 0.5 * (sw - 1), y_ctr + 0.5 * (sh - 1)])
  return np.array(rows)


def test_base_anchors_follow_py_faster_rcnn():
  vg = anchors.base_anchors()
  assert vg.shape == (20, 4)
  np.testing.assert_allclose(vg, reference_anchors(16, anchors.VG_ANCHOR_RATIOS, anchors.VG_ANCHOR_SCALES))
  default = anchors.base_anchors(16, (0.5, 1.0, 2.0), (8, 16, 32))
  np.testing.assert_allclose(default, reference_anchors(16, (0.5, 1.0, 2.0), (8, 16, 32)))
  # py-faster-rcnn's well-known default anchors (its generate_anchors.py).
  np.testing.assert_array_equal(default[0], [-84, -40, 99, 55])
  np.testing.assert_array_equal(default[3], [-56, -56, 71, 71])
  np.testing.assert_array_equal(default[-1], [-168, -344, 183, 359])
  # Every anchor is centred on the cell's centre pixel 7.5.
  np.testing.assert_allclose(0.5 * (vg[:, :2] + vg[:, 2:]), 7.5)


def test_grid_anchors_are_in_height_width_anchor_order():
  base = anchors.base_anchors()
  grid = anchors.grid_anchors((2, 3), stride=16)
  assert grid.shape == (2 * 3 * 20, 4) and grid.dtype == np.float32
  cells = grid.reshape(2, 3, 20, 4)
  for y in range(2):
    for x in range(3):
      np.testing.assert_allclose(cells[y, x], base + [16 * x, 16 * y, 16 * x, 16 * y], rtol=1e-6)
  # The order an RPN conv output (B, H, W, A * k) reshaped to (B, H * W * A, k) has.
  row = (1 * 3 + 2) * 20 + 7
  np.testing.assert_allclose(grid[row], base[7] + [32, 16, 32, 16], rtol=1e-6)


# ------------------------------------------------------------------------------------------------- NMS


def problem(seed: int, n: int, ties: bool = False, invalid: float = 0.0):
  """Clustered boxes, scores (quantised to 8 levels when `ties`) and a valid mask with `invalid` left out."""
  rng = np.random.default_rng(seed)
  b = clustered_boxes(rng, n)
  scores = (rng.integers(0, 8, n) / 8 if ties else rng.permutation(n) / max(n, 1)).astype(np.float32)
  valid = rng.uniform(size=n) >= invalid
  return b, scores, valid


@pytest.mark.parametrize("n", [0, 1, 7, 300, 2000])
def test_nms_matches_the_numpy_greedy_loop(n):
  for seed, threshold in [(0, 0.3), (1, 0.5), (2, 0.7)]:
    b, scores, valid = problem(seed, n, ties=seed == 1, invalid=0.2 if seed == 2 else 0.0)
    expected = numpy_nms(b, scores, valid, threshold)
    got = kept_list(jit_nms(b, scores, valid, threshold, max(n, 1)))
    assert got == expected, (seed, threshold)
    assert all(valid[i] for i in got)
    if n >= 300:
      assert 0 < len(got) < valid.sum(), "the problem should suppress some boxes and keep some"


def test_nms_gives_the_same_answer_with_any_block_size():
  # Small blocks: many blocks, suppression across them and the early stop at max_output all take part.
  b, scores, valid = problem(5, 300, ties=True, invalid=0.1)
  expected = numpy_nms(b, scores, valid, 0.5)
  for block_size in (1, 32, 100):
    assert kept_list(jit_nms(b, scores, valid, 0.5, 300, block_size)) == expected, block_size
    assert kept_list(jit_nms(b, scores, valid, 0.5, 40, block_size)) == expected[:40], block_size


def test_nms_at_an_iou_equal_to_the_threshold():
  # IoU exactly 1/2 is not above 0.5: both kept. IoU exactly 3/10 computes in float32 as 0.30000001, above the
  # double 0.3 that torchvision compares with, so torchvision drops the second box, and so does nms.
  a = [0, 0, 9, 9]
  half, three_tenths = np.array([a, [0, 0, 4, 9]], np.float32), np.array([a, [0, 0, 2, 9]], np.float32)
  scores, valid = np.array([0.9, 0.8], np.float32), np.ones(2, bool)
  assert np.asarray(boxes.pairwise_iou(half, half))[0, 1] == np.float32(0.5)
  assert kept_list(jit_nms(half, scores, valid, 0.5, 2)) == [0, 1]
  assert kept_list(jit_nms(three_tenths, scores, valid, 0.3, 2)) == [0]
  assert numpy_nms(three_tenths, scores, valid, 0.3) == [0] and numpy_nms(half, scores, valid, 0.5) == [0, 1]
  torchvision = pytest.importorskip("torchvision", reason=TORCH_REASON)
  import torch

  assert torchvision.ops.nms(exclusive(half), torch.from_numpy(scores), 0.5).tolist() == [0, 1]
  assert torchvision.ops.nms(exclusive(three_tenths), torch.from_numpy(scores), 0.3).tolist() == [0]


@pytest.mark.parametrize("n", [0, 1, 7, 300, 2000])
def test_nms_matches_torchvision(n):
  torchvision = torchvision_or_skip()
  import torch

  for seed in range(3):
    for threshold in (0.3, 0.5, 0.7):
      b, scores, _ = problem(10 + seed, n)
      theirs = torchvision.ops.nms(exclusive(b), torch.from_numpy(scores), threshold).tolist()
      got = kept_list(jit_nms(b, scores, np.ones(n, bool), threshold, max(n, 1)))
      assert got == theirs, (seed, threshold)


def test_nms_breaks_score_ties_by_lower_index_as_torchvision():
  torchvision = torchvision_or_skip()
  import torch

  # Many equal scores among overlapping boxes: which of two tied boxes survives depends on the tie-break.
  for seed in range(3):
    b, scores, valid = problem(20 + seed, 300, ties=True)
    theirs = torchvision.ops.nms(exclusive(b), torch.from_numpy(scores), 0.5).tolist()
    # torchvision's CPU kernel sorts the scores stably (descending), so among ties it too takes lower index first.
    got = kept_list(jit_nms(b, scores, valid, 0.5, 300))
    assert got == theirs == numpy_nms(b, scores, valid, 0.5)


def test_nms_never_keeps_invalid_boxes_and_handles_none_valid():
  b, scores, valid = problem(3, 300, invalid=0.5)
  # Invalid boxes scored highest: they must neither be kept nor suppress valid ones.
  scores = np.where(valid, scores, scores + 10).astype(np.float32)
  got = kept_list(jit_nms(b, scores, valid, 0.5, 300))
  assert got == numpy_nms(b, scores, valid, 0.5) and all(valid[i] for i in got)
  assert kept_list(jit_nms(b, scores, np.zeros(300, bool), 0.5, 300)) == []
  indices, keep = jit_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, bool), 0.5, 5)
  assert indices.shape == keep.shape == (5,) and indices.dtype == jnp.int32 and not np.asarray(keep).any()


def test_nms_truncates_to_max_output_and_pads_beyond_the_kept_count():
  b, scores, valid = problem(4, 2000)
  expected = numpy_nms(b, scores, valid, 0.7)
  assert len(expected) > 50
  assert kept_list(jit_nms(b, scores, valid, 0.7, 50)) == expected[:50]
  # More slots than boxes: all kept boxes, then padding.
  few = slice(0, 7)
  indices, keep = jit_nms(b[few], scores[few], valid[few], 0.7, 20)
  assert indices.shape == (20,) and kept_list((indices, keep)) == numpy_nms(b[few], scores[few], valid[few], 0.7)


def test_nms_under_vmap_over_images():
  problems = [problem(30 + image, 300, ties=image == 1, invalid=0.1 * image) for image in range(3)]
  stacked = [np.stack(parts) for parts in zip(*problems)]
  batched = jax.jit(jax.vmap(functools.partial(nms.nms, iou_threshold=0.5, max_output=120)))
  indices, keep = batched(*stacked)
  assert indices.shape == keep.shape == (3, 120)
  for image, (b, scores, valid) in enumerate(problems):
    assert kept_list((indices[image], keep[image])) == numpy_nms(b, scores, valid, 0.5)[:120]


def numpy_batched_nms(b, scores, labels, valid, threshold) -> list[int]:
  """NMS per label by the greedy loop, merged in descending score (equal scores: lower index first)."""
  kept = []
  for label in np.unique(labels):
    kept += numpy_nms(b, scores, valid & (labels == label), threshold)
  return sorted(kept, key=lambda i: (-scores[i], i))


@pytest.mark.parametrize("n", [300, 2000])
def test_batched_nms_matches_per_label_loops_and_torchvision(n):
  rng = np.random.default_rng(40 + n)
  b, scores, valid = problem(40 + n, n, invalid=0.1)
  b = b - 150.0  # some coordinates below 0: labels must stay apart there too
  labels = rng.integers(0, 5, n).astype(np.int32)
  expected = numpy_batched_nms(b, scores, labels, valid, 0.5)
  got = kept_list(jit_batched_nms(b, scores, labels, valid, 0.5, n))
  assert got == expected
  assert len(got) > len(numpy_nms(b, scores, valid, 0.5)), "labels apart keep more than one NMS over all"
  torchvision = pytest.importorskip("torchvision", reason=TORCH_REASON)
  import torch

  # torchvision's own offset (its largest coordinate + 1) can let labels meet below 0, so it gets the boxes as
  # they were; a shift by a multiple of 1/4 changes no IoU of grid boxes.
  theirs = torchvision.ops.batched_nms(
    exclusive(b[valid] + 150.0), torch.from_numpy(scores[valid]), torch.from_numpy(labels[valid]), 0.5
  )
  assert got == np.flatnonzero(valid)[theirs.numpy()].tolist()
