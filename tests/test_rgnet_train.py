"""RGNet trains: one optimisation step of every Table 1 variant, Table 2 backbone and loss kind at toy size.

(A real train step on a fake AVA tree and a command-line run: tests/test_rgnet_end_to_end.py.)"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgraphs import models, tasks
from jaxgraphs.data import pipeline
from training_helpers import config_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, SIZE = 4, 32  # 32 px at output stride 8: a 4 x 4 region graph


def load_config(name, arg=None):
  return config_file(name, arg)


def toy_config(arg):
  """configs/rgnet_shapes.py with `arg` at its ',tiny' widths, which compile in seconds."""
  return load_config("rgnet_shapes", f"{arg},tiny")


def synthetic_batch(seed=0):
  rng = np.random.default_rng(seed)
  return {
    "image": rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32),
    "label": np.array([0, 1, 1, 0], np.int32),
    "score": rng.uniform(size=BATCH).astype(np.float32),
    "distribution": rng.dirichlet(np.ones(10), size=BATCH).astype(np.float32),
    "mask": np.array([1, 1, 1, 0], np.float32),
  }


def numpy_variables(module, images, seed=0):
  """Variables of the module's structure filled by NumPy (a jitted Flax init would add a compile per variant)."""
  shapes = jax.eval_shape(module.init, {"params": jax.random.key(0), "dropout": jax.random.key(1)}, images)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "var" in name or "scale" in name:
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 10
    return (rng.normal(size=leaf.shape) * np.sqrt(2 / fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def one_step(arg):
  """Loss, gradients and the Adam-updated parameters of one train step of configs/rgnet_shapes.py:`arg`."""
  config = toy_config(arg)
  data_info = pipeline.dataset_info(config.data)
  module, task = models.build_model(config.model, data_info), tasks.build_task(config, data_info)
  batch = synthetic_batch()
  variables = numpy_variables(module, jnp.asarray(batch["image"]))
  params, model_state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  tx = optax.adam(1e-3)

  @jax.jit
  def step(params, opt_state):
    def loss_fn(params):
      outputs, _ = module.apply(
        {"params": params, **model_state},
        **task.model_inputs(batch),
        train=True,
        rngs={"dropout": jax.random.key(2)},
        mutable=list(model_state),
      )
      return task.loss(outputs, batch)[0]

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, _ = tx.update(grads, opt_state, params)
    return loss, grads, optax.apply_updates(params, updates)

  loss, grads, new_params = step(params, tx.init(params))
  return config, float(loss), grads, new_params, params


def assert_trains(loss, grads, new_params, params):
  assert np.isfinite(loss) and loss > 0
  flat = {jax.tree_util.keystr(path): np.asarray(g) for path, g in jax.tree_util.tree_leaves_with_path(grads)}
  assert all(np.all(np.isfinite(g)) for g in flat.values())
  head_grads = {path: g for path, g in flat.items() if "'head'" in path}
  assert head_grads, "the model has no head parameters"
  # Every head parameter gets a gradient (nothing is cut off from the loss) ...
  assert not [path for path, g in head_grads.items() if not np.any(g)]
  # ... and the step moves the parameters.
  moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), new_params, params)
  assert all(jax.tree.leaves(moved["head"]))


# Every Table 1 variant; the kinds are spread over them so each loss trains through the full head once.
@pytest.mark.parametrize(
  "arg", ["fc_cnn", "fcn", "fcn_a,kind=regression", "fcn_g,kind=distribution,layers=1,r=2", "fcn_c_c", "fcn_a_g"]
)
def test_one_train_step_of_each_table_1_variant(arg):
  config, *result = one_step(arg)
  assert config.model.variant == arg.split(",")[0]
  assert_trains(*result)


@pytest.mark.parametrize("arg", ["fcn_a_g,backbone=vgg16", "fcn,backbone=resnet101"])
def test_one_train_step_of_each_table_2_backbone(arg):
  config, *result = one_step(arg)
  assert config.model.backbone == arg.split("=")[1]
  assert_trains(*result)
