"""SSGRL end to end: the model around the head (frozen stages, pooling, constants), every config variant for one
train step (builtin_shapes/tiny; mock COCO 2014 and VOC 2007), the missing-word-vectors message, a short CLI run."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs import models
from jaxgraphs.configs import ssgrl as ssgrl_configs
from jaxgraphs.data import label_graph, label_priors, pipeline, sources
from jaxgraphs.models import ssgrl
from jaxgraphs.training import sharding, trainer
from jaxgraphs.training.optimizers import regex_mask
from jaxgraphs.training.tree_paths import path_strings
from mock_tfds import mock_data
from training_helpers import (
  REPO,
  config_file,
  cpu_env,
  main_command,
  one_step_and_evaluation,
  tensorboard_scalars,
  tensorboard_tags,
)

FROZEN = ("stem", "layer1", "layer2", "layer3")
# The shapes config shrunk to a width-4 ResNet-18 at 32 px (builtin_shapes/tiny) and a 16-wide head.


def load_config(name: str, arg: str | None = None):
  return config_file(name, arg)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """builtin_shapes/tiny prepared once for this module."""
  path = str(tmp_path_factory.mktemp("tfds"))
  from jaxgraphs.data.builders import shapes

  shapes.ensure_prepared("tiny", path)
  return path


def small_module(frozen_stages=(), num_classes=5, **flags):
  rng = np.random.default_rng(0)
  adjacency = rng.uniform(size=(num_classes, num_classes)).astype(np.float32)
  return ssgrl.SSGRL(
    ssgrl.Constant(rng.normal(size=(num_classes, 7)).astype(np.float32)),
    ssgrl.Constant(adjacency),
    depth=18,
    backbone_kwargs={"width": 4, "output_stride": 8},
    frozen_stages=frozen_stages,
    joint_dim=8,
    attention_hidden_dim=8,
    **flags,
  )


# ---- the module ----------------------------------------------------------------------------------------
@pytest.mark.slow  # compiles a ResNet's gradient (about 25 s with a cold cache)
def test_frozen_stages_get_no_gradient_and_keep_their_batch_norm_statistics():
  module = small_module(FROZEN)
  images = jnp.asarray(np.random.default_rng(1).normal(size=(2, 32, 32, 3)), jnp.float32)
  variables = module.init(jax.random.key(0), images)

  def loss(params):
    outputs, state = module.apply({**variables, "params": params}, images, train=True, mutable=["batch_stats"])
    return jnp.sum(outputs["logits"] ** 2), state

  grads, state = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
  frozen = regex_mask(grads, ssgrl.freeze_regexes(FROZEN))
  # stem (conv, bn scale and bias), layer1 (2 blocks x 6), layer2 and layer3 (2 x 6 + a 3-leaf downsample each)
  assert sum(jax.tree.leaves(frozen)) == 3 + 12 + 15 + 15
  for path, grad, is_frozen in zip(
    jax.tree.leaves(path_strings(grads)), jax.tree.leaves(grads), jax.tree.leaves(frozen)
  ):
    assert (float(jnp.max(jnp.abs(grad))) == 0.0) == is_frozen, path
  old, new = variables["batch_stats"]["backbone"], state["batch_stats"]["backbone"]
  for name in new:
    unchanged = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(old[name]), jax.tree.leaves(new[name])))
    assert unchanged == (not name.startswith("layer4")), name


def test_feature_pool_halves_the_attention_grid_and_class_features_stay_inside():
  images = jnp.zeros((1, 32, 32, 3))
  for pool, side in ((2, 2), (1, 4)):
    module = small_module(feature_pool=pool)
    # Jitted: op-by-op dispatch of a whole ResNet is several times slower than compiling it once.
    outputs = jax.jit(module.apply)(jax.jit(module.init)(jax.random.key(0), images), images)
    assert outputs["logits"].shape == (1, 5) and outputs["attention"].shape == (1, 5, side, side)
    assert set(outputs) == {"logits", "attention"}
    np.testing.assert_allclose(outputs["attention"].sum(axis=(2, 3)), 1.0, rtol=1e-5)


def test_frozen_bn_in_backbone_kwargs_is_refused():
  module = ssgrl.SSGRL(
    ssgrl.Constant(np.zeros((2, 3), np.float32)),
    ssgrl.Constant(np.eye(2, dtype=np.float32)),
    depth=18,
    backbone_kwargs={"width": 4, "frozen_bn": True},
  )
  with pytest.raises(ValueError, match="frozen_bn: SSGRL sets it from config.model.frozen_stages"):
    module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_constants_hash_and_compare_by_content():
  a = ssgrl.Constant(np.arange(6, dtype=np.float32).reshape(2, 3))
  b = ssgrl.Constant(np.arange(6, dtype=np.float32).reshape(2, 3))
  assert a == b and hash(a) == hash(b) and a != ssgrl.Constant(np.zeros((2, 3), np.float32))


def test_builtin_word_vectors_average_fixed_per_word_vectors():
  vectors = label_priors.builtin_word_vectors(["red circle", "blue circle", "circle", "red"])
  assert vectors.shape == (4, 300) and vectors.dtype == np.float32
  np.testing.assert_allclose(vectors[0], (vectors[2] + vectors[3]) / 2, rtol=1e-6)
  # Fixed by the word alone: independent of the other classes and of the order.
  np.testing.assert_array_equal(label_priors.builtin_word_vectors(["circle"])[0], vectors[2])
  assert 0.3 < np.std(vectors[2]) < 0.5
  assert abs(np.corrcoef(vectors[0], vectors[1])[0, 1] - 0.5) < 0.15  # they share "circle"


def test_freeze_regexes_name_the_stages_and_reject_unknown_ones():
  assert ssgrl.freeze_regexes(("stem", "layer2")) == (r"^backbone/(conv1|bn1)/", r"^backbone/layer2_\d+/")
  with pytest.raises(ValueError, match="config.model.frozen_stages: unknown stages \\['layer5'\\]"):
    ssgrl.freeze_regexes(("layer5",))


# ---- the factory ---------------------------------------------------------------------------------------
def model_of(config):
  """The module `config` builds, with the word vectors and label graph the data layer provides for it."""
  info = label_priors.provide(pipeline.dataset_info(config.data), models.data_requests(config.model), config.data)
  return models.build_model(config.model, info)


def shapes_config(data_dir, variant="full"):
  config = load_config("ssgrl_shapes", f"{variant},tiny")
  config.data.data_dir, config.total_steps = data_dir, 2
  return config


def test_factory_uses_builtin_word_vectors_and_the_train_split_adjacency(data_dir, tmp_path):
  config = shapes_config(data_dir)
  config.model.adjacency_cache_dir = str(tmp_path)
  info = pipeline.dataset_info(config.data)
  module = model_of(config)
  np.testing.assert_array_equal(module.word_vectors.value, label_priors.builtin_word_vectors(info.class_names))
  builder = sources.get_source(config.data.source).builder(data_dir)
  labels = [example["labels"] for example in builder.as_dataset(split="train").as_numpy_iterator()]
  expected = label_graph.cooccurrence_adjacency(label_graph.multi_hot(labels, info.num_classes))
  np.testing.assert_allclose(module.adjacency.value, expected, rtol=1e-6)
  assert len([p for p in os.listdir(tmp_path) if p.endswith("_cooccurrence.npy")]) == 1
  assert module.depth == 18 and module.frozen_stages == () and module.feature_pool == 2


def test_unknown_variant_and_non_resnet_backbone_fail_naming_them(data_dir):
  with pytest.raises(ValueError, match="config argument 'nope': unknown variant 'nope'.*full | baseline"):
    load_config("ssgrl_shapes", "nope")
  config = shapes_config(data_dir)
  config.model.backbone = "densenet121"
  with pytest.raises(ValueError, match="config.model.backbone='densenet121': SSGRL needs a ResNet"):
    model_of(config)


def one_train_step(config):
  """Builds the experiment, runs one jitted train step and one forward pass; returns (metrics, outputs)."""
  experiment = trainer.Experiment(config)
  batches = pipeline.build_train_dataset(config.data, local_batch_size=config.batch_size, seed=0)
  state = experiment.build_state(batches.batch_spec)
  local = next(batches)
  experiment.compile()
  batch = sharding.global_batch(local, experiment.mesh)
  state, metrics = experiment.jit_train_step(state, batch)
  return jax.device_get(metrics), jax.device_get(experiment.jit_forward(state, batch)), experiment


@pytest.mark.parametrize(
  "variant", [v if v == "full" else pytest.param(v, marks=pytest.mark.slow) for v in ssgrl_configs.VARIANTS]
)
def test_every_shapes_variant_trains_one_step(data_dir, variant):
  metrics, outputs, experiment = one_train_step(shapes_config(data_dir, variant))
  assert np.isfinite(metrics["loss"]) and metrics["grad_norm"] > 0
  assert outputs["logits"].shape == (8, 12)
  # Finite numbers would not catch a graph cut off from the image: every class's score must vary over the 8 images
  # (measured: standard deviation >= 0.016 for 'full', 0.048 for 'baseline'; a constant output gives 0).
  assert outputs["logits"].std(axis=0).min() > 1e-3
  assert ("attention" in outputs) == (variant in ("full", "without_si"))
  if "attention" in outputs:
    # Semantic decoupling: one map per class, a distribution over the grid, and not the same map for every class
    # (measured spread over classes 0.0026 for 'full'; a class-agnostic attention gives 0).
    attention = outputs["attention"]
    np.testing.assert_allclose(attention.sum(axis=(-2, -1)), 1.0, rtol=1e-5)
    assert attention.std(axis=1).mean() > 2e-4
  expected_model = "MultiLabelClassifier" if variant == "baseline" else "SSGRL"
  assert type(experiment.model).__name__ == expected_model


def write_word_vectors(path, class_names):
  from jaxgraphs.tools.word_vectors import save_word_vectors

  vectors = np.random.default_rng(0).normal(0, 0.4, (len(class_names), 300)).astype(np.float32)
  save_word_vectors(str(path), vectors, {"class_names": list(class_names)})


def shrink_for_mock(config, tmp_path):
  """A paper config at test size: width-4 ResNet-18, 32 px crops, a 16-wide head, data under tmp_path."""
  config.model.backbone = "resnet18"
  config.model.backbone_kwargs = {"width": 4}
  config.model.joint_dim = config.model.attention_hidden_dim = 16
  config.model.word_vectors = str(tmp_path / "words.npy")
  config.data.data_dir = str(tmp_path / "tfds")
  # Not beside the dataset: under mock_data that is a temporary folder TFDS may remove while the test runs.
  config.model.adjacency_cache_dir = str(tmp_path / "adjacency")
  config.batch_size, config.total_steps, config.log_every_steps = 4, 1, 1
  config.data.shuffle_buffer = 4
  config.data.pp_train = "decode|resize(80)|random_crop_choice((80, 72, 64))|resize(64)|flip_lr|normalize_imagenet"
  config.data.pp_eval = "decode|resize(80)|center_crop(64)|normalize_imagenet"
  config.optimizer.plateau.accumulation_size = 1
  # mock_data swaps TFDS's file system; Orbax's background save thread must not outlive it.
  config.checkpoint.async_save = False
  return config


@pytest.mark.slow  # compiles a whole model's train step (20-40 s with a cold cache)
@pytest.mark.parametrize(
  "config_file,variant,num_classes",
  [
    ("ssgrl_coco", "full", 80),
    pytest.param("ssgrl_voc2007", "full", 20, marks=pytest.mark.slow),
    pytest.param("ssgrl_voc2012", "full", 20, marks=pytest.mark.slow),
    # The other Table 5 rows differ only in the head; each trains a step in test_every_shapes_variant_trains_one_step.
    pytest.param("ssgrl_coco", "without_si", 80, marks=pytest.mark.slow),
  ],
)
def test_paper_configs_train_one_step_and_evaluate_on_mock_data(tmp_path, config_file, variant, num_classes):
  config = shrink_for_mock(load_config(config_file, variant), tmp_path)
  info = pipeline.dataset_info(config.data)
  write_word_vectors(tmp_path / "words.npy", info.class_names)
  # In-process and without checkpoints: Orbax's background clean-up can race TFDS's mocked file system.
  with mock_data(num_examples=6):
    state, metrics, results, pictures = one_step_and_evaluation(config)
  assert np.isfinite(float(metrics["loss"]))
  assert len(results["per_class_AP"]) == num_classes and np.isfinite(results["OF1"])
  assert ("eval/attention_top3" in pictures) == (variant in ("full", "without_si"))
  # The paper's frozen part: every backbone stage before layer4, and nothing of layer4 or the head.
  params = jax.tree.leaves(path_strings(state.params))
  frozen = [p for p in params if any(re.search(r, p) for r in config.optimizer.freeze)]
  assert frozen and not any("layer4" in p or "head" in p or "classifier" in p for p in frozen)
  assert any("layer3" in p for p in frozen) and any(p.startswith("backbone/conv1") for p in frozen)
  # No Adam moments are kept for frozen parameters.
  moments = jax.tree.leaves(path_strings(state.opt_state))
  assert not [m for m in moments if any(m.endswith("/" + f) for f in frozen)]
  assert any(m.endswith("/backbone/layer4_0/conv1/kernel") for m in moments)


# ---- messages and the command line --------------------------------------------------------------------------
@pytest.mark.slow  # a command-line run
def test_missing_word_vectors_fail_with_the_command_that_makes_them(tmp_path):
  missing = str(tmp_path / "nowhere" / "coco.npy")
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgraphs.main",
      "--config=configs/ssgrl_coco.py",
      f"--workdir={tmp_path / 'run'}",
      f"--config.model.word_vectors={missing}",
      "--config.allow_random_frozen_backbone=True",  # else the missing ImageNet weights are reported first
    ],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    timeout=300,
  )
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last == (
    f"error: config.model.word_vectors: word vectors {missing} do not exist; make them with: "
    "python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=coco/2014 "
    f"--out={missing}"
  )


def test_unprepared_dataset_fails_naming_the_prepare_command(tmp_path):
  config = shrink_for_mock(load_config("ssgrl_voc2007"), tmp_path)
  write_word_vectors(tmp_path / "words.npy", sources.VOC_CLASS_NAMES)
  with pytest.raises(
    ValueError,
    match=r"^config.data.source: the label graph is counted on voc/2007:train\+"
    r"validation, which is not prepared .* `python -m jaxgraphs.tools.prepare_dataset "
    r"--dataset=voc/2007` first",
  ):
    model_of(config)


def test_word_vectors_for_other_classes_are_refused(tmp_path, data_dir):
  config = shapes_config(data_dir)
  config.model.word_vectors = str(tmp_path / "words.npy")
  write_word_vectors(tmp_path / "words.npy", sources.VOC_CLASS_NAMES[:12])
  with pytest.raises(ValueError, match="config.model.word_vectors: word vectors .* were made for other classes"):
    model_of(config)


@pytest.mark.slow
def test_short_run_on_the_builtin_dataset_evaluates_and_draws_attention(tmp_path, data_dir):
  workdir = str(tmp_path / "run")
  command = main_command(
    workdir,
    data_dir,
    "--config.total_steps=6",
    "--config.model.joint_dim=16",
    "--config.model.attention_hidden_dim=16",
    "--config.checkpoint.every_steps=6",
    config="configs/ssgrl_shapes.py",
  )
  proc = subprocess.run(
    command, cwd=REPO, env=cpu_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
  )
  assert proc.returncode == 0, proc.stdout[-4000:]
  with open(os.path.join(workdir, "eval_6.json")) as f:
    result = json.load(f)
  assert result["split"] == "validation" and len(result["per_class_AP"]) == 12
  # Six steps do not beat a random ranking (measured mAP 0.260; random scores average 0.257, std 0.012, on these
  # 128 images), but they must beat a model whose scores ignore the image: tied scores make each class's AP its
  # frequency, 0.204 on average here. 0.015 above it is 3 standard deviations below a random ranking.
  from jaxgraphs.data.builders import shapes

  validation = shapes.BuiltinShapes(config="tiny", data_dir=data_dir).as_dataset(split="validation")
  multi_hot = label_graph.multi_hot([example["labels"] for example in validation.as_numpy_iterator()], 12)
  assert result["mAP"] > multi_hot.mean() + 0.015
  # The loss starts near log 2 (0.697) and the last three steps average 0.660; margin half that drop.
  losses = tensorboard_scalars(workdir)["train/loss"]
  assert np.mean([losses[step] for step in (4, 5, 6)]) < losses[1] - 0.018
  assert "eval/attention_top3" in tensorboard_tags(workdir)
  assert "Final evaluation (step " in proc.stdout
