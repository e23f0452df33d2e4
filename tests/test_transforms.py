"""Preprocessing ops: parsing, shapes, value ranges, box bookkeeping and stateless randomness."""

import importlib.util
import io
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from jaxgraphs.data import transforms

SSGRL_TRAIN = "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|flip_lr|normalize_imagenet"
BOXES = np.float32([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.7, 0.8, 0.9, 0.95]])


def coordinate_image(h: int, w: int) -> np.ndarray:
  """uint8 image whose pixel (y, x) holds (y, x, 7): a crop's first pixel tells where it was taken."""
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([yy, xx, np.full_like(yy, 7)], axis=-1).astype(np.uint8)


def example(image: np.ndarray, seed=(1, 2), boxes=BOXES) -> dict:
  ex = {"image": tf.constant(image), transforms.SEED_KEY: tf.constant(seed, tf.int64)}
  if boxes is not None:
    ex["boxes"] = tf.constant(boxes)
  return ex


def run(spec: str, ex: dict) -> dict:
  return {k: v.numpy() for k, v in transforms.build(spec)(ex).items()}


def moved_boxes(boxes, h, w, top, left, ch, cw):
  """Independent NumPy transcription of a crop's effect on normalised yxyx boxes."""
  pixels = boxes * np.float32([h, w, h, w])
  return np.clip((pixels - np.float32([top, left, top, left])) / np.float32([ch, cw, ch, cw]), 0, 1)


# ---- parsing -----------------------------------------------------------------------------------------
def test_unknown_op_names_the_op_and_lists_valid_ones():
  with pytest.raises(
    ValueError,
    match=r"config.data.pp_train: unknown preprocessing op 'resise'.*valid ops: "
    r"center_crop, decode, .*flip_lr",
  ):
    transforms.build("decode|resise(224)", where="config.data.pp_train")


@pytest.mark.parametrize(
  "spec, message",
  [
    ("decode|resize(224", "cannot parse op 'resize\\(224'"),
    ("decode|resize(size)", "must be Python literals"),
    ("decode||flip_lr", "cannot parse op ''"),
    ("decode|resize(-3)", "bad arguments for op 'resize'"),
    ("decode|flip_lr(2.0)", "bad arguments for op 'flip_lr'"),
    ("decode|center_crop(1, 2, 3)", "bad arguments for op 'center_crop'"),
    ("", "non-empty string"),
  ],
)
def test_bad_strings_fail_naming_the_part(spec, message):
  with pytest.raises(ValueError, match=message):
    transforms.build(spec)


def test_parse_reads_literal_arguments():
  assert transforms.parse("resize((3, 4))|value_range(-1, vmax=2.5)|flip_lr") == [
    ("resize", ((3, 4),), {}),
    ("value_range", (-1,), {"vmax": 2.5}),
    ("flip_lr", (), {}),
  ]


# ---- deterministic ops -------------------------------------------------------------------------------
def test_resize_matches_pillow_bilinear_within_one_level():
  image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
  for size, pil_size in [(64, (64, 64)), ((20, 30), (30, 20))]:
    out = run(f"resize({size})", example(image, boxes=None))["image"]
    reference = np.asarray(Image.fromarray(image).resize(pil_size, Image.BILINEAR))
    assert out.dtype == np.uint8 and out.shape == reference.shape
    assert np.abs(out.astype(int) - reference).max() <= 1


@pytest.mark.parametrize("size", [(37, 53), (64, 80), (20, 30), (64, 30), (20, 80)])
def test_resize_shortcuts_give_the_antialiased_pixels(size):
  # Same size, upscale (plain bilinear), downscale and mixed (antialiased) against tf's antialiased resize.
  image = np.random.default_rng(5).integers(0, 256, (37, 53, 3), dtype=np.uint8)
  out = run(f"resize({size})", example(image, boxes=None))["image"]
  reference = np.clip(np.round(tf.image.resize(image, size, antialias=True).numpy()), 0, 255).astype(int)
  # Equal up to float rounding: values within ~1e-4 of a .5 can round the other way.
  difference = np.abs(out.astype(int) - reference)
  assert difference.max() <= 1 and np.mean(difference > 0) < 0.005


def test_resize_short_keeps_aspect_ratio_like_torchvision():
  for (h, w), expected in [((30, 50), (20, 33)), ((50, 30), (33, 20)), ((20, 20), (20, 20))]:
    out = run("resize_short(20)", example(np.zeros((h, w, 3), np.uint8), boxes=None))
    assert out["image"].shape == expected + (3,)


