"""roi_align against torchvision.ops.roi_align outputs and gradients stored in tests/fixtures/roi_align.npz."""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.models.layers.roi_align import IMPLEMENTATIONS, roi_align

FIXTURE = np.load(pathlib.Path(__file__).parent / "fixtures" / "roi_align.npz")
CASES = [tuple(case) for case in json.loads(str(FIXTURE["cases"]))]
ADAPTIVE_BOUND = 4  # >= ceil(box size / 7) for every fixture box, so adaptive sampling is exact


def case_function(case, max_sampling_ratio=ADAPTIVE_BOUND, implementation="gather"):
  """roi_align with the options of fixture case `case`, as a function of (features, boxes, box_mask)."""
  aligned, sampling_ratio, spatial_scale, output_size = CASES[case]
  return lambda features, boxes, box_mask: roi_align(
    features,
    boxes,
    box_mask,
    output_size=tuple(output_size),
    spatial_scale=spatial_scale,
    sampling_ratio=sampling_ratio,
    aligned=aligned,
    max_sampling_ratio=max_sampling_ratio,
    implementation=implementation,
  )


@functools.lru_cache(maxsize=None)
def output_and_gradient(case, implementation="gather"):
  """Output and feature gradient (for the stored cotangent) of one fixture case, jitted once."""
  function = case_function(case, implementation=implementation)
  boxes, mask = jnp.asarray(FIXTURE[f"boxes_{case}"]), jnp.asarray(FIXTURE["box_mask"])

  @jax.jit
  def run(features, cotangent):
    out, vjp = jax.vjp(lambda f: function(f, boxes, mask), features)
    return out, vjp(cotangent)[0]

  out, grad = run(jnp.asarray(FIXTURE["features"]), jnp.asarray(FIXTURE[f"cotangent_{case}"]))
  return np.asarray(out), np.asarray(grad)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", range(len(CASES)), ids=[str(c) for c in CASES])
def test_matches_torchvision_output(case, implementation):
  out, _ = output_and_gradient(case, implementation)
  assert out.shape == FIXTURE[f"out_{case}"].shape
  np.testing.assert_allclose(out, FIXTURE[f"out_{case}"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", range(len(CASES)), ids=[str(c) for c in CASES])
def test_matches_torchvision_feature_gradient(case, implementation):
  _, grad = output_and_gradient(case, implementation)
  np.testing.assert_allclose(grad, FIXTURE[f"grad_{case}"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", [i for i, c in enumerate(CASES) if c[1] <= 0 and c[2] == 1 / 16])
def test_default_adaptive_bound_is_exact_for_boxes_inside_the_map(case):
  function = jax.jit(case_function(case, max_sampling_ratio=None))
  out = function(FIXTURE["features"], FIXTURE[f"boxes_{case}"], FIXTURE["box_mask"])
  inside = FIXTURE["inside"]
  np.testing.assert_allclose(np.asarray(out)[inside], FIXTURE[f"out_{case}"][inside], atol=1e-5, rtol=0)


def test_adaptive_grid_is_capped_at_the_bound():
  # A box 14 x 21 feature pixels wants a 2 x 3 grid per 7 x 7 bin; a bound of 1 samples it like ratio 1.
  features = jnp.asarray(FIXTURE["features"])
  boxes = jnp.array([[[0.5, 0.5, 21.5, 14.5]], [[1.0, 1.0, 5.0, 5.0]]])
  capped = jax.jit(functools.partial(roi_align, sampling_ratio=0, max_sampling_ratio=1))(features, boxes)
  fixed = jax.jit(functools.partial(roi_align, sampling_ratio=1))(features, boxes)
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
  out = jax.jit(case_function(0))(features, FIXTURE["boxes_0"], FIXTURE["box_mask"])
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), FIXTURE["out_0"], atol=5e-2)


def test_no_gradient_into_the_boxes():
  features, boxes = jnp.asarray(FIXTURE["features"]), jnp.asarray(FIXTURE["boxes_0"])
  grad = jax.jit(jax.grad(lambda b: roi_align(features, b, jnp.asarray(FIXTURE["box_mask"])).sum()))(boxes)
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


def test_unknown_implementation_is_named():
  with pytest.raises(ValueError, match="implementation='loop'"):
    roi_align(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 1, 4)), implementation="loop")


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
    expected = (
      torchvision.ops.roi_align(torch.from_numpy(features).permute(0, 3, 1, 2), rois, (7, 7), 1 / 16, 2, aligned)
      .permute(0, 2, 3, 1)
      .numpy()
      .reshape(2, 10, 7, 7, 3)
    )
    function = jax.jit(functools.partial(roi_align, spatial_scale=1 / 16, aligned=aligned))
    out = function(jnp.asarray(features), jnp.asarray(boxes))
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5, rtol=0)


def test_adaptive_grid_uses_exact_division():
  # A 21 x 21 box over 7 x 7 bins needs ceil(21 / 7) = 3 samples per axis; XLA's rewrite of the division as
  # 21 * float32(1 / 7) gives 3.0000002 and a grid of 4. With a 3 x 3 grid it equals sampling_ratio=3.
  features = jnp.asarray(FIXTURE["features"])
  boxes = jnp.array([[[0.0, 0.0, 21.0, 21.0]], [[-5.0, -5.0, 16.0, 16.0]]])
  adaptive = jax.jit(functools.partial(roi_align, sampling_ratio=0, max_sampling_ratio=4))(features, boxes)
  fixed = jax.jit(functools.partial(roi_align, sampling_ratio=3))(features, boxes)
  np.testing.assert_allclose(np.asarray(adaptive), np.asarray(fixed), atol=1e-6)
