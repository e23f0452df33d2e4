"""The multi-label baseline of the SSGRL tables: a backbone, global average pooling and one linear layer."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgraphs.models.backbones import BACKBONES, build_backbone


class MultiLabelClassifier(nn.Module):
  """Backbone feature map -> global average pool -> linear logits, one per class."""

  num_classes: int
  backbone: str = "resnet101"
  backbone_kwargs: dict[str, Any] | None = None
  feature_key: str = "layer4"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, train: bool = False):
    if self.backbone not in BACKBONES:
      build_backbone(self.backbone)  # raises, listing the valid names
    backbone = BACKBONES[self.backbone](name="backbone", dtype=self.dtype, **(self.backbone_kwargs or {}))
    features = backbone(images.astype(self.dtype), train=train)
    feature_map = features[self.feature_key]
    pooled = jnp.mean(feature_map.astype(jnp.float32), axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(pooled)
    return {"logits": logits.astype(jnp.float32), "pre_logits": pooled}
