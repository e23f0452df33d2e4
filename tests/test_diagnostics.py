"""The diagnostic datasets do what their docstrings argue: no-graph paths cannot see the evidence, graph paths can.

Receptive fields are measured, not assumed: the support of the input gradient of each RGNet region score, and
of LinkNet's predicate logits without context modules, on images the builders generate.
"""

import functools
import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from training_helpers import config_file

from jaxgraphs import models
from jaxgraphs.data.builders import diagnostics, shapes
from jaxgraphs.evaluation.multilabel_metrics import average_precision, hidden_label_metrics

RECEPTIVE_FIELD = 55  # diagnostics.py's computation for configs/rgnet_diagnostic.py


def examples(generate, size, count, split="train"):
  return [generate(shapes.example_rng(0, split, index), size) for index in range(count)]


def pixel_boxes(example, size):
  """(x0, y0, x1, y1) integer pixel boxes (end exclusive) from the TFDS (ymin, xmin, ymax, xmax) fractions."""
  return np.rint(example["objects"]["bbox"][:, [1, 0, 3, 2]] * size).astype(int)


def chebyshev_gap(a, b):
  return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def random_variables(model, *args, **kwargs):
  """Random weights (normal, 0.1) of the shapes `model.init` gives, batch-norm statistics 0 / 1 and biases +1:
  the positive biases keep ReLUs open, so an input gradient's support is the theoretical receptive field."""
  shapes_ = jax.eval_shape(functools.partial(model.init, **kwargs), jax.random.key(0), *args)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = getattr(path[-1], "key", None)
    if name in ("var", "bias"):
      return np.ones(leaf.shape, leaf.dtype)
    if name == "mean":
      return np.zeros(leaf.shape, leaf.dtype)
    return (0.1 * rng.normal(size=leaf.shape)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes_)


def test_generation_is_deterministic_and_per_example():
  for generate, size in ((diagnostics.generate_regions_example, 96), (diagnostics.generate_objects_example, 160)):
    a = generate(shapes.example_rng(0, "train", 5), size)
    b = generate(shapes.example_rng(0, "train", 5), size)
    c = generate(shapes.example_rng(0, "train", 6), size)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])


# ---- regions (RGNet) -----------------------------------------------------------------------------------
def test_regions_label_is_a_colour_match_between_two_distant_objects():
  found = examples(diagnostics.generate_regions_example, 96, 300)
  labels = np.array([ex["label"] for ex in found])
  colours = np.array([ex["objects"]["label"] for ex in found])
  np.testing.assert_array_equal(labels, colours[:, 0] == colours[:, 1])
  assert 0.4 < labels.mean() < 0.6
  # Each object's colour alone says nothing: its distribution is the same for both labels.
  for label in (0, 1):
    counts = np.bincount(colours[labels == label, 0], minlength=4) / np.sum(labels == label)
    assert np.all(np.abs(counts - 0.25) < 0.1)
  gaps = [chebyshev_gap(*pixel_boxes(ex, 96)) for ex in found]
  assert min(gaps) >= diagnostics.REGIONS_MIN_GAP > RECEPTIVE_FIELD


def _region_score_jacobian(arg, image):
  model = models.build_model(config_file("rgnet_diagnostic", f"{arg},tiny").model, None)
  images = jnp.asarray(image[None], jnp.float32)
  variables = random_variables(model, images)

  def region_scores(x):
    return model.apply(variables, x)["region_logits"][0, :, :, 1]

  return np.asarray(jax.jacrev(region_scores)(images))[:, :, 0]  # (12, 12, 96, 96, 3)


@pytest.mark.slow  # 10-15 s: input Jacobians of a network at the diagnostic's image size
def test_each_region_of_the_diagnostic_fcn_sees_at_most_one_object():
  image = np.random.default_rng(0).normal(size=(96, 96, 3)).astype(np.float32)
  support = np.any(_region_score_jacobian("fcn_a", image) != 0, axis=-1)  # (12, 12, 96, 96)
  assert support.shape[:2] == (12, 12)
  centre = support[6, 6]
  rows, cols = np.flatnonzero(centre.any(axis=1)), np.flatnonzero(centre.any(axis=0))
  # The measured receptive field is the computed one (an inner region is not clipped by the border).
  assert rows[-1] - rows[0] + 1 == RECEPTIVE_FIELD and cols[-1] - cols[0] + 1 == RECEPTIVE_FIELD
  for example in examples(diagnostics.generate_regions_example, 96, 20):
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = pixel_boxes(example, 96)
    sees_a = support[:, :, ay0:ay1, ax0:ax1].any(axis=(2, 3))
    sees_b = support[:, :, by0:by1, bx0:bx1].any(axis=(2, 3))
    assert sees_a.any() and sees_b.any()
    assert not np.any(sees_a & sees_b)


