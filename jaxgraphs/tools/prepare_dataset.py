"""Prepares a TFDS dataset by name: ours (ava, aadb, builtin_shapes, vg150) or TFDS's own (coco/2014, voc/2007).

  python -m jaxgraphs.tools.prepare_dataset --dataset=ava --manual_dir=/data/AVA_dataset [--data_dir=DIR]
  python -m jaxgraphs.tools.prepare_dataset --dataset=aadb --manual_dir=/data/AADB
  python -m jaxgraphs.tools.prepare_dataset --dataset=builtin_shapes/small
  python -m jaxgraphs.tools.prepare_dataset --dataset=coco/2014

`--config_override=key=value` (repeatable) prepares a variant of the default config under `--config_name`,
e.g. `--dataset=aadb --config_name=warp256 --config_override=images_dirs=datasetImages_warp256
--config_override=test_images_dirs=datasetImages_warp256`; load it later as `tfds.builder("aadb/warp256",
data_dir=...)`. Without `--data_dir`, TFDS uses $TFDS_DATA_DIR or ~/tensorflow_datasets; without
`--manual_dir`, <data_dir>/downloads/manual.
"""

from __future__ import annotations

import dataclasses
import os
import time

import tensorflow_datasets as tfds
from absl import flags
from etils import epath

from jaxgraphs.data.builders import registry
from jaxgraphs.data.builders.image_checks import REPORT_FILENAME, read_skip_report
from jaxgraphs.errors import ConfigError

FLAGS = flags.FLAGS


def _define_flags():
  """Command-line flags, defined only when run as a program so importing this module defines none."""
  flags.DEFINE_string("dataset", None, "TFDS name, optionally with config and version: ava, coco/2014, ...")
  flags.DEFINE_string(
    "data_dir", None, "Where prepared datasets live (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)."
  )
  flags.DEFINE_string(
    "manual_dir", None, "Folder with the manually downloaded files (default: <data_dir>/downloads/manual)."
  )
  flags.DEFINE_string("download_dir", None, "Where downloads go (default: <data_dir>/downloads).")
  flags.DEFINE_multi_string("config_override", [], "key=value of the builder config; a tuple takes a,b,c.")
  flags.DEFINE_string("config_name", "custom", "Name of the config made from --config_override.")
  flags.DEFINE_bool("overwrite", False, "Regenerate even if the dataset is already prepared.")


def _parse_value(text: str, current, key: str):
  """`text` as the type of the config field's current value."""
  if isinstance(current, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ValueError(f"--config_override {key}={text}: expected true or false")
    return text.lower() in ("true", "1")
  if isinstance(current, tuple):
    item_type = type(current[0]) if current else str
    return tuple(item_type(item) for item in text.split(",") if item)
  try:
    return type(current)(text) if current is not None else text
  except ValueError:
    raise ValueError(f"--config_override {key}={text}: expected a {type(current).__name__}") from None


def config_with_overrides(config: tfds.core.BuilderConfig, overrides: list[str], name: str) -> tfds.core.BuilderConfig:
  """A copy of `config` named `name` with the `key=value` overrides applied (typed like the fields)."""
  fields = {field.name for field in dataclasses.fields(config)} - {
    "name",
    "version",
    "release_notes",
    "supported_versions",
    "tags",
  }
  changes = {}
  for override in overrides:
    key, sep, text = override.partition("=")
    if not sep:
      raise ValueError(f"--config_override {override!r}: expected key=value")
    if key not in fields:
      raise ValueError(f"--config_override {key}: {type(config).__name__} has no such field; fields: {sorted(fields)}")
    changes[key] = _parse_value(text, getattr(config, key), key)
  description = f"{config.name} with " + ", ".join(f"{k}={v}" for k, v in changes.items())
  return dataclasses.replace(config, name=name, description=description, **changes)


def make_builder(
  dataset: str, data_dir: str | None = None, overrides: list[str] = (), config_name: str = "custom"
) -> tfds.core.DatasetBuilder:
  """The builder of `dataset` (ours registered first), with a config made from `overrides` if any."""
  if not overrides:
    return registry.builder(dataset, data_dir=data_dir)
  default = registry.builder(dataset.split(":")[0], data_dir=data_dir)
  if default.builder_config is None:
    raise ValueError(f"--config_override: {dataset} has no builder config to override")
  config = config_with_overrides(default.builder_config, list(overrides), config_name)
  return type(default)(config=config, data_dir=data_dir)


def prepare(
  builder: tfds.core.DatasetBuilder,
  manual_dir: str | None = None,
  download_dir: str | None = None,
  overwrite: bool = False,
) -> str:
  """Downloads and prepares `builder`'s dataset; returns the one-line summary it also prints."""
  print(
    f"Preparing {builder.info.full_name} in {builder.data_dir}" + (f" from {manual_dir}" if manual_dir else ""),
    flush=True,
  )
  # Regenerating keeps the downloads (REUSE_CACHE_IF_EXISTS); the default reuses a prepared dataset.
  mode = tfds.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite else tfds.GenerateMode.REUSE_DATASET_IF_EXISTS
  start = time.time()
  builder.download_and_prepare(
    download_dir=download_dir, download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, download_mode=mode)
  )
  sizes = ", ".join(f"{split} {info.num_examples:,}" for split, info in builder.info.splits.items())
  summary = f"{builder.info.full_name}: {sizes} examples in {builder.data_dir} ({time.time() - start:.0f} s)"
  if (epath.Path(builder.data_dir) / REPORT_FILENAME).exists():
    report = read_skip_report(builder)
    summary += f"; skipped {report['num_skipped']} images {report['skipped_by_reason']} (see {REPORT_FILENAME})"
  print(summary, flush=True)
  return summary


def main(argv):
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.dataset:
    raise ConfigError("--dataset is required, e.g. --dataset=ava")
  manual_dir = FLAGS.manual_dir and os.path.expanduser(FLAGS.manual_dir)
  if manual_dir and not (os.path.isdir(manual_dir) and os.listdir(manual_dir)):
    raise ConfigError(
      f"--manual_dir={FLAGS.manual_dir} does not exist or is empty; it must hold the extracted download "
      f"(the README, Datasets, lists the files each dataset needs)"
    )
  try:
    builder = make_builder(FLAGS.dataset, FLAGS.data_dir, FLAGS.config_override, FLAGS.config_name)
  except tfds.core.registered.DatasetNotFoundError:
    ours = ", ".join(sorted(registry.BUILDER_MODULES))
    raise ConfigError(
      f"--dataset={FLAGS.dataset}: no such TFDS dataset (ours: {ours}; or TFDS's, e.g. coco/2014)"
    ) from None
  except ValueError as error:  # a bad --config_override
    raise ConfigError(str(error)) from None
  try:
    prepare(builder, manual_dir, FLAGS.download_dir, FLAGS.overwrite)
  except (AssertionError, FileNotFoundError) as error:
    # TFDS's manual-download messages run to dozens of lines: the first says what is missing.
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ConfigError(f"--dataset={FLAGS.dataset}: {first}") from None


if __name__ == "__main__":
  _define_flags()
  from jaxgraphs import cli

  cli.run(main)
