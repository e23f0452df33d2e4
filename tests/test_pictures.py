"""Readable pictures (tasks/display.py, tasks/input_frame.py and the three tasks' drawings): the network input
mapped back onto the photo (boxes round-trip through the real preprocessing), display sizes, titles and
colour bars present, colour scales fixed, and only the relations above the threshold drawn."""

import os

import numpy as np
import pytest
import tensorflow as tf

from jaxgraphs.data import transforms
from jaxgraphs.tasks import display, scene_graph_pictures
from jaxgraphs.tasks.input_frame import InputFrame, geometry_ops, photo_frame
from jaxgraphs.tasks.multilabel import ATTENTION_SCALE, attention_picture
from jaxgraphs.tasks.scene_graph import SceneGraphTask

CLASSES = ("__background__", "cat", "dog", "hat", "cup", "box", "pen")
PREDICATES = ("__background__", "on", "near")


def pipeline_boxes(pp, photo_hw, boxes):
  """Pixel boxes (x1, y1, x2, y2) of a photo as the input pipeline puts them on the network input."""
  h, w = photo_hw
  normalised = np.asarray(boxes, np.float32)[:, [1, 0, 3, 2]] / [h, w, h, w]
  empty = tf.zeros([0], tf.int32)
  example = transforms.build(pp)(
    {
      "image": tf.zeros((h, w, 3), tf.uint8),
      "boxes": tf.constant(normalised, tf.float32),
      "box_labels": tf.ones([len(boxes)], tf.int32),
      "relations": {"subject": empty, "object": empty, "predicate": empty},
    }
  )
  return example["object_boxes"].numpy()[: len(boxes)], tuple(example["image"].shape[:2])


@pytest.mark.parametrize(
  "pp",
  [
    "decode|resize_long(64)|normalize_imagenet|pad_bottom_right(64)|pack_scene_graph(8, 16)",  # builtin shapes
    "decode|resize_long(592)|normalize_imagenet|pad_bottom_right(592)|pack_scene_graph(64, 128)",  # VG150
    "decode|resize(40)|center_crop(32)|pack_scene_graph(4, 4)",  # SSGRL-style, anisotropic resize
    "decode|resize_short(37)|center_crop((30, 34))|pack_scene_graph(4, 4)",
    "decode|resize((33, 51))|value_range(-1, 1)|pack_scene_graph(4, 4)",
  ],
)
@pytest.mark.parametrize("photo_hw", [(400, 512), (61, 83), (300, 200)])
def test_photo_frame_inverts_the_pipelines_geometry(pp, photo_hw):
  h, w = photo_hw
  # Inside every crop of these strings, so that the pipeline does not clip it.
  box = np.array([[0.3 * w, 0.35 * h, 0.6 * w, 0.65 * h]])
  on_input, input_hw = pipeline_boxes(pp, photo_hw, box)
  frame = photo_frame(pp, photo_hw)
  assert frame.input_hw == input_hw and frame.canvas_hw == photo_hw
  np.testing.assert_allclose(frame.boxes_to_canvas(on_input), box, atol=2e-3 * max(h, w))


def test_scene_graph_boxes_come_back_in_the_photos_pixels():
  """The issue's case: a 400 x 512 photo seen at 64 px (1/8); the box must come back as given, not as the
  network saw it ([20, 2.5, 41.25, 28.75])."""
  pp = "decode|resize_long(64)|normalize_imagenet|pad_bottom_right(64)|pack_scene_graph(8, 16)"
  task = SceneGraphTask("predcls", CLASSES, PREDICATES)
  photo_boxes = [[160, 20, 330, 230], [10, 300, 120, 390]]
  fields = task.prediction_fields({"boxes": photo_boxes, "labels": ["cat", "dog"]}, (400, 512))
  example = transforms.build(pp)({"image": tf.zeros((400, 512, 3), tf.uint8), **fields})
  outputs = {
    "boxes": example["object_boxes"].numpy()[None],
    "box_mask": example["object_mask"].numpy()[None] > 0,
    "k1_labels": example["object_labels"].numpy()[None],
    "object_logits": np.zeros((1, 8, len(CLASSES)), np.float32),
    "relation_logits": np.zeros((1, 64, len(PREDICATES)), np.float32),
    "pairs": np.stack(np.divmod(np.arange(64), 8), axis=1)[None],
    "pair_mask": np.zeros((1, 64), bool),
  }
  np.testing.assert_allclose(outputs["boxes"][0, 0], [20, 2.5, 41.25, 28.75], rtol=1e-5)
  prediction = task.predict_json(outputs, 0, frame=photo_frame(pp, (400, 512)))
  np.testing.assert_allclose([o["box"] for o in prediction["objects"]], photo_boxes, atol=1e-3)