def test_the_region_graph_links_every_region_to_both_objects():
  image = np.random.default_rng(0).normal(size=(96, 96, 3)).astype(np.float32)
  support = np.any(_region_score_jacobian("fcn_a_g", image) != 0, axis=-1)
  # Every region's score depends on pixels at both ends of the image.
  assert np.all(support[:, :, :, :10].any(axis=(2, 3)) & support[:, :, :, -10:].any(axis=(2, 3)))


# ---- labels (SSGRL) ------------------------------------------------------------------------------------
def test_every_hidden_label_needs_a_conjunction_of_its_co_occurring_labels():
  triples = [frozenset(shapes.category_index(name) for name in scene) for scene in diagnostics.LABEL_SCENES]
  assert all(len(t) == 3 for t in triples)
  per_category = np.bincount([c for t in triples for c in t], minlength=12)
  np.testing.assert_array_equal(per_category, 2)
  pairs = [frozenset(p) for t in triples for p in itertools.combinations(sorted(t), 2)]
  assert len(pairs) == len(set(pairs))  # two visible categories name at most one scene
  for category in range(12):
    partners = set().union(*(t for t in triples if category in t)) - {category}
    hidden_behind = [t - {category} for t in triples if category in t]
    # Images without the category whose two visible objects both co-occur with it.
    absent_behind = [t - {x} for t in triples if category not in t for x in t if t - {x} <= partners]
    assert len(hidden_behind) == len(absent_behind) == 2 and not set(hidden_behind) & set(absent_behind)
    # The same objects, paired differently: a sum of per-object terms (w/o SI's logit) scores both the same.
    assert sorted(c for p in hidden_behind for c in p) == sorted(c for p in absent_behind for c in p)


def test_hidden_objects_are_fully_covered_and_their_labels_stay_positive():
  found = examples(diagnostics.generate_labels_example, 128, 200)
  hidden_count = 0
  occluder_greys = {70, 150}
  for example in found:
    np.testing.assert_array_equal(example["labels"], np.sort(example["objects"]["label"]))
    assert set(example["hidden"]) <= set(example["labels"])
    boxes = pixel_boxes(example, 128)
    for label, (x0, y0, x1, y1) in zip(example["objects"]["label"], boxes):
      pixels = example["image"][y0:y1, x0:x1].reshape(-1, 3)
      grey = np.all(pixels == pixels[:, :1], axis=1) & np.isin(pixels[:, 0], list(occluder_greys))
      if label in example["hidden"]:
        assert grey.all()  # nothing of the object shows
      else:
        # The occluder never touches a visible object: an overlap would cover whole rows of its box, while the
        # blotchy grey background (seen inside rings) matches the occluder's greys only at isolated pixels.
        assert grey.sum() <= 2
    hidden_count += len(example["hidden"])
  assert 0.4 < hidden_count / len(found) < 0.6


@pytest.mark.slow  # 10-15 s: input Jacobians of a network at the diagnostic's image size
def test_no_location_of_the_diagnostic_ssgrl_features_sees_two_objects():
  from jaxgraphs.models.backbones.resnet import ResNet

  model_config = config_file("ssgrl_diagnostic", "without_si").model
  assert (model_config.feature_key, model_config.feature_pool) == ("layer2", 1)
  # The configured layout at a narrower width (the receptive field does not depend on the width).
  backbone = ResNet(depth=18, **{**model_config.backbone_kwargs, "width": 2})
  image = jnp.asarray(np.random.default_rng(0).normal(size=(1, 128, 128, 3)), jnp.float32)
  variables = random_variables(backbone, image)

  def locations(x):
    return jnp.sum(backbone.apply(variables, x)[model_config.feature_key][0], axis=-1)

  support = np.any(np.asarray(jax.jacrev(locations)(image))[:, :, 0] != 0, axis=-1)  # (16, 16, 128, 128)
  centre = support[8, 8]
  rows, cols = np.flatnonzero(centre.any(axis=1)), np.flatnonzero(centre.any(axis=0))
  assert rows[-1] - rows[0] + 1 == 51 and cols[-1] - cols[0] + 1 == 51
  for example in examples(diagnostics.generate_labels_example, 128, 20):
    sees = np.stack([support[:, :, y0:y1, x0:x1].any(axis=(2, 3)) for x0, y0, x1, y1 in pixel_boxes(example, 128)])
    assert sees.any(axis=(1, 2)).all() and sees.sum(axis=0).max() == 1


