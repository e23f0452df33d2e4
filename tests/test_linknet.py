"""LinkNet: relational embedding vs NumPy eqs. (1)-(6), layout encoding vs eq. (17), pairs, train steps."""

from __future__ import annotations

import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from training_helpers import config_file

from jaxgraphs import models
from jaxgraphs.configs import linknet as linknet_configs
from jaxgraphs.models import linknet
from jaxgraphs.models.heads import linknet_head
from jaxgraphs.models.layers import graph_attention

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- NumPy transcription of the paper -------------------------------------------------------------------------
def _linear(x, params):
  return x @ np.asarray(params["kernel"], np.float64) + np.asarray(params.get("bias", 0.0), np.float64)


def _relational_embedding(o, params, mask, normalization="softmax", similarity="dot"):
  """Eqs. (1)-(3): R = normalise(W(O) U(O)^T), O1 = O + fc0(R H(O)), O2 = fc1(O1); masked keys get weight 0."""
  attention = params["attention"]
  w, u, h = (_linear(o, attention[name]) for name in ("query", "key", "value"))
  if similarity == "dot":
    logits = w @ u.T
  else:
    logits = -np.sum((w[:, None, :] - u[None, :, :]) ** 2, axis=-1)
  if normalization == "softmax":
    logits = np.where(mask[None, :], logits, -np.inf)
    r = np.exp(logits - logits.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
  else:
    r = np.where(mask[None, :], 1.0 / (1.0 + np.exp(-logits)), 0.0)
  o1 = o + _linear(r @ h, params["fc0"])
  return o1, _linear(o1, params["fc1"]), r


def _stack_inputs(seed=0, batch=2, objects=5, features=12):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(batch, objects, features)).astype(np.float32)
  mask = np.ones((batch, objects), bool)
  mask[1, -2:] = False  # image 1 has three real objects
  return x, mask