def test_random_or_unknown_geometry_is_refused_naming_the_op():
  with pytest.raises(ValueError, match=r"config.data.pp_eval=.*cannot map .* through 'random_crop'; .*center_crop"):
    geometry_ops("decode|resize(40)|random_crop(32)|normalize_imagenet")
  with pytest.raises(ValueError, match="through 'flip_lr'"):
    photo_frame("decode|flip_lr|resize(32)", (50, 60))


def test_grid_cells_on_the_canvas_and_outside_the_input():
  # resize(40) then center_crop(32) of a 100 x 150 photo: the crop starts 4 px into the 40 x 40 resize, which
  # is photo column 4 * 150 / 40 = 15 and row 4 * 100 / 40 = 10.
  frame = photo_frame("decode|resize(40)|center_crop(32)", (100, 150))
  cells = frame.cell_indices((2, 2))
  assert (cells[:, :15] == -1).all() and (cells[10:90, 15] >= 0).all() and (cells[:10] == -1).all()
  assert cells[50 - 1, 75 - 1] == 0 and cells[50 + 1, 75 + 1] == 3  # the centre splits the 2 x 2 grid
  values, inside = frame.grid_on_canvas(np.array([[1.0, 2.0], [3.0, 4.0]]))
  assert values[60, 100] == 4.0 and inside[60, 100] and not inside[0, 0]
  identity = InputFrame.identity((16, 20))
  big = identity.grid_on_canvas(np.arange(20.0).reshape(4, 5))[0]
  assert big[4:8, 4:8].min() == big[4:8, 4:8].max() == 6


def test_display_size_enlarges_small_inputs_and_shrinks_large_photos():
  small, scale = display.resize_for_display(np.zeros((32, 48, 3), np.uint8))
  assert small.shape == (256, 384, 3) and scale == (8.0, 8.0)
  large, scale = display.resize_for_display(np.zeros((1500, 3000, 3), np.uint8))
  assert large.shape == (512, 1024, 3) and scale == (512 / 1500, 1024 / 3000)
  same, _ = display.resize_for_display(np.zeros((300, 500, 3), np.uint8))
  assert same.shape == (300, 500, 3)


def canvas_rows(picture, columns, grey):
  """The rows of a picture whose `columns` (a slice, or a count from the left) are the uniform `grey` input."""
  columns = slice(0, columns) if isinstance(columns, int) else columns
  rows = np.flatnonzero((picture[:, columns] == grey).all(axis=(1, 2)))
  assert rows.size and np.all(np.diff(rows) == 1)
  return rows


