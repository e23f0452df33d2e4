"""Flax modules: backbones, the graph heads of the three papers, and the models built from them.

Every model is built the same way: `build_model(config.model, data_info)`, where `data_info` is what the data
layer knows about the dataset (the data pipeline's DatasetInfo: class and predicate names, and the arrays a
model asked for through `data_requests`, such as SSGRL's word vectors and label co-occurrence graph). Nothing in
this package reads files or datasets, or imports from training/, data/, tasks/ or tools/.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from jaxgraphs.errors import ConfigError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def compute_dtype(name: str):
  """Maps `config.model.dtype` to a jnp dtype with an error naming the key."""
  if name not in DTYPES:
    raise ConfigError(f"config.model.dtype={name!r} is not one of {sorted(DTYPES)}")
  return DTYPES[name]


def _multilabel_classifier(cfg, data_info, dtype) -> nn.Module:
  from jaxgraphs.models.multilabel_classifier import MultiLabelClassifier

  return MultiLabelClassifier(
    num_classes=data_info.num_classes,
    backbone=cfg.backbone,
    backbone_kwargs=dict(cfg.backbone_kwargs),
    feature_key=cfg.feature_key,
    dtype=dtype,
  )


def _rgnet(cfg, data_info, dtype) -> nn.Module:
  from jaxgraphs.models.rgnet import build_rgnet

  return build_rgnet(cfg, data_info, dtype)


def _ssgrl(cfg, data_info, dtype) -> nn.Module:
  from jaxgraphs.models.ssgrl import build_ssgrl

  return build_ssgrl(cfg, data_info, dtype)


def _ssgrl_requests(cfg) -> dict[str, dict[str, Any]]:
  from jaxgraphs.models.ssgrl import data_requests

  return data_requests(cfg)


def _linknet(cfg, data_info, dtype) -> nn.Module:
  from jaxgraphs.models.linknet import build_linknet

  return build_linknet(cfg, data_info, dtype)


def _linknet_from_detector(cfg, params) -> list:
  from jaxgraphs.models.linknet import weights_from_detector

  return weights_from_detector(cfg.mode, params)


def _faster_rcnn(cfg, data_info, dtype) -> nn.Module:
  from jaxgraphs.models.detection.faster_rcnn import build_faster_rcnn

  return build_faster_rcnn(cfg, data_info, dtype)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  """A model's factory (model_config, data_info, dtype) -> module, and what it asks of the data."""

  factory: Callable[..., nn.Module]
  requests: Callable[[Any], dict[str, dict[str, Any]]] = lambda cfg: {}
  # (model_config, a Faster R-CNN run's params) -> [(subtree, {"params": tree})]: models that start from one.
  from_detector: Callable[[Any, dict], list] | None = None


MODELS = {
  "multilabel_classifier": ModelEntry(_multilabel_classifier),
  "rgnet": ModelEntry(_rgnet),
  "ssgrl": ModelEntry(_ssgrl, _ssgrl_requests),
  "linknet": ModelEntry(_linknet, from_detector=lambda cfg, params: _linknet_from_detector(cfg, params)),
  "faster_rcnn": ModelEntry(_faster_rcnn),
}


def _entry(model_config) -> ModelEntry:
  name = model_config.name
  if name not in MODELS:
    raise ConfigError(f"config.model.name={name!r} is not a known model; choose one of {sorted(MODELS)}")
  return MODELS[name]


def data_requests(model_config) -> dict[str, dict[str, Any]]:
  """What the model needs computed from its data before it can be built (filled by the data layer's label_priors)."""
  return _entry(model_config).requests(model_config)


def build_model(model_config, data_info) -> nn.Module:
  """Returns the Flax module named by `config.model.name`, sized for the dataset described by `data_info`."""
  return _entry(model_config).factory(model_config, data_info, compute_dtype(model_config.dtype))


def detector_weights(model_config, detector_params: dict) -> list:
  """Where a Faster R-CNN run's params go in the model of `config.model` ([(subtree, {"params": tree})])."""
  entry = _entry(model_config)
  if entry.from_detector is None:
    raise ConfigError(
      f"config.model.detector_run is set, but config.model.name={model_config.name!r} takes no detector"
    )
  return entry.from_detector(model_config, detector_params)