@pytest.mark.parametrize("normalization,similarity", [("softmax", "dot"), ("sigmoid", "dot"), ("softmax", "euclidean")])
def test_object_relational_embedding_matches_equations_1_to_6(normalization, similarity):
  x, mask = _stack_inputs()
  stack = linknet_head.RelationalStack(
    hidden_features=8,
    out_features=6,
    num_modules=2,
    prefix="object_re",
    normalization=normalization,
    similarity=similarity,
  )
  params = stack.init(jax.random.key(0), x, mask)["params"]
  o3, o4, matrices = stack.apply({"params": params}, x, mask)
  for b in range(2):
    real = mask[b]
    _, o2, r1 = _relational_embedding(x[b].astype(np.float64), params["object_re1"], real, normalization, similarity)
    o3_np, o4_np, r2 = _relational_embedding(o2, params["object_re2"], real, normalization, similarity)
    n = int(real.sum())
    np.testing.assert_allclose(matrices["object_re1"][b][:n], r1[:n], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(matrices["object_re2"][b][:n], r2[:n], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(o3[b][:n], o3_np[:n], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(o4[b][:n], o4_np[:n], rtol=2e-4, atol=2e-5)
  assert o3.shape == (2, 5, 8) and o4.shape == (2, 5, 6)
  # W, U, H map d -> d / r (r = 2): the first module's query is 12 -> 6, the second's 8 -> 4.
  assert params["object_re1"]["attention"]["query"]["kernel"].shape == (12, 6)
  assert params["object_re2"]["attention"]["value"]["kernel"].shape == (8, 4)


def test_without_relational_embedding_the_modules_are_plain_linear_maps():
  x, mask = _stack_inputs()
  stack = linknet_head.RelationalStack(hidden_features=8, out_features=6, num_modules=2, use_relations=False)
  params = stack.init(jax.random.key(0), x, mask)["params"]
  o3, o4, matrices = stack.apply({"params": params}, x, mask)
  assert matrices == {} and "attention" not in params["re1"]
  hidden = _linear(x.astype(np.float64), params["re1"]["fc1"])
  np.testing.assert_allclose(o3, hidden, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(o4, _linear(hidden, params["re2"]["fc1"]), rtol=1e-4, atol=1e-5)


def test_relational_embedding_goes_through_the_shared_graph_op(monkeypatch):
  calls = []
  original = graph_attention.graph_propagate

  def spy(*args, **kwargs):
    calls.append(kwargs)
    return original(*args, **kwargs)

  monkeypatch.setattr(graph_attention, "graph_propagate", spy)
  x, mask = _stack_inputs()
  stack = linknet_head.RelationalStack(hidden_features=8, out_features=6, num_modules=3, reduction=4)
  stack.init(jax.random.key(0), x, mask)
  assert len(calls) == 3 and all(c["normalization"] == "softmax" and c["similarity"] == "dot" for c in calls)


def test_layout_encoding_matches_equation_17():
  rng = np.random.default_rng(1)
  corners = rng.uniform(0, 100, size=(7, 2, 2))
  boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=-1)  # (7, 4) x1, y1, x2, y2
  subject, object_ = boxes[:-1], boxes[1:]
  got = np.asarray(linknet_head.layout_encoding(jnp.asarray(subject), jnp.asarray(object_)))
  for s, o, row in zip(subject, object_, got):
    w_s, h_s = s[2] - s[0] + 1, s[3] - s[1] + 1
    w_o, h_o = o[2] - o[0] + 1, o[3] - o[1] + 1
    x_s, y_s, x_o, y_o = s[0] + w_s / 2, s[1] + h_s / 2, o[0] + w_o / 2, o[1] + h_o / 2
    expected = [(x_o - x_s) / w_s, (y_o - y_s) / h_s, np.log(w_o / w_s), np.log(h_o / h_s)]
    np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("relu", [True, False])
def test_k2_relu_switch_lets_negative_layout_embeddings_through(relu):
  # K2 alone feeds the classifier: zero rows for G0, an identity for the 4 geometry columns, no bias.
  rng = np.random.default_rng(0)
  objects, width = 3, 6
  boxes = jnp.asarray([[[0, 0, 10, 10], [20, 5, 40, 30], [5, 30, 15, 60]]], jnp.float32)
  pairs, pair_mask = linknet.dense_pairs(jnp.ones((1, objects)))
  inputs = dict(
    object_features=jnp.asarray(rng.normal(size=(1, objects, width)), jnp.float32),
    label_distribution=jnp.eye(4)[None, 1:4],
    context=None,
    mask=jnp.ones((1, objects)),
    boxes=boxes,
    pairs=pairs,
    pair_mask=pair_mask,
    union_features=jnp.asarray(rng.normal(size=(1, pairs.shape[1], width)), jnp.float32),
  )
  head = linknet_head.LinkNetHead(
    num_object_classes=4,
    num_predicates=3,
    embed_dim=4,
    hidden_dim=8,
    geometry_dim=4,
    geometry_batch_norm=False,
    geometry_relu=relu,
    geometry_dropout=0.0,
  )
  params = jax.tree.map(np.asarray, head.init(jax.random.key(0), **inputs)["params"])
  params["predicate_classifier"] = {"kernel": np.concatenate([np.zeros((width, 4)), np.eye(4)]), "bias": np.zeros(4)}
  k2 = params["layout_embedding"]
  layout = linknet_head.layout_encoding(boxes[0, pairs[0, :, 0]], boxes[0, pairs[0, :, 1]])
  before = np.asarray(layout) @ k2["kernel"] + k2["bias"]
  assert (before < -1e-3).any() and (before > 1e-3).any()  # both signs occur, so the switch is visible
  real = np.asarray(pair_mask[0], bool)
  logits = np.asarray(head.apply({"params": params}, **inputs)["relation_logits"][0])
  np.testing.assert_allclose(logits[real], (np.maximum(before, 0) if relu else before)[real], rtol=1e-5, atol=1e-5)
  # Dropout 0 is no dropout: training without a dropout key gives the same numbers.
  trained = head.apply({"params": params}, **inputs, train=True)["relation_logits"][0]
  np.testing.assert_allclose(np.asarray(trained)[real], logits[real], rtol=1e-6)


def test_dense_pairs_and_union_boxes():
  mask = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
  pairs, pair_mask = linknet.dense_pairs(jnp.asarray(mask))
  assert pairs.shape == (2, 9, 2)
  np.testing.assert_array_equal(pairs[0, 5], [1, 2])  # pair p = (p // 3, p % 3)
  assert int(pair_mask[0].sum()) == 2 and int(pair_mask[1].sum()) == 6  # distinct real objects only
  boxes = jnp.asarray([[[0, 0, 10, 10], [5, -2, 20, 8], [0, 0, 1, 1]]] * 2, jnp.float32)
  union = linknet.union_boxes(boxes, pairs)
  np.testing.assert_array_equal(union[0, 1], [0, -2, 20, 10])


def test_bad_variant_argument_names_the_token():
  from jaxgraphs.errors import ConfigError

  with pytest.raises(ConfigError, match="bad token 'rem=2'"):
    linknet_configs.parse_arg("predcls,rem=2")
  assert linknet_configs.parse_arg("sgcls,num_re=3,r=4,e0=labels,glem=0,norm=sigmoid,sim=euclidean") == {
    "mode": "sgcls",
    "num_relational_modules": 3,
    "reduction": 4,
    "edge_input": "labels",
    "use_geometry": False,
    "normalization": "sigmoid",
    "similarity": "euclidean",
  }


def _numpy_variables(model, *args):
  """Random variables of the shapes `model.init` would give, without compiling the initialisers (slow on CPU)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    if any(getattr(key, "key", None) == "var" for key in path):
      return np.ones(leaf.shape, leaf.dtype)
    return (0.1 * rng.normal(size=leaf.shape)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def tiny_linknet(mode, data_info):
  """LinkNet as configs/linknet_shapes.py:MODE,tiny builds it (the unit tests' widths) for `data_info`'s labels."""
  return models.build_model(_shapes_config(mode).model, data_info)


def test_predcls_feeds_ground_truth_labels_and_sgcls_argmax_at_test():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(1, 32, 32, 3)).astype(np.float32)
  boxes = np.array([[[2, 2, 30, 30], [20, 10, 30, 25], [5, 4, 25, 30]]], np.float32)
  mask = np.ones((1, 3), np.float32)
  labels = np.array([[1, 2, 3]], np.int32)
  # 5 object classes and 4 predicates (+ background): a made-up label set, no dataset.
  labels_info = types.SimpleNamespace(
    source="test", num_classes=5, predicate_names=("__background__", "p1", "p2", "p3", "p4")
  )
  modes = {mode: tiny_linknet(mode, labels_info) for mode in ("predcls", "sgcls")}
  # SGCls has every PredCls parameter plus the object classifier feeding K0.
  variables = _numpy_variables(modes["sgcls"], images, boxes, mask, labels)
  outputs = {mode: jax.jit(model.apply)(variables, images, boxes, mask, labels) for mode, model in modes.items()}
  np.testing.assert_array_equal(outputs["predcls"]["k1_labels"], labels)
  expected = np.argmax(outputs["sgcls"]["object_logits"][..., 1:], axis=-1) + 1
  np.testing.assert_array_equal(outputs["sgcls"]["k1_labels"], expected)
  assert "detector_logits" in outputs["sgcls"] and "detector_logits" not in outputs["predcls"]
  assert outputs["predcls"]["relation_logits"].shape == (1, 9, 5)


def test_prediction_from_an_image_file_and_boxes():
  """What jaxgraphs.predict does with --boxes: pp_eval on the image and the boxes, the model, predict_json."""
  import io

  import tensorflow as tf
  from PIL import Image

  from jaxgraphs.data import pipeline, sources, transforms
  from jaxgraphs.tasks.input_frame import photo_frame
  from jaxgraphs.tasks.scene_graph import SceneGraphTask, boxes_entry

  source = sources.get_source("builtin_shapes/tiny:scene_graph")
  task = SceneGraphTask("predcls", source.class_names, source.predicate_names)
  png = io.BytesIO()
  Image.fromarray(np.full((96, 48, 3), 120, np.uint8)).save(png, format="PNG")
  entry = boxes_entry(
    {"shapes.png": {"boxes": [[4, 8, 40, 44], [10, 50, 30, 90]], "labels": ["red circle", 3]}}, "/some/dir/shapes.png"
  )
  fields = task.prediction_fields(entry, (96, 48))
  example = transforms.build(source.pp_eval)(
    {"image": tf.constant(png.getvalue()), **fields, transforms.SEED_KEY: tf.constant([0, 0], tf.int64)}
  )
  batch = {key: np.asarray(example[key])[None] for key in ("image", "object_boxes", "object_labels", "object_mask")}
  model = tiny_linknet("predcls", pipeline.dataset_info(_shapes_config("predcls").data))
  inputs = task.model_inputs(batch)
  outputs = jax.tree.map(np.asarray, jax.jit(model.apply)(_numpy_variables(model, *inputs.values()), **inputs))
  # 96 x 48 -> 64 x 32 (long side 64): the network sees the boxes at 2/3 of their size ...
  np.testing.assert_allclose(outputs["boxes"][0, 0], np.array([4, 8, 40, 44]) * 2 / 3, rtol=1e-5)
  # ... and predict_json gives them back in the photo's pixels.
  frame = photo_frame(source.pp_eval, (96, 48))
  prediction = task.predict_json(outputs, 0, frame=frame, top_k=3)
  np.testing.assert_allclose([o["box"] for o in prediction["objects"]], [[4, 8, 40, 44], [10, 50, 30, 90]], atol=1e-3)
  assert [o["label"] for o in prediction["objects"]] == ["red circle", source.class_names[3]]
  assert len(prediction["relations"]) == 2 and {(r["subject"], r["object"]) for r in prediction["relations"]} == {
    (0, 1),
    (1, 0),
  }
  photo = np.full((96, 48, 3), 120, np.uint8)
  picture = task.predict_pictures(outputs, photo, 0, frame=frame)["scene_graph"]
  # Drawn on the photo enlarged 6x (288 px wide), the legend beside it.
  assert picture.dtype == np.uint8 and picture.shape[0] > 6 * 96 and picture.shape[1] > 6 * 48 + 100
  with pytest.raises(ValueError, match="PredCls needs 'labels'"):
    task.prediction_fields({"boxes": [[0, 0, 1, 1]]}, (8, 8))


# ---- one train step in each mode through the trainer's Experiment ---------------------------------------------
def _shapes_config(arg):
  return config_file("linknet_shapes", f"{arg},tiny")


@pytest.fixture(scope="module")
def shapes_data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.mark.slow  # ~75 s each on a shared 2-core CPU, nearly all of it compilation
@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_one_train_step_and_eval_batch(shapes_data_dir, mode):
  from jaxgraphs.data import pipeline
  from jaxgraphs.training import sharding
  from jaxgraphs.training.trainer import Experiment

  config = _shapes_config(mode)  # builtin_shapes/tiny:scene_graph, batch 2
  config.data.data_dir = shapes_data_dir
  config.task.zero_shot = False
  experiment = Experiment(config)
  batch = next(pipeline.build_train_dataset(config.data, local_batch_size=config.batch_size, seed=0))
  state = experiment.build_state(batch)
  experiment.compile()
  state, metrics = experiment.jit_train_step(state, sharding.global_batch(batch, experiment.mesh))
  assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))
  expected_terms = {"object_loss", "relation_loss", "global_loss"} | ({"detector_loss"} if mode == "sgcls" else set())
  assert expected_terms <= set(metrics)
  eval_batches, _ = pipeline.build_eval_dataset(config.data, local_batch_size=config.batch_size)
  eval_batch = sharding.global_batch(next(iter(eval_batches)), experiment.mesh)
  outputs = jax.device_get(experiment.jit_eval_step(state, eval_batch))
  assert outputs["pair_scores"].shape == (config.batch_size, 64, 9)  # all 8 x 8 pairs, 8 predicates + background
  np.testing.assert_allclose(outputs["pair_scores"].sum(-1), 1.0, rtol=1e-5)
  assert ("pred_labels" in outputs) == (mode == "sgcls")
  evaluator = experiment.task.make_evaluator()
  evaluator.update(outputs)
  result = evaluator.result()
  # The evaluator on the real step's padded outputs against a loop over the protocol (the evaluator's own tests use
  # hand-built images): a mix-up of pair order, padding or label source between the task and the evaluator fails.
  for k in (20, 50, 100):
    np.testing.assert_allclose(result[f"{mode}/R@{k}"], loop_recall(outputs, mode, k), rtol=1e-9, err_msg=f"R@{k}")


def loop_recall(outputs, mode, k):
  """Graph-constrained R@K of a padded dense-pair batch, written from the protocol: a pair predicts its best
  non-background predicate, scored with its two objects' scores (1 in PredCls); the top k pairs (ties: earlier
  pair) hit a GT relation with the same classes and predicate and both boxes at IoU >= 0.5 (+1 pixel areas); the
  result is the mean over images with a GT relation of hit / GT relations."""

  def iou(a, b):
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(width, 0.0) * max(height, 0.0)
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)

  recalls = []
  for b in np.flatnonzero(outputs["mask"]):
    boxes = np.asarray(outputs["gt_boxes"][b], np.float64)
    real = np.asarray(outputs["gt_box_mask"][b], bool)
    n = boxes.shape[0]
    if mode == "predcls":
      labels, scores = np.asarray(outputs["gt_labels"][b]), np.ones(n)
    else:
      labels, scores = np.asarray(outputs["pred_labels"][b]), np.asarray(outputs["pred_scores"][b], np.float64)
    predictions = []
    for p in range(n * n):
      s, o = divmod(p, n)
      if s != o and real[s] and real[o] and outputs["pair_mask"][b, p]:
        predicate_scores = np.asarray(outputs["pair_scores"][b, p], np.float64)
        predicate = 1 + int(np.argmax(predicate_scores[1:]))
        predictions.append((-scores[s] * scores[o] * predicate_scores[predicate], p, s, o, predicate))
    top = sorted(predictions)[:k]  # by score, then pair index
    gt = [tuple(r) for r, m in zip(outputs["gt_relations"][b], outputs["gt_relation_mask"][b]) if m]
    if not gt:
      continue
    hits = 0
    for gs, go, gp in gt:
      hits += any(
        predicate == gp
        and labels[s] == outputs["gt_labels"][b, gs]
        and labels[o] == outputs["gt_labels"][b, go]
        and iou(boxes[s], boxes[gs]) >= 0.5
        and iou(boxes[o], boxes[go]) >= 0.5
        for _, _, s, o, predicate in top
      )
    recalls.append(hits / len(gt))
  return float(np.mean(recalls))


@pytest.mark.slow  # 1 min of CPU (6 min wall on the shared machine): 30 steps and an evaluation via the CLI
def test_short_run_on_builtin_shapes(tmp_path):
  import json
  import subprocess
  import sys

  from training_helpers import cpu_env, tensorboard_scalars, tensorboard_tags

  workdir = tmp_path / "run"
  command = [
    sys.executable,
    "-m",
    "jaxgraphs.main",
    "--config=configs/linknet_shapes.py:sgcls,tiny",
    f"--workdir={workdir}",
    f"--config.data.data_dir={tmp_path / 'tfds'}",
    "--config.batch_size=8",
    "--config.total_steps=30",
    "--config.log_every_steps=10",
  ]
  proc = subprocess.run(
    command,
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=900,
    check=False,
  )
  assert proc.returncode == 0, proc.stdout[-4000:]
  with open(workdir / "eval_30.json") as f:
    metrics = json.load(f)
  assert metrics["sgcls/num_images"] == 128 and 0.0 <= metrics["sgcls/ngR@100"] <= 1.0
  scalars = tensorboard_scalars(str(workdir))
  losses = scalars["train/relation_loss"]
  assert losses[30] < losses[10]  # the predicate classifier learns something in 30 steps
  # SGCls recall after 30 steps is at chance (~0.002; both labels of a pair must be right), so learning shows in the
  # losses: the total fell 8.01 -> 7.81 and the global context's multi-label loss 0.664 -> 0.591 (CPU, seeds fixed);
  # a model whose updates do not reach its heads would not move them. Margins are half those drops.
  assert scalars["train/loss"][30] < scalars["train/loss"][10] - 0.1
  assert scalars["train/global_loss"][30] < scalars["train/global_loss"][10] - 0.035
  assert {"eval/scene_graphs", "eval/relational_embedding", "eval/sgcls/R@50"} <= tensorboard_tags(str(workdir))
  # jaxgraphs.predict on the run: an image with boxes -> its scene graph as JSON and a drawing; an image
  # without an entry in --boxes gets one line and the exit status 1.
  from PIL import Image

  image, other = tmp_path / "scene.png", tmp_path / "unlisted.png"
  Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(image)
  Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(other)
  (tmp_path / "boxes.json").write_text(json.dumps({"scene.png": {"boxes": [[4, 4, 40, 60], [60, 20, 120, 80]]}}))
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgraphs.predict",
      f"--checkpoint={workdir}",
      f"--boxes={tmp_path / 'boxes.json'}",
      f"--out_dir={tmp_path / 'pictures'}",
      str(image),
      str(other),
    ],
    cwd=REPO,
    env=cpu_env(),
    capture_output=True,
    text=True,
    timeout=900,
    check=False,
  )
  assert proc.returncode == 1, proc.stderr[-4000:]
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 1, proc.stdout
  graph = json.loads(lines[0])
  assert graph["image"] == str(image) and graph["mode"] == "sgcls" and len(graph["objects"]) == 2
  # The network sees the photo at half size (long side 64); the boxes come back in the photo's pixels.
  np.testing.assert_allclose([o["box"] for o in graph["objects"]], [[4, 4, 40, 60], [60, 20, 120, 80]], atol=1e-3)
  assert {(r["subject"], r["object"]) for r in graph["relations"]} == {(0, 1), (1, 0)}
  assert f"{other}: --boxes has no entry for" in proc.stderr
  # Drawn over the 96 x 128 photo enlarged 3x, the legend beside it.
  width, height = Image.open(tmp_path / "pictures" / "scene_scene_graph.png").size
  assert width > 3 * 128 + 100 and height > 3 * 96


def test_a_batch_without_any_object_trains_with_finite_gradients():
  # SGDet on an image set where the detector finds nothing: every object and pair is padding. The layout's batch
  # norm has no statistics then; its masked mean would be 0 / 0 and poison every gradient through the head.
  objects, width = 3, 6
  pairs, pair_mask = linknet.dense_pairs(jnp.zeros((2, objects)))
  inputs = dict(
    object_features=jnp.zeros((2, objects, width)),
    label_distribution=jnp.full((2, objects, 4), 0.25),
    context=None,
    mask=jnp.zeros((2, objects)),
    boxes=jnp.zeros((2, objects, 4)),
    pairs=pairs,
    pair_mask=pair_mask,
    union_features=jnp.zeros((2, pairs.shape[1], width)),
  )
  head = linknet_head.LinkNetHead(num_object_classes=4, num_predicates=3, embed_dim=4, hidden_dim=8, geometry_dim=4)
  variables = jax.jit(head.init)({"params": jax.random.key(0), "dropout": jax.random.key(1)}, **inputs)

  def loss(params):
    out, _ = head.apply(
      {**variables, "params": params},
      **inputs,
      train=True,
      rngs={"dropout": jax.random.key(2)},
      mutable=["batch_stats"],
    )
    return jnp.sum(out["relation_logits"] * 0.0) + jnp.sum(out["object_logits"] * 0.0)

  grads = jax.jit(jax.grad(loss))(variables["params"])
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
