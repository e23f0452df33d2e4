"""Optimisers, learning-rate schedules, freezing and weight-decay masks, all from `config.optimizer`."""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgraphs.training.defaults import default_optimizer_config  # noqa: F401  (part of this module's API)
from jaxgraphs.training.tree_paths import path_strings
from jaxgraphs.errors import ConfigError


def build_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Returns the learning rate as a function of the step, warmup included."""
  peak, sched = cfg.learning_rate, cfg.schedule
  decay_steps = max(total_steps - sched.warmup_steps, 1)
  if sched.name == "constant":
    main = optax.constant_schedule(peak)
  elif sched.name == "step":
    boundaries = {int(b) - sched.warmup_steps: sched.decay_factor for b in sched.boundaries}
    main = optax.piecewise_constant_schedule(peak, boundaries)
  elif sched.name == "poly":
    main = optax.polynomial_schedule(peak, peak * sched.end_factor, sched.power, decay_steps)
  elif sched.name == "cosine":
    main = optax.cosine_decay_schedule(peak, decay_steps, alpha=sched.end_factor)
  else:
    raise ConfigError(f"config.optimizer.schedule.name={sched.name!r} is not one of constant, step, poly, cosine")
  if sched.warmup_steps <= 0:
    return main
  warmup = optax.linear_schedule(0.0, peak, sched.warmup_steps)
  return optax.join_schedules([warmup, main], [sched.warmup_steps])


def regex_mask(params: Any, patterns: Sequence[str]) -> Any:
  """A pytree of bools: True where the parameter's path matches any of the regexes."""
  compiled = [re.compile(p) for p in patterns]
  paths = path_strings(params)
  return jax.tree.map(lambda p: any(c.search(p) for c in compiled), paths)


def trained_params(params: Any, cfg: ml_collections.ConfigDict) -> list[Any]:
  """The parameter leaves `config.optimizer.freeze` leaves to the optimiser."""
  if not cfg.get("freeze"):
    return jax.tree.leaves(params)
  frozen = regex_mask(params, cfg.freeze)
  return [p for p, f in zip(jax.tree.leaves(params), jax.tree.leaves(frozen)) if not f]


def _base_optimizer(cfg, schedule, params) -> optax.GradientTransformation:
  decay_mask = jax.tree.map(lambda excluded: not excluded, regex_mask(params, cfg.weight_decay_exclude))
  if cfg.name == "adamw":
    return optax.adamw(schedule, cfg.b1, cfg.b2, cfg.eps, weight_decay=cfg.weight_decay, mask=decay_mask)
  if cfg.name == "adam":
    core = optax.adam(schedule, cfg.b1, cfg.b2, cfg.eps)
  elif cfg.name == "sgd":
    core = optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
  else:
    raise ConfigError(f"config.optimizer.name={cfg.name!r} is not one of adam, adamw, sgd")
  if not cfg.weight_decay:
    return core
  # torch's Adam/SGD `weight_decay` adds decay * w to the gradient before the update rule.
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask), core)


def build_optimizer(
  cfg: ml_collections.ConfigDict, total_steps: int, params: Any
) -> tuple[optax.GradientTransformationExtraArgs, Callable[[Any], jax.Array]]:
  """Returns the optimiser and a function of (step, opt_state) giving the learning rate in force."""
  schedule = build_schedule(cfg, total_steps)
  parts = []
  if cfg.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  parts.append(_base_optimizer(cfg, schedule, params))
  if cfg.plateau.enabled:
    p = cfg.plateau
    parts.append(
      optax.contrib.reduce_on_plateau(
        factor=p.factor, patience=p.patience, cooldown=p.cooldown, rtol=p.rtol, accumulation_size=p.accumulation_size
      )
    )
  tx = optax.chain(*parts)
  if cfg.freeze:
    frozen = regex_mask(params, cfg.freeze)
    if not any(jax.tree.leaves(frozen)):
      raise ConfigError(f"config.optimizer.freeze={tuple(cfg.freeze)} matches no parameter path")
    labels = jax.tree.map(lambda f: "frozen" if f else "trained", frozen)
    tx = optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
  tx = optax.with_extra_args_support(tx)

  def learning_rate(step, opt_state):
    rate = schedule(step)
    if cfg.plateau.enabled:
      rate = rate * _plateau_scale(opt_state)
    return jnp.asarray(rate, jnp.float32)

  return tx, learning_rate


def _plateau_scale(opt_state) -> jax.Array:
  """Finds the reduce-on-plateau scale inside a (possibly nested) optimiser state."""
  for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.contrib.ReduceLROnPlateauState)):
    if isinstance(leaf, optax.contrib.ReduceLROnPlateauState):
      return leaf.scale
  return jnp.ones((), jnp.float32)
