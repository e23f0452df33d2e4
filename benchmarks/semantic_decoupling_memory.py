"""Compiled memory of SSGRL's semantic decoupling (forward + backward): folded P.f_a vs the official order.

  JAX_PLATFORMS=cpu python -m benchmarks.semantic_decoupling_memory [--batch=4] [--classes=80]

Baseline: the same module computed in the official code's order, P applied to the (B, C, HW, d1) tanh tensor
(materialising a second (B, C, HW, d2) tensor) and f_a after it. Only compiles (XLA memory analysis); runs nothing.
"""

import argparse

import jax
import jax.numpy as jnp

from jaxgraphs.models.heads.semantic_decoupling import SemanticDecoupling


def official_order(params, feature_map, word_vectors):
  """Eqs. 3-6 in the official code's order: P then f_a on every (class, location) pair."""
  batch, height, width, channels = feature_map.shape
  features = feature_map.reshape(batch, height * width, channels)
  joint = jnp.tanh(
    (features @ params["image_proj"]["kernel"])[:, None] * (word_vectors @ params["word_proj"]["kernel"])[None, :, None]
  )
  hidden = joint @ params["joint_proj"]["kernel"] + params["joint_proj"]["bias"]
  logits = (hidden @ params["attention"]["kernel"] + params["attention"]["bias"])[..., 0]
  weights = jax.nn.softmax(logits, axis=-1)
  return jnp.einsum("bcp,bpn->bcn", weights, features)


def compiled_bytes(loss, params, *inputs):
  """Temp + output bytes of the compiled value-and-grad of `loss`."""
  compiled = jax.jit(jax.value_and_grad(loss)).lower(params, *inputs).compile()
  analysis = compiled.memory_analysis()
  return analysis.temp_size_in_bytes + analysis.output_size_in_bytes


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--classes", type=int, default=80)
  args = parser.parse_args()
  feature_map = jax.ShapeDtypeStruct((args.batch, 9, 9, 2048), jnp.float32)
  word_vectors = jax.ShapeDtypeStruct((args.classes, 300), jnp.float32)
  module = SemanticDecoupling()
  params = jax.eval_shape(lambda f, w: module.init(jax.random.PRNGKey(0), f, w), feature_map, word_vectors)["params"]
  ours = compiled_bytes(
    lambda p, f, w: jnp.sum(module.apply({"params": p}, f, w)[0]), params, feature_map, word_vectors
  )
  baseline = compiled_bytes(lambda p, f, w: jnp.sum(official_order(p, f, w)), params, feature_map, word_vectors)
  print(f"{jax.devices()[0].platform}, B={args.batch}, C={args.classes}, 9x9x2048 features, d1=d2=1024, float32")
  print(f"{'variant':<32}{'temp+output MiB':>16}")
  print(f"{'official order (baseline)':<32}{baseline / 2**20:>16.1f}")
  print(f"{'folded P.f_a (this module)':<32}{ours / 2**20:>16.1f}")


if __name__ == "__main__":
  main()
