"""ImageNet normalisation, on the host (the `normalize_imagenet` op) or on the device (uint8 batches).

The pipeline hands a batch over as uint8 when only flips, padding and scene-graph packing follow
`normalize_imagenet` in its pp string (`config.data.normalize_on_device`, the default): the op moves into the
jitted step, where `network_images` applies the same multiply-add. A uint8 batch is a quarter of a float32 one, which is what the
host spends most of its time making and copying (benchmarks/input_pipeline.py), and the multiply-add fuses into
the first convolution on an accelerator. No TensorFlow here: the trainer and its steps import this module.
"""

from __future__ import annotations

import jax.numpy as jnp

# torchvision's ImageNet statistics, for images scaled to [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (x / 255 - mean) / std as one multiply-add per channel.
IMAGENET_SCALE = tuple(1.0 / (255.0 * s) for s in IMAGENET_STD)
IMAGENET_OFFSET = tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
# The mean colour in uint8, (124, 116, 104): what a uint8 image is padded with (it normalises to within 0.01 of 0).
IMAGENET_MEAN_UINT8 = tuple(round(255 * m) for m in IMAGENET_MEAN)


def network_images(images):
  """uint8 images (a batch the pipeline left unnormalised) ImageNet-normalised to float32; others unchanged."""
  if images.dtype != jnp.uint8:
    return images
  scale = jnp.asarray(IMAGENET_SCALE, jnp.float32)
  offset = jnp.asarray(IMAGENET_OFFSET, jnp.float32)
  return images.astype(jnp.float32) * scale + offset


def with_network_images(batch: dict) -> dict:
  """The batch with its 'image' entry (if any) as the network takes it (see network_images)."""
  if "image" not in batch:
    return batch
  return {**batch, "image": network_images(batch["image"])}
