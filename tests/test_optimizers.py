"""Optimiser construction from config: schedules, freezing, weight-decay masks, clipping, plateau."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgraphs.training import optimizers
from jaxgraphs.errors import ConfigError


def _params():
  return {
    "backbone": {"conv1": {"kernel": jnp.ones((3, 3)), "bias": jnp.ones((3,))}, "layer4": {"kernel": jnp.ones((3, 3))}},
    "classifier": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))},
  }


def _cfg(**overrides):
  cfg = optimizers.default_optimizer_config()
  for key, value in overrides.items():
    target = cfg
    *parents, leaf = key.split(".")
    for p in parents:
      target = target[p]
    target[leaf] = value
  return cfg


@pytest.mark.parametrize(
  "name,expected",
  [
    ("constant", lambda t: 0.1),
    ("poly", lambda t: 0.1 * (1 - t / 100) ** 0.9),
    ("cosine", lambda t: 0.1 * 0.5 * (1 + np.cos(np.pi * t / 100))),
    ("step", lambda t: 0.1 * (0.1 if t >= 30 else 1.0) * (0.1 if t >= 60 else 1.0)),
  ],
)
def test_schedules_match_their_formulas(name, expected):
  cfg = _cfg(learning_rate=0.1, **{"schedule.name": name, "schedule.boundaries": (30, 60)})
  schedule = optimizers.build_schedule(cfg, total_steps=100)
  for t in (0, 10, 29, 30, 59, 60, 99):
    np.testing.assert_allclose(schedule(t), expected(t), rtol=1e-5, atol=1e-8)


def test_warmup_is_linear_then_hands_over():
  cfg = _cfg(learning_rate=0.1, **{"schedule.name": "cosine", "schedule.warmup_steps": 10})
  schedule = optimizers.build_schedule(cfg, total_steps=110)
  np.testing.assert_allclose([schedule(0), schedule(5), schedule(10)], [0.0, 0.05, 0.1], rtol=1e-5)
  np.testing.assert_allclose(schedule(60), 0.1 * 0.5 * (1 + np.cos(np.pi * 50 / 100)), rtol=1e-5)


def test_freeze_by_regex_leaves_frozen_params_unchanged():
  params = _params()
  tx, _ = optimizers.build_optimizer(
    _cfg(name="sgd", learning_rate=1.0, momentum=0.0, freeze=(r"^backbone/conv1/",)), 10, params
  )
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params, value=jnp.zeros(()))
  assert float(jnp.abs(updates["backbone"]["conv1"]["kernel"]).max()) == 0.0
  assert float(jnp.abs(updates["backbone"]["conv1"]["bias"]).max()) == 0.0
  np.testing.assert_allclose(updates["backbone"]["layer4"]["kernel"], -1.0)


def test_freeze_pattern_matching_nothing_names_the_key():
  with pytest.raises(ConfigError, match="config.optimizer.freeze"):
    optimizers.build_optimizer(_cfg(freeze=("^nope/",)), 10, _params())


def test_sgd_weight_decay_is_torch_style_and_skips_biases():
  params = _params()
  tx, _ = optimizers.build_optimizer(_cfg(name="sgd", learning_rate=0.5, momentum=0.0, weight_decay=0.1), 10, params)
  grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(grads, tx.init(params), params, value=jnp.zeros(()))
  # torch: w <- w - lr * (g + wd * w) for kernels; biases are excluded by the default mask.
  np.testing.assert_allclose(updates["classifier"]["kernel"], -0.5 * 0.1 * 1.0, rtol=1e-6)
  np.testing.assert_allclose(updates["classifier"]["bias"], 0.0)


def test_adam_first_step_and_clipping():
  params = _params()
  tx, lr = optimizers.build_optimizer(_cfg(name="adam", learning_rate=0.01, grad_clip_norm=1.0), 10, params)
  grads = jax.tree.map(lambda p: 100.0 * jnp.ones_like(p), params)
  updates, state = tx.update(grads, tx.init(params), params, value=jnp.zeros(()))
  # Adam's first step is -lr * sign(g) whatever the clipped magnitude.
  np.testing.assert_allclose(updates["backbone"]["layer4"]["kernel"], -0.01, rtol=1e-3)
  np.testing.assert_allclose(lr(0, state), 0.01, rtol=1e-6)


def test_reduce_on_plateau_lowers_the_reported_rate():
  params = {"w": jnp.ones(())}
  cfg = _cfg(
    name="sgd",
    learning_rate=1.0,
    momentum=0.0,
    **{"plateau.enabled": True, "plateau.patience": 1, "plateau.accumulation_size": 1, "plateau.factor": 0.5},
  )
  tx, lr = optimizers.build_optimizer(cfg, 10, params)
  state = tx.init(params)
  for _ in range(4):  # a constant loss never improves
    _, state = tx.update({"w": jnp.ones(())}, state, params, value=jnp.ones(()))
  assert float(lr(0, state)) < 1.0


def test_unknown_optimizer_and_schedule_name_the_key():
  with pytest.raises(ConfigError, match="config.optimizer.name"):
    optimizers.build_optimizer(_cfg(name="lamb"), 10, _params())
  with pytest.raises(ConfigError, match="config.optimizer.schedule.name"):
    optimizers.build_schedule(_cfg(**{"schedule.name": "exp"}), 10)