def test_hidden_label_metrics_against_a_hand_computation():
  # One class, four images: a hidden positive (score 0.9), a visible positive (0.2), negatives at 0.5 and 0.1.
  probs = np.array([[0.9], [0.2], [0.5], [0.1]])
  labels = np.array([[1], [1], [0], [0]])
  hidden = np.array([[1], [0], [0], [0]])
  metrics = hidden_label_metrics(probs, labels, hidden)
  assert metrics["mAP_hidden"] == pytest.approx(1.0)  # ranked first among {0.9 hidden, 0.5, 0.1}
  # Visible: {0.5 neg, 0.2 pos, 0.1 neg} -> precision 1/2 at the only positive.
  assert metrics["mAP_visible"] == pytest.approx(0.5)
  np.testing.assert_allclose(
    metrics["mAP_visible"], average_precision(probs[1:], labels[1:])[0]
  )  # the same as leaving the hidden image out
  with pytest.raises(ValueError, match="subset of the positive labels"):
    hidden_label_metrics(probs, labels, np.array([[0], [0], [1], [0]]))


# ---- objects (LinkNet) ---------------------------------------------------------------------------------
def test_object_predicates_combine_the_pair_geometry_with_the_distant_marker_colour():
  for example in examples(diagnostics.generate_objects_example, 160, 100):
    boxes = pixel_boxes(example, 160)
    labels = example["objects"]["label"]
    marker = boxes[-1]
    colour = shapes.CATEGORY_NAMES[labels[-1]].split()[0]
    assert shapes.CATEGORY_NAMES[labels[-1]].endswith("ring") and not any(
      shapes.CATEGORY_NAMES[label].endswith("ring") for label in labels[:-1]
    )
    assert all(chebyshev_gap(box, marker) >= diagnostics.OBJECTS_MIN_GAP - 1 for box in boxes[:-1])
    relations = example["relations"]
    assert len(relations["subject"]) == 6
    for s, o, p in zip(relations["subject"], relations["object"], relations["predicate"]):
      centre_s, centre_o = boxes[s, :2] + boxes[s, 2:], boxes[o, :2] + boxes[o, 2:]
      dx, dy = centre_o - centre_s
      geometric = ("left of" if dx > 0 else "right of") if abs(dx) >= abs(dy) else ("above" if dy > 0 else "below")
      assert diagnostics.OBJECTS_PREDICATE_NAMES[p] == f"{geometric} ({colour})"


@pytest.mark.slow  # 10-15 s: input Jacobians of a network at the diagnostic's image size
@pytest.mark.parametrize("arg, sees_marker", [("predcls,rem=0,gcem=0", False), ("predcls", True)])
def test_only_linknet_context_modules_reach_the_marker(arg, sees_marker):
  example = diagnostics.generate_objects_example(shapes.example_rng(0, "train", 3), 160)
  boxes = pixel_boxes(example, 160)
  info = types.SimpleNamespace(
    source="test", num_classes=13, predicate_names=("__background__",) + diagnostics.OBJECTS_PREDICATE_NAMES
  )
  model = models.build_model(config_file("linknet_diagnostic", f"{arg},tiny").model, info)
  images = jnp.asarray(np.random.default_rng(0).normal(size=(1, 160, 160, 3)), jnp.float32)
  inputs = dict(
    boxes=jnp.asarray(boxes[None, :, :] - np.array([0, 0, 1, 1]), jnp.float32),  # inclusive x2, y2
    box_mask=jnp.ones((1, 4), jnp.float32),
    object_labels=jnp.asarray(example["objects"]["label"][None] + 1, jnp.int32),
    pairs=jnp.asarray([list(itertools.permutations(range(3), 2))], jnp.int32),
    pair_mask=jnp.ones((1, 6), jnp.float32),
  )
  variables = random_variables(model, images, **inputs)

  def pair_logits(x):
    return jnp.sum(model.apply(variables, x, **inputs)["relation_logits"] ** 2)

  gradient = np.abs(np.asarray(jax.grad(pair_logits)(images))[0]).sum(axis=-1)
  x0, y0, x1, y1 = boxes[-1]
  objects_gradient = sum(gradient[b[1] : b[3], b[0] : b[2]].sum() for b in boxes[:3])
  assert objects_gradient > 0
  assert (gradient[y0:y1, x0:x1].sum() > 0) == sees_marker
