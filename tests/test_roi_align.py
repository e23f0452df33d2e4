"""roi_align against torchvision.ops.roi_align outputs and gradients stored in tests/fixtures/roi_align.npz."""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.layers.roi_align import roi_align

FIXTURE = np.load(pathlib.Path(__file__).parent / "fixtures" / "roi_align.npz")
CASES = [tuple(case) for case in json.loads(str(FIXTURE["cases"]))]
ADAPTIVE_BOUND = 4  # >= ceil(box size / 7) for every fixture box, so adaptive sampling is exact


def case_function(case, max_sampling_ratio=ADAPTIVE_BOUND):
  """roi_align with the options of fixture case `case`, as a function of (features, boxes, box_mask)."""
  aligned, sampling_ratio, spatial_scale, output_size = CASES[case]
  return lambda features, boxes, box_mask: roi_align(
    features, boxes, box_mask, output_size=tuple(output_size), spatial_scale=spatial_scale,
    sampling_ratio=sampling_ratio, aligned=aligned, max_sampling_ratio=max_sampling_ratio,
  )


@functools.lru_cache(maxsize=None)
def output_and_gradient(case):
  """Output and feature gradient (for the stored cotangent) of one fixture case, jitted once."""
  function = case_function(case)
  boxes, mask = jnp.asarray(FIXTURE[f"boxes_{case}"]), jnp.asarray(FIXTURE["box_mask"])

  @jax.jit
  def run(features, cotangent):
    out, vjp = jax.vjp(lambda f: function(f, boxes, mask), features)
    return out, vjp(cotangent)[0]

  out, grad = run(jnp.asarray(FIXTURE["features"]), jnp.asarray(FIXTURE[f"cotangent_{case}"]))
  return np.asarray(out), np.asarray(grad)


@pytest.mark.parametrize("case", range(len(CASES)), ids=[str(c) for c in CASES])
def test_matches_torchvision_output(case):
  out, _ = output_and_gradient(case)
  assert out.shape == FIXTURE[f"out_{case}"].shape
  np.testing.assert_allclose(out, FIXTURE[f"out_{case}"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", range(len(CASES)), ids=[str(c) for c in CASES])
def test_matches_torchvision_feature_gradient(case):
  _, grad = output_and_gradient(case)
  np.testing.assert_allclose(grad, FIXTURE[f"grad_{case}"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", [i for i, c in enumerate(CASES) if c[1] <= 0 and c[2] == 1 / 16])
def test_default_adaptive_bound_is_exact_for_boxes_inside_the_map(case):
  out = case_function(case, max_sampling_ratio=None)(FIXTURE["features"], FIXTURE[f"boxes_{case}"], FIXTURE["box_mask"])
  inside = FIXTURE["inside"]
  np.testing.assert_allclose(np.asarray(out)[inside], FIXTURE[f"out_{case}"][inside], atol=1e-5, rtol=0)


def test_adaptive_grid_is_capped_at_the_bound():
  # A box 14 x 21 feature pixels wants a 2 x 3 grid per 7 x 7 bin; a bound of 1 samples it like ratio 1.
  features = jnp.asarray(FIXTURE["features"])
  boxes = jnp.array([[[0.5, 0.5, 21.5, 14.5]], [[1.0, 1.0, 5.0, 5.0]]])
  capped = roi_align(features, boxes, sampling_ratio=0, max_sampling_ratio=1)
  fixed = roi_align(features, boxes, sampling_ratio=1)
  np.testing.assert_allclose(np.asarray(capped), np.asarray(fixed), atol=1e-6)


def test_padded_boxes_give_zeros_even_with_nan_coordinates():
  out, grad = output_and_gradient(0)
  assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
  assert np.all(out[1, 5:] == 0.0)
  assert np.abs(out[0, 0]).sum() > 0


def test_box_entirely_outside_the_map_gives_zeros():
  assert np.all(FIXTURE["out_0"][0, 5] == 0.0)  # torchvision: every sample < -1
  np.testing.assert_array_equal(output_and_gradient(0)[0][0, 5], 0.0)


def test_keeps_the_feature_dtype():
  features = jnp.asarray(FIXTURE["features"], jnp.bfloat16)
  out = case_function(0)(features, FIXTURE["boxes_0"], FIXTURE["box_mask"])
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), FIXTURE["out_0"], atol=5e-2)


def test_no_gradient_into_the_boxes():
  features, boxes = jnp.asarray(FIXTURE["features"]), jnp.asarray(FIXTURE["boxes_0"])
  grad = jax.grad(lambda b: roi_align(features, b, jnp.asarray(FIXTURE["box_mask"])).sum())(boxes)
  assert np.all(np.asarray(grad) == 0.0)


@pytest.mark.parametrize(
  "features, boxes, message",
  [
    (np.zeros((2, 10, 12)), np.zeros((2, 3, 4)), "features must be"),
    (np.zeros((2, 10, 12, 4)), np.zeros((2, 3, 5)), "boxes must be"),
    (np.zeros((2, 10, 12, 4)), np.zeros((1, 3, 4)), "boxes must be"),
  ],
)
def test_bad_shapes_are_named(features, boxes, message):
  with pytest.raises(ValueError, match=message):
    roi_align(jnp.asarray(features), jnp.asarray(boxes))


@pytest.mark.torch
def test_random_boxes_match_live_torchvision():
  torch = pytest.importorskip("torch", reason="live comparison needs torch")
  torchvision = pytest.importorskip("torchvision", reason="live comparison needs torchvision")
  rng = np.random.default_rng(3)
  features = rng.standard_normal((2, 9, 13, 3)).astype(np.float32)
  corners = rng.uniform(-40, 230, (2, 10, 2, 2)).astype(np.float32)
  boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1)
  rois = torch.from_numpy(np.column_stack([np.repeat([0.0, 1.0], 10), boxes.reshape(-1, 4)]).astype(np.float32))
  for aligned in (False, True):
    expected = torchvision.ops.roi_align(
      torch.from_numpy(features).permute(0, 3, 1, 2), rois, (7, 7), 1 / 16, 2, aligned
    ).permute(0, 2, 3, 1).numpy().reshape(2, 10, 7, 7, 3)
    out = roi_align(jnp.asarray(features), jnp.asarray(boxes), spatial_scale=1 / 16, aligned=aligned)
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5, rtol=0)
