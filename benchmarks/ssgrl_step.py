"""SSGRL train step at the paper's size (576x576, ResNet-101, COCO's 80 classes): images/s, compiled memory and the
backbone/head time split, against two baselines measured in the same run.

  JAX_PLATFORMS=cpu python -m benchmarks.ssgrl_step [--batch=1] [--size=576] [--classes=80] [--reps=3]

Rows (each a jitted Adam step through `jaxgraphs.training.optimizers` with the SSGRL configs' freeze regexes):
  ssgrl               the model as configured: stages before layer4 cut from the gradient (models/ssgrl.py)
  ssgrl, mask only    the same network frozen only by the optimiser mask, as `config.optimizer.freeze` alone
                      would do: XLA still computes the backward pass through layers 1-3 (baseline 1)
  resnet-101 linear   the Table 5 baseline (average pool + linear), frozen the same way by the mask (baseline 2)
Memory is XLA's compiled estimate (temp + arguments + outputs of the step; arguments include the state).
Time split: the backbone forward (+ backward into layer4) vs the head's forward + backward on fixed features.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgraphs.models import ssgrl
from jaxgraphs.models.backbones.resnet import ResNet
from jaxgraphs.models.multilabel_classifier import MultiLabelClassifier
from jaxgraphs.models.heads.ssgrl_head import SSGRLHead
from jaxgraphs.training.optimizers import build_optimizer, default_optimizer_config

FROZEN = ("stem", "layer1", "layer2", "layer3")


class MaskOnlySSGRL(ssgrl.SSGRL):
  """SSGRL with the frozen stages' batch norm in inference mode but their gradient computed (and then dropped)."""

  def _backbone(self):
    return ResNet(depth=self.depth, frozen_bn=FROZEN, dtype=self.dtype, name="backbone")


def make_step(module, params_shape, batch_stats_names):
  """Jitted (params, state, opt_state, images, labels) -> updated, with Adam 1e-5 and the frozen stages masked."""
  cfg = default_optimizer_config()
  cfg.learning_rate = 1e-5
  cfg.freeze = ssgrl.freeze_regexes(FROZEN)
  tx, _ = build_optimizer(cfg, 1000, params_shape)

  def step(params, model_state, opt_state, images, labels):
    def loss_fn(p):
      outputs, new_state = module.apply({"params": p, **model_state}, images, train=True, mutable=batch_stats_names)
      return jnp.mean(optax.sigmoid_binary_cross_entropy(outputs["logits"], labels)), new_state

    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params, value=loss)
    return optax.apply_updates(params, updates), new_state, opt_state, loss

  return tx, jax.jit(step, donate_argnums=(0, 1, 2))


def measure(name, module, images, labels, reps):
  """(name, images/s, compiled MiB, seconds per step) of one module's train step."""
  variables = jax.jit(module.init)(jax.random.key(0), images)
  params, model_state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  tx, step = make_step(module, params, list(model_state))
  opt_state = tx.init(params)
  compiled = step.lower(params, model_state, opt_state, images, labels).compile()
  analysis = compiled.memory_analysis()
  mib = (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes + analysis.output_size_in_bytes) / 2**20
  params, model_state, opt_state, loss = compiled(params, model_state, opt_state, images, labels)  # warm-up
  jax.block_until_ready(loss)
  start = time.perf_counter()
  for _ in range(reps):
    params, model_state, opt_state, loss = compiled(params, model_state, opt_state, images, labels)
  jax.block_until_ready(loss)
  seconds = (time.perf_counter() - start) / reps
  return name, images.shape[0] / seconds, mib, seconds


def head_seconds(args, feature_side, reps):
  """Forward + backward of the SSGRL head alone on a fixed (B, side, side, 2048) feature map."""
  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.normal(size=(args.batch, feature_side, feature_side, 2048)), jnp.float32)
  words = jnp.asarray(rng.normal(0, 0.4, (args.classes, 300)), jnp.float32)
  adjacency = jnp.asarray(rng.uniform(size=(args.classes, args.classes)), jnp.float32)
  head = SSGRLHead()
  params = jax.jit(head.init)(jax.random.key(0), features, words, adjacency)["params"]
  grad = jax.jit(jax.grad(lambda p: jnp.sum(head.apply({"params": p}, features, words, adjacency)["logits"])))
  jax.block_until_ready(grad(params))
  start = time.perf_counter()
  for _ in range(reps):
    out = grad(params)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / reps


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--size", type=int, default=576)
  parser.add_argument("--classes", type=int, default=80)
  parser.add_argument("--reps", type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(args.batch, args.size, args.size, 3)), jnp.float32)
  labels = jnp.asarray(rng.random((args.batch, args.classes)) < 0.05, jnp.float32)
  words = ssgrl.Constant(rng.normal(0, 0.4, (args.classes, 300)).astype(np.float32))
  adjacency = ssgrl.Constant(rng.uniform(size=(args.classes, args.classes)).astype(np.float32))
  frozen_bn = {"frozen_bn": FROZEN}
  rows = [
    measure("ssgrl", ssgrl.SSGRL(words, adjacency, frozen_stages=FROZEN), images, labels, args.reps),
    measure("ssgrl, mask only (baseline 1)", MaskOnlySSGRL(words, adjacency), images, labels, args.reps),
    measure(
      "resnet-101 linear (baseline 2)",
      MultiLabelClassifier(args.classes, "resnet101", backbone_kwargs=frozen_bn),
      images,
      labels,
      args.reps,
    ),
  ]
  feature_side = -(-args.size // 32) // 2
  head = head_seconds(args, feature_side, args.reps)
  print(
    f"{jax.devices()[0].platform} ({jax.device_count()} device), batch {args.batch}, {args.size}x{args.size}, "
    f"{args.classes} classes, float32, Adam; {args.reps} timed steps after one warm-up"
  )
  print(f"{'step':<34}{'images/s':>10}{'s/step':>9}{'compiled MiB':>14}")
  for name, rate, mib, seconds in rows:
    print(f"{name:<34}{rate:>10.3f}{seconds:>9.2f}{mib:>14.0f}")
  total = rows[0][3]
  print(
    f"head ({feature_side}x{feature_side}x2048 -> {args.classes} classes) forward+backward: {head:.3f} s "
    f"= {100 * head / total:.1f}% of the ssgrl step; backbone and optimiser: {100 * (1 - head / total):.1f}%"
  )


if __name__ == "__main__":
  main()