def test_attention_pictures_use_one_fixed_scale_with_title_and_colour_bar():
  image = np.full((32, 32, 3), 128, np.uint8)
  probs = np.array([0.9, 0.2, 0.1])
  names = ("cat", "dog", "hat")
  # The top class puts 0.2 on its top-left cell in both maps; the maps' maxima differ (0.5 and 0.7).
  first = np.array([[[0.2, 0.5], [0.15, 0.15]]] * 3)
  second = np.array([[[0.2, 0.7], [0.05, 0.05]]] * 3)
  pictures = [
    attention_picture(image, InputFrame.identity((32, 32)), probs, attention, names, np.array([1, 0, 0]))
    for attention in (first, second)
  ]
  a, b = pictures
  assert a.shape == b.shape and a.dtype == np.uint8
  rows = canvas_rows(a, 256, 128)
  assert rows.size == 256  # 32 px enlarged to 256
  top = rows[0]
  panel = slice(256 + display.MARGIN, 2 * 256 + display.MARGIN)  # the top class's map, right of the image
  same_cell = (slice(top, top + 128), slice(panel.start, panel.start + 128))
  other_cell = (slice(top, top + 128), slice(panel.start + 128, panel.stop))
  np.testing.assert_array_equal(a[same_cell], b[same_cell])
  assert not np.array_equal(a[other_cell], b[other_cell])
  expected = display.blend(image[:1, :1], ATTENTION_SCALE.colours(np.array([[0.2]])), 0.55)[0, 0]
  np.testing.assert_array_equal(a[top + 64, panel.start + 64], expected)
  # The title band above holds text; the colour bar below runs from black to white.
  assert top > 0 and (a[:top] != display.BACKGROUND).any()
  below = a[rows[-1] + 1 :]
  assert (below == 0).all(axis=-1).any() and (below == 255).all(axis=-1).any()


def test_attention_over_the_photo_covers_only_what_the_network_saw():
  photo = np.full((100, 150, 3), 200, np.uint8)
  frame = photo_frame("decode|resize(36)|center_crop(32)|normalize_imagenet", (100, 150))
  attention = np.full((3, 2, 2), 0.25)
  picture = attention_picture(photo, frame, np.array([0.9, 0.5, 0.1]), attention, ("a", "b", "c"))
  rows = canvas_rows(picture, 300, 200)  # the photo enlarged 3x to 300 x 450
  assert rows.size == 300
  panel = picture[rows, 450 + display.MARGIN : 2 * 450 + display.MARGIN]
  # The centre crop drops 2 of 36 px on each side: photo columns < 150 * 2 / 36 = 8.3 (25 on the 3x canvas).
  assert (panel[:, :24] == 80).all()  # outside the input: the photo darkened, no attention colour
  expected = display.blend(photo[:1, :1], ATTENTION_SCALE.colours(np.array([[0.25]])), 0.55)[0, 0]
  np.testing.assert_array_equal(panel[150, 225], expected)


def relation_outputs(num_objects, strong_pairs):
  """PredCls outputs of one image whose `strong_pairs` (indices into the dense pairs) have a relation of
  score 0.91 and every other pair one of score 0.007 (below the threshold)."""
  pairs = np.stack(np.divmod(np.arange(num_objects**2), num_objects), axis=1)
  logits = np.tile(np.array([5.0, 0.0, 0.0], np.float32), (len(pairs), 1))
  logits[list(strong_pairs)] = [0.0, 3.0, 0.0]
  boxes = np.array([[4 * i, 2 * i, 4 * i + 10, 2 * i + 12] for i in range(num_objects)], np.float32)
  return {
    "boxes": boxes[None],
    "box_mask": np.ones((1, num_objects), bool),
    "k1_labels": (np.arange(num_objects) % (len(CLASSES) - 1) + 1)[None],
    "object_logits": np.zeros((1, num_objects, len(CLASSES)), np.float32),
    "relation_logits": logits[None],
    "pairs": pairs[None],
    "pair_mask": (pairs[:, 0] != pairs[:, 1])[None],
  }