def torchvision_center_offset(image_size: int, crop_size: int) -> int:
  """torchvision.transforms.functional.center_crop's placement, transcribed."""
  if image_size < crop_size:
    return -((crop_size - image_size) // 2)
  return int(round((image_size - crop_size) / 2.0))


@pytest.mark.parametrize("h, w", [(40, 31), (41, 33), (43, 35)])
def test_center_crop_takes_torchvisions_window_and_moves_boxes(h, w):
  image = coordinate_image(h, w)
  out = run("center_crop((20, 10))", example(image))
  top, left = torchvision_center_offset(h, 20), torchvision_center_offset(w, 10)
  np.testing.assert_array_equal(out["image"], image[top : top + 20, left : left + 10])
  np.testing.assert_allclose(out["boxes"], moved_boxes(BOXES, h, w, top, left, 20, 10), atol=1e-6)


def test_center_crop_of_a_smaller_image_pads_with_zeros_around_it():
  image = np.full((2, 3, 3), 200, np.uint8)
  out = run("center_crop(6)", example(image, boxes=None))["image"]
  assert out.shape == (6, 6, 3)
  top, left = -torchvision_center_offset(2, 6), -torchvision_center_offset(3, 6)
  assert (top, left) == (2, 1)
  assert out.sum() == 200 * 2 * 3 * 3 and np.all(out[top : top + 2, left : left + 3] == 200)


@pytest.mark.parametrize("h, w", [(5, 8), (8, 3), (10, 12), (3, 4)])
def test_pad_bottom_right_fills_the_mean_colour_or_zeros_and_cuts_larger_images(h, w):
  image = coordinate_image(h, w)
  out = run("pad_bottom_right((7, 9))", example(image))
  expected = np.empty((7, 9, 3), np.uint8)
  expected[...] = (124, 116, 104)  # ImageNet's mean colour in uint8, which normalises to ~0
  kept_h, kept_w = min(h, 7), min(w, 9)
  expected[:kept_h, :kept_w] = image[:kept_h, :kept_w]
  np.testing.assert_array_equal(out["image"], expected)
  np.testing.assert_allclose(out["boxes"], moved_boxes(BOXES, h, w, 0, 0, 7, 9), atol=1e-6)
  normalised = image.astype(np.float32) - 100.0
  padded = run("pad_bottom_right((7, 9))", example(normalised, boxes=None))["image"]
  expected = np.zeros((7, 9, 3), np.float32)
  expected[:kept_h, :kept_w] = normalised[:kept_h, :kept_w]
  np.testing.assert_array_equal(padded, expected)


def test_normalize_imagenet_and_value_range_match_their_formulas():
  image = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
  norm = run("normalize_imagenet", example(image, boxes=None))["image"]
  expected = (image / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  assert norm.dtype == np.float32
  np.testing.assert_allclose(norm, expected, rtol=1e-5, atol=1e-5)
  ranged = run("value_range(-1, 1)", example(image, boxes=None))["image"]
  np.testing.assert_allclose(ranged, image / 127.5 - 1.0, atol=1e-6)
  assert ranged.min() >= -1 and ranged.max() <= 1


# ---- random ops --------------------------------------------------------------------------------------
def test_random_crop_is_a_window_of_the_image_and_boxes_follow():
  image = coordinate_image(30, 40)
  tops = set()
  for seed in range(20):
    out = run("random_crop((12, 17))", example(image, seed=(seed, 0)))
    top, left = int(out["image"][0, 0, 0]), int(out["image"][0, 0, 1])
    tops.add(top)
    np.testing.assert_array_equal(out["image"], image[top : top + 12, left : left + 17])
    np.testing.assert_allclose(out["boxes"], moved_boxes(BOXES, 30, 40, top, left, 12, 17), atol=1e-6)
  assert len(tops) > 5  # the offset is actually random


def test_random_crop_choice_draws_square_sides_from_the_list():
  image = coordinate_image(64, 64)
  sides = set()
  for seed in range(40):
    out = run("random_crop_choice((64, 48, 32))", example(image, seed=(seed, 3)))["image"]
    assert out.shape[0] == out.shape[1]
    sides.add(out.shape[0])
    top, left = int(out[0, 0, 0]), int(out[0, 0, 1])
    np.testing.assert_array_equal(out, image[top : top + out.shape[0], left : left + out.shape[1]])
  assert sides == {64, 48, 32}


def test_random_scale_crop_scales_then_crops():
  image = np.random.default_rng(2).integers(0, 256, (10, 14, 3), dtype=np.uint8)
  # With the scale fixed at 2 and a crop as large as the scaled image, the result is the 2x resize.
  out = run("random_scale_crop(2.0, 2.0, (20, 28))", example(image, boxes=None))["image"]
  np.testing.assert_array_equal(out, run("resize((20, 28))", example(image, boxes=None))["image"])
  for seed in range(10):
    out = run("random_scale_crop(1.05, 1.25, 8)", example(image, seed=(seed, 0)))
    assert out["image"].shape == (8, 8, 3)
    assert np.all((out["boxes"] >= 0) & (out["boxes"] <= 1))


def test_flip_lr_mirrors_image_and_boxes_together():
  image = coordinate_image(6, 9)
  mirrored_boxes = np.stack([BOXES[:, 0], 1 - BOXES[:, 3], BOXES[:, 2], 1 - BOXES[:, 1]], axis=1)
  out = run("flip_lr(1.0)", example(image))
  np.testing.assert_array_equal(out["image"], image[:, ::-1])
  np.testing.assert_allclose(out["boxes"], mirrored_boxes, atol=1e-6)
  out = run("flip_lr(0.0)", example(image))
  np.testing.assert_array_equal(out["image"], image)
  flipped = 0
  for seed in range(30):
    out = run("flip_lr", example(image, seed=(seed, 1)))
    is_flipped = bool(out["image"][0, 0, 1] == 8)
    flipped += is_flipped
    np.testing.assert_allclose(out["boxes"], mirrored_boxes if is_flipped else BOXES, atol=1e-6)
  assert 5 < flipped < 25


def test_same_seed_same_output_and_different_seed_different_output():
  data = io.BytesIO()
  Image.fromarray(np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(data, "PNG")
  spec = "decode|resize(40)|random_crop_choice((40, 32, 24))|resize(16)|flip_lr|normalize_imagenet"
  outputs = [run(spec, example(data.getvalue(), seed=(s, 9)))["image"] for s in (5, 5, 6, 7, 8)]
  np.testing.assert_array_equal(outputs[0], outputs[1])
  assert not all(np.array_equal(outputs[0], o) for o in outputs[2:])


def test_random_op_without_seed_explains_what_is_missing():
  with pytest.raises(KeyError, match="random op 'flip_lr' needs a per-example seed"):
    transforms.build("flip_lr")({"image": tf.zeros([2, 2, 3], tf.uint8)})


@pytest.mark.parametrize("shape", [(1, 1), (480, 640), (700, 300)])
def test_ssgrl_train_string_gives_576_float_images_for_any_input_size(shape):
  data = io.BytesIO()
  Image.fromarray(np.full(shape + (3,), 128, np.uint8)).save(data, "JPEG")
  out = run(SSGRL_TRAIN, example(data.getvalue(), boxes=None))["image"]
  assert out.shape == (576, 576, 3) and out.dtype == np.float32
  assert np.all(np.isfinite(out)) and -2.2 < out.min() and out.max() < 2.7


TORCHVISION_REFERENCE = """
import sys, numpy as np, torch
from PIL import Image
import torchvision.transforms as T
pipeline = T.Compose([T.Resize((64, 64)), T.CenterCrop(57), T.ToTensor(),
                      T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
with torch.no_grad():
  out = pipeline(Image.open(sys.argv[1]).convert("RGB")).permute(1, 2, 0).numpy()
np.save(sys.argv[2], out)
"""


@pytest.mark.torch
def test_ssgrl_eval_string_matches_torchvision_within_one_grey_level(tmp_path):
  if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision equivalence needs torchvision")
  image_path, out_path = tmp_path / "image.jpg", tmp_path / "reference.npy"
  Image.fromarray(np.random.default_rng(4).integers(0, 256, (61, 83, 3), dtype=np.uint8)).save(image_path, "JPEG")
  # torch is imported in a child process: importing it after TensorFlow has run ops crashes the interpreter.
  subprocess.run([sys.executable, "-c", TORCHVISION_REFERENCE, str(image_path), str(out_path)], check=True)
  theirs = np.load(out_path)
  ours = run("decode|resize(64)|center_crop(57)|normalize_imagenet", example(image_path.read_bytes(), boxes=None))
  # Same JPEG pixels (INTEGER_ACCURATE), same antialiased bilinear up to rounding: <= 1 level of 255.
  assert ours["image"].shape == theirs.shape == (57, 57, 3)
  assert np.abs(ours["image"] - theirs).max() <= 1.0 / 255 / 0.224 + 1e-5
