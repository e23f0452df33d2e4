"""Flax modules: backbones, the graph heads of the three papers, and the models built from them."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from jaxgraphs.training.runtime import ConfigError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def compute_dtype(name: str):
  """Maps `config.model.dtype` to a jnp dtype with an error naming the key."""
  if name not in DTYPES:
    raise ConfigError(f"config.model.dtype={name!r} is not one of {sorted(DTYPES)}")
  return DTYPES[name]


def _multilabel_classifier(config: ml_collections.ConfigDict, data_info):
  from jaxgraphs.models.multilabel_classifier import MultiLabelClassifier
  cfg = config.model
  return MultiLabelClassifier(
      num_classes=data_info.num_classes,
      backbone=cfg.backbone,
      backbone_kwargs=dict(cfg.backbone_kwargs),
      feature_key=cfg.feature_key,
      dtype=compute_dtype(cfg.dtype))


def _rgnet(config: ml_collections.ConfigDict, data_info):
  from jaxgraphs.models.rgnet import rgnet_from_config
  return rgnet_from_config(config, compute_dtype(config.model.dtype))


def _ssgrl(config: ml_collections.ConfigDict, data_info):
  from jaxgraphs.models.ssgrl import build_ssgrl
  return build_ssgrl(config, data_info)


# name -> factory(config, data_info) returning a Flax module; data_info is pipeline.DatasetInfo.
MODELS = {"multilabel_classifier": _multilabel_classifier, "rgnet": _rgnet, "ssgrl": _ssgrl}


def _linknet(config: ml_collections.ConfigDict, data_info):
  from jaxgraphs.models.linknet import linknet_from_config
  return linknet_from_config(config, data_info, compute_dtype(config.model.dtype))


MODELS["linknet"] = _linknet


def build_model(config: ml_collections.ConfigDict, data_info):
  """Returns the Flax module named by `config.model.name`, sized for the dataset in `data_info`."""
  name = config.model.name
  if name not in MODELS:
    raise ConfigError(f"config.model.name={name!r} is not a known model; choose one of {sorted(MODELS)}")
  return MODELS[name](config, data_info)