@pytest.mark.parametrize("num_strong, num_drawn", [(3, 3), (14, 10), (0, 0)])
def test_only_the_top_relations_above_the_threshold_are_drawn(monkeypatch, num_strong, num_drawn):
  arrows = []
  original = scene_graph_pictures.draw_arrow
  monkeypatch.setattr(
    scene_graph_pictures,
    "draw_arrow",
    lambda draw, start, end, *args: (arrows.append(start), original(draw, start, end, *args)),
  )
  off_diagonal = [i for i in range(36) if i // 6 != i % 6]
  outputs = relation_outputs(6, off_diagonal[:num_strong])
  task = SceneGraphTask("predcls", CLASSES, PREDICATES)
  picture = task.predict_pictures(outputs, np.full((40, 48, 3), 90, np.uint8), 0)["scene_graph"]
  assert len(arrows) == num_drawn
  assert scene_graph_pictures.MAX_RELATIONS == 10 and scene_graph_pictures.MIN_RELATION_SCORE == 0.1
  # The JSON keeps the full ranking (20), drawn or not.
  assert len(task.predict_json(outputs, 0)["relations"]) == 20
  # 40 x 48 enlarged 7x (boxes and arrows stay left of input column 46); the legend to its right holds text.
  rows = canvas_rows(picture, slice(322, 336), 90)
  assert rows.size == 280 and picture.shape[1] > 336 + 100
  legend = picture[rows[0] :, 336 + display.MARGIN :]
  assert (legend != display.BACKGROUND).any(axis=-1).sum() > 200


def test_ground_truth_pictures_draw_hits_green_and_misses_red(monkeypatch):
  colours = []
  original = scene_graph_pictures.draw_arrow
  monkeypatch.setattr(
    scene_graph_pictures,
    "draw_arrow",
    lambda draw, start, end, colour, *args: (colours.append(colour), original(draw, start, end, colour, *args)),
  )
  outputs = relation_outputs(3, [1])  # pair (0, 1) predicted 'on'
  task = SceneGraphTask("predcls", CLASSES, PREDICATES)
  image = np.full((16, 16, 3), 90, np.uint8)
  labels = outputs["k1_labels"][0]
  task.graph_picture(outputs, image, 0, labels, np.array([[0, 1, 1], [2, 0, 2]]))
  assert colours == [display.GREEN, display.RED]


def test_tags_avoid_each_other():
  taken = [(0, 0, 20, 14)]
  assert display.free_spot([(5, 5), (30, 5)], (20, 14), taken, (100, 100)) == (30, 5)
  assert display.free_spot([(95, 95)], (20, 14), [], (100, 100)) == (80, 86)  # moved inside


def test_colour_scales_are_fixed_and_checked():
  scale = display.ColourScale(0.0, 1.0, "p")
  np.testing.assert_array_equal(scale.colours(np.array([0.0, 0.5, 1.0, 2.0])), display.hot_colours([0, 0.5, 1, 1]))
  assert ATTENTION_SCALE.tick_values() == [0.001, 0.01, 0.1, 1.0]
  np.testing.assert_allclose(ATTENTION_SCALE.position(np.array([1e-3, 1e-2, 1.0])), [0.0, 1 / 3, 1.0])
  with pytest.raises(ValueError, match="low < high"):
    display.ColourScale(1.0, 1.0, "flat")
  bar = display.colour_bar(300, scale)
  assert bar.shape == (3 * display.LINE_HEIGHT, 300, 3)


def test_readme_pictures_pick_test_images_that_show_something(tmp_path):
  import json

  from PIL import Image

  from jaxgraphs.data.builders import shapes
  from jaxgraphs.tools import make_readme_pictures

  images = make_readme_pictures.pick_test_images(str(tmp_path / "tfds"), str(tmp_path))
  assert sorted(images) == ["linknet", "rgnet", "ssgrl"]
  with open(tmp_path / "boxes.json") as f:
    entry = json.load(f)[os.path.basename(images["linknet"])]
  boxes = np.array(entry["boxes"])
  assert len(boxes) >= 3 and len(entry["labels"]) == len(boxes)
  assert (boxes >= 0).all() and (boxes <= 48).all() and (boxes[:, 2:] > boxes[:, :2]).all()
  assert set(entry["labels"]) <= set(shapes.CATEGORY_NAMES)
  assert np.asarray(Image.open(images["ssgrl"])).shape == (48, 48, 3)
