"""The jaxgraphs module that registers each of our TFDS datasets, so that a dataset name alone finds its builder.

TFDS knows a builder once its module is imported. `builder("ava", data_dir=...)` imports
`jaxgraphs.data.builders.ava` first; names that are not ours (`coco/2014`, `voc/2007`) go to TFDS unchanged.
"""

from __future__ import annotations

import importlib

import tensorflow_datasets as tfds

BUILDER_MODULES = {
  "aadb": "jaxgraphs.data.builders.aadb",
  "ava": "jaxgraphs.data.builders.ava",
  "builtin_shapes": "jaxgraphs.data.builders.shapes",
  "diagnostic_labels": "jaxgraphs.data.builders.diagnostics",
  "diagnostic_objects": "jaxgraphs.data.builders.diagnostics",
  "diagnostic_regions": "jaxgraphs.data.builders.diagnostics",
  "vg150": "jaxgraphs.data.builders.vg150",
  "vg500": "jaxgraphs.data.builders.vg500",
}


def base_name(name: str) -> str:
  """The dataset part of a TFDS name: 'ava/default:1.0.0' -> 'ava'."""
  return name.split(":")[0].split("/")[0]


def import_builder_module(name: str) -> None:
  """Imports the module registering dataset `name` if it is one of ours; TFDS's own need nothing."""
  module = BUILDER_MODULES.get(base_name(name))
  if module is not None:
    importlib.import_module(module)


def builder(name: str, **kwargs) -> tfds.core.DatasetBuilder:
  """`tfds.builder(name, **kwargs)` after registering our builder of that name."""
  import_builder_module(name)
  return tfds.builder(name, **kwargs)
