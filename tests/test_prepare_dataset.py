"""Tests of jaxgraphs/tools/prepare_dataset.py and the builder registry, on the fake AVA tree."""

from __future__ import annotations

import pytest
import tensorflow_datasets as tfds

from jaxgraphs.data.builders import registry
from jaxgraphs.tools import prepare_dataset
from test_ava_builder import READABLE_TEST, READABLE_TRAIN, make_ava_tree


def test_prepare_fake_ava_with_a_config_override(tmp_path, capsys):
  manual_dir, data_dir = tmp_path / "manual", tmp_path / "data"
  manual_dir.mkdir()
  make_ava_tree(manual_dir)
  builder = prepare_dataset.make_builder("ava", str(data_dir), ["validation_size=2"], config_name="tiny")
  assert builder.builder_config.validation_size == 2 and builder.builder_config.holdout_seed == 0
  summary = prepare_dataset.prepare(builder, manual_dir=str(manual_dir))
  assert summary.startswith("ava/tiny/1.0.0: train 3, validation 2, test 3 examples in ")
  assert "skipped 5 images" in summary
  printed = capsys.readouterr().out.splitlines()
  assert printed[0].startswith("Preparing ava/tiny/1.0.0 in ") and printed[-1] == summary
  # Prepared once, the custom config loads by name from its files.
  loaded = tfds.builder("ava/tiny", data_dir=str(data_dir))
  assert loaded.info.splits["train"].num_examples + loaded.info.splits["validation"].num_examples == len(READABLE_TRAIN)
  assert loaded.info.splits["test"].num_examples == len(READABLE_TEST)


def test_config_override_types_and_errors():
  from jaxgraphs.data.builders import aadb

  default = aadb.Aadb.builder_configs["default"]
  config = prepare_dataset.config_with_overrides(
    default, ["images_dirs=datasetImages_warp256", "high_score_threshold=0.6"], "warp256"
  )
  assert config.name == "warp256" and config.images_dirs == ("datasetImages_warp256",)
  assert config.high_score_threshold == 0.6 and config.test_images_dirs == default.test_images_dirs
  assert default.images_dirs == ("datasetImages_originalSize",)  # the class's config is untouched
  with pytest.raises(ValueError, match="AadbConfig has no such field"):
    prepare_dataset.config_with_overrides(default, ["image_dir=x"], "bad")
  with pytest.raises(ValueError, match="high_score_threshold=high: expected a float"):
    prepare_dataset.config_with_overrides(default, ["high_score_threshold=high"], "bad")
  with pytest.raises(ValueError, match="expected key=value"):
    prepare_dataset.config_with_overrides(default, ["validation_size"], "bad")


def test_registry_names(tmp_path):
  assert registry.base_name("ava/default:1.0.0") == "ava" and registry.base_name("coco/2014") == "coco"
  assert registry.builder("aadb", data_dir=str(tmp_path)).name == "aadb"
  registry.import_builder_module("coco/2014")  # not ours: nothing to import, no error
