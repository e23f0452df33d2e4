"""Tests of the built-in `builtin_shapes` dataset: generator, geometric rules and the TFDS builder."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgraphs.data.builders import shapes

SIZE = 64


def _examples(count, size=SIZE, split="train", seed=0):
  return [shapes.generate_example(shapes.example_rng(seed, split, i), size) for i in range(count)]


@pytest.fixture(scope="module")
def examples():
  return _examples(60)


@pytest.fixture(scope="module")
def many_examples():
  return _examples(600, size=32)


def _pixel_boxes(example, size):
  """Stored (ymin, xmin, ymax, xmax) fractions back to integer (x0, y0, x1, y1) pixels."""
  ymin, xmin, ymax, xmax = np.rint(example["objects"]["bbox"].astype(np.float64) * size).astype(int).T
  return np.stack([xmin, ymin, xmax, ymax], axis=1)


def _saturated(image):
  """Object pixels: object colours spread >= 45 between channels, the tinted grey background <= 21."""
  image = image.astype(int)
  return image.max(-1) - image.min(-1) > 35


def test_generate_example_is_deterministic_and_split_dependent():
  first = shapes.generate_example(shapes.example_rng(0, "train", 7), SIZE)
  again = shapes.generate_example(shapes.example_rng(0, "train", 7), SIZE)
  other = shapes.generate_example(shapes.example_rng(0, "validation", 7), SIZE)
  np.testing.assert_array_equal(first["image"], again["image"])
  np.testing.assert_array_equal(first["objects"]["bbox"], again["objects"]["bbox"])
  np.testing.assert_array_equal(first["relations"]["predicate"], again["relations"]["predicate"])
  assert first["composition"]["score"] == again["composition"]["score"]
  assert not np.array_equal(first["image"], other["image"])


def test_labels_are_the_set_of_object_labels(examples):
  for example in examples:
    np.testing.assert_array_equal(example["labels"], np.unique(example["objects"]["label"]))
    assert 2 <= len(example["objects"]["label"]) <= 6


def test_boxes_are_normalised_and_tight_around_the_drawn_objects(examples):
  for example in examples:
    bbox = example["objects"]["bbox"]
    assert bbox.dtype == np.float32 and bbox.shape[1] == 4
    assert np.all((bbox >= 0) & (bbox <= 1))
    assert np.all(bbox[:, 2] > bbox[:, 0]) and np.all(bbox[:, 3] > bbox[:, 1])
    saturated = _saturated(example["image"])
    covered = np.zeros_like(saturated)
    for x0, y0, x1, y1 in _pixel_boxes(example, SIZE):
      covered[y0:y1, x0:x1] = True
      inside = saturated[y0:y1, x0:x1]
      assert inside.mean() > 0.25
      # Tight: the first and last row and column of the box all touch the object.
      assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
    assert not saturated[~covered].any(), "object-coloured pixels outside every box"


def _predicate_reference(s, o, size):
  """Plain re-statement of the documented predicate rules for boxes (x0, y0, x1, y1)."""
  s_in_o = o[0] <= s[0] and o[1] <= s[1] and s[2] <= o[2] and s[3] <= o[3] and tuple(s) != tuple(o)
  o_in_s = s[0] <= o[0] and s[1] <= o[1] and o[2] <= s[2] and o[3] <= s[3] and tuple(s) != tuple(o)
  if s_in_o:
    return "inside"
  if o_in_s:
    return "contains"
  overlap_w = min(s[2], o[2]) - max(s[0], o[0])
  overlap_h = min(s[3], o[3]) - max(s[1], o[1])
  if overlap_w > 0 and overlap_h > 0:
    return "overlaps"
  gap = max(-overlap_w, -overlap_h)
  if gap < 0.05 * size:
    return "near"
  dx = (o[0] + o[2]) / 2 - (s[0] + s[2]) / 2
  dy = (o[1] + o[3]) / 2 - (s[1] + s[3]) / 2
  if abs(dx) >= abs(dy):
    return "left of" if dx > 0 else "right of"
  return "above" if dy > 0 else "below"


def test_predicates_follow_the_geometric_rules(examples):
  seen = set()
  for example in examples:
    boxes = _pixel_boxes(example, SIZE)
    rel = example["relations"]
    pairs = list(zip(rel["subject"].tolist(), rel["object"].tolist()))
    assert len(pairs) == len(set(pairs)), "more than one predicate for an ordered pair"
    for (s, o), predicate in zip(pairs, rel["predicate"]):
      assert s != o
      expected = _predicate_reference(boxes[s], boxes[o], SIZE)
      assert shapes.PREDICATE_NAMES[predicate] == expected
      seen.add(expected)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    for s in range(len(boxes)):
      dist = np.hypot(*(centres - centres[s]).T)
      dist[s] = np.inf
      assert (s, int(np.argmin(dist))) in pairs, "an object lacks a relation to its nearest object"
  assert {"left of", "right of", "above", "below", "overlaps", "near"} <= seen


def test_flipped_predicates_match_the_rules_on_flipped_boxes(examples):
  for example in examples[:20]:
    boxes = _pixel_boxes(example, SIZE)
    flipped = np.stack([SIZE - boxes[:, 2], boxes[:, 1], SIZE - boxes[:, 0], boxes[:, 3]], axis=1)
    rel = example["relations"]
    for s, o, predicate in zip(rel["subject"], rel["object"], rel["predicate"]):
      assert shapes.predicate_between(flipped[s], flipped[o], SIZE) == shapes.FLIPPED_PREDICATES[predicate]


def test_relation_count_varies_between_images(examples):
  assert len({len(e["relations"]["subject"]) for e in examples}) >= 4


def test_cooccurrence_differs_from_marginals(many_examples):
  multi_hot = np.zeros((len(many_examples), len(shapes.CATEGORY_NAMES)))
  for row, example in zip(multi_hot, many_examples):
    row[example["labels"]] = 1
  marginal = multi_hot.mean(0)
  red_triangle, blue_square = shapes.category_index("red triangle"), shapes.category_index("blue square")
  red_square, blue_star = shapes.category_index("red square"), shapes.category_index("blue star")
  # A red triangle shares two scene types with a blue square; a red square none with a blue star.
  with_red_triangle = multi_hot[multi_hot[:, red_triangle] == 1]
  assert with_red_triangle[:, blue_square].mean() > marginal[blue_square] + 0.2
  with_red_square = multi_hot[multi_hot[:, red_square] == 1]
  assert with_red_square[:, blue_star].mean() < marginal[blue_star] - 0.1
  assert np.all(marginal > 0.1), "every category should appear"


def test_composition_label_is_balanced_and_not_predicted_by_global_statistics(many_examples):
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import cross_val_score

  labels = np.array([e["composition"]["label"] for e in many_examples])
  assert 0.4 < labels.mean() < 0.6
  features = []
  for example in many_examples:
    image = example["image"].astype(np.float64)
    bbox = example["objects"]["bbox"]
    box_area = ((bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])).sum()
    features.append(
      [
        *image.mean((0, 1)),
        *image.std((0, 1)),
        _saturated(example["image"]).mean(),
        len(bbox),
        len(example["labels"]),
        box_area,
      ]
    )
  features = np.asarray(features)
  features = (features - features.mean(0)) / features.std(0)
  accuracy = cross_val_score(LogisticRegression(max_iter=1000), features, labels, cv=5).mean()
  assert accuracy < 0.62, f"global image statistics predict the composition label ({accuracy:.2f})"


def test_composition_score_label_and_distribution_agree(examples):
  for example in examples:
    comp = example["composition"]
    boxes = _pixel_boxes(example, SIZE)
    assert comp["score"] == pytest.approx(shapes.composition_score(boxes, SIZE), abs=1e-6)
    assert comp["score"] == pytest.approx((comp["balance"] + comp["spacing"] + comp["alignment"]) / 3, abs=1e-6)
    assert abs(comp["score"] - 4 / 9) >= shapes.SCORE_MARGIN - 1e-6
    dist = comp["distribution"]
    assert dist.shape == (10,) and dist.dtype == np.float32 and dist.sum() == pytest.approx(1, abs=1e-5)
    mean_rating = (dist * np.arange(1, 11)).sum()
    assert comp["label"] == int(mean_rating >= 5) == int(comp["score"] >= 4 / 9)


def test_composition_components_of_hand_made_layouts():
  size = 90
  # Three equal boxes centred on one row at x = 15, 45, 75: centred mass, aligned, gaps of 20 px.
  row = np.array([[10, 40, 20, 50], [40, 40, 50, 50], [70, 40, 80, 50]])
  assert shapes.composition_components(row, size) == pytest.approx((1.0, 1.0, 1.0))
  # Two overlapping boxes in the top-left corner: mass at (0.24, 0.24), off by 0.37 > 0.25; no gap.
  corner = np.array([[5, 5, 35, 35], [10, 10, 37, 37]])
  balance, spacing, alignment = shapes.composition_components(corner, size)
  assert (balance, spacing) == (0.0, 0.0)
  # Only the first box's centre (20, 20) and the second's (23.5, 23.5) are compared: 3.5 px > 0.02 * 90.
  assert alignment == 0.0
  # A box nested in another is not a region of its own.
  nested = np.vstack([row, [[42, 42, 48, 48]]])
  assert shapes.composition_components(nested, size) == pytest.approx((1.0, 1.0, 1.0))


def test_rating_distribution_peaks_at_the_expected_rating():
  for score in (0.0, 0.3, 4 / 9, 0.8, 1.0):
    dist = shapes.rating_distribution(score)
    assert int(np.argmax(dist)) + 1 == int(np.rint(1 + 9 * score))


def test_bad_input_is_named():
  with pytest.raises(ValueError, match="image_size"):
    shapes.generate_example(np.random.default_rng(0), 16)
  with pytest.raises(ValueError, match="huge"):
    shapes.ensure_prepared("huge")
  with pytest.raises(ValueError, match="split"):
    shapes.example_rng(0, "dev", 0)


def _unit_config(name="unit_test"):
  return shapes.BuiltinShapesConfig(name=name, image_size=32, num_train=6, num_validation=3, num_test=3)


def _read_split(builder, split):
  rows = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
  return sorted(rows, key=lambda row: row["image/id"])


def test_builder_is_registered_with_small_and_medium_configs(tmp_path):
  builder = tfds.builder("builtin_shapes/small", data_dir=tmp_path)
  assert isinstance(builder, shapes.BuiltinShapes)
  assert builder.builder_config.image_size == 96
  assert {"small", "medium"} <= set(shapes.BuiltinShapes.builder_configs)
  assert shapes.BuiltinShapes.builder_configs["medium"].image_size > 96
  assert builder.info.features["objects"]["label"].names == list(shapes.CATEGORY_NAMES)


def test_build_is_deterministic_and_has_the_documented_features(tmp_path):
  first = shapes.ensure_prepared(_unit_config(), data_dir=tmp_path / "a")
  second = shapes.ensure_prepared(_unit_config(), data_dir=tmp_path / "b")
  assert {s: first.info.splits[s].num_examples for s in ("train", "validation", "test")} == {
    "train": 6,
    "validation": 3,
    "test": 3,
  }
  spec = first.as_dataset(split="train").element_spec
  assert spec["image"].shape == (32, 32, 3) and spec["image"].dtype.name == "uint8"
  assert spec["labels"].shape == (None,) and spec["labels"].dtype.name == "int64"
  assert spec["objects"]["bbox"].shape == (None, 4) and spec["objects"]["bbox"].dtype.name == "float32"
  assert spec["objects"]["label"].dtype.name == "int64"
  for key in ("subject", "object", "predicate"):
    assert spec["relations"][key].shape == (None,) and spec["relations"][key].dtype.name == "int64"
  assert spec["composition"]["distribution"].shape == (10,)
  assert spec["composition"]["score"].dtype.name == "float32"
  assert spec["image/id"].dtype.name == "int64" and spec["image/filename"].dtype.name == "string"

  for split in ("train", "validation", "test"):
    rows_a, rows_b = _read_split(first, split), _read_split(second, split)
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
      np.testing.assert_array_equal(row_a["image"], row_b["image"])
      np.testing.assert_array_equal(row_a["labels"], row_b["labels"])
      np.testing.assert_array_equal(row_a["objects"]["bbox"], row_b["objects"]["bbox"])
      assert row_a["composition"]["score"] == row_b["composition"]["score"]
  # What is stored is exactly what the plain generator makes (PNG is lossless).
  row = _read_split(first, "validation")[1]
  expected = shapes.generate_example(shapes.example_rng(0, "validation", 1), 32)
  np.testing.assert_array_equal(row["image"], expected["image"])
  np.testing.assert_array_equal(row["relations"]["predicate"], expected["relations"]["predicate"])
  assert row["image/filename"] == b"validation_000001.png"
  ids = [r["image/id"] for s in ("train", "validation", "test") for r in _read_split(first, s)]
  assert len(set(ids)) == len(ids)


def test_processes_preparing_the_same_data_at_once_generate_it_once(tmp_path):
  """Two processes that find the data missing at the same moment: one generates, the other waits and reads it."""
  import subprocess
  import sys

  # The first process holds the lock while it generates; the second is started meanwhile and must wait on it.
  script = (
    "import sys; from jaxgraphs.data.builders import shapes\n"
    "config = shapes.BuiltinShapesConfig(name='unit_test', image_size=32, num_train=40, num_validation=3, num_test=3)\n"
    "builder = shapes.ensure_prepared(config, data_dir=sys.argv[1])\n"
    "print(builder.info.splits['train'].num_examples)\n"
  )
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for _ in range(2)
  ]
  results = [p.communicate(timeout=300) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
  assert [out.split()[-1] for out, _ in results] == ["40", "40"]  # (TFDS prints its own lines before)
  generated = [err.count("Generating builtin_shapes/unit_test") for _, err in results]
  assert sorted(generated) == [0, 1], generated
