"""The config layer: the one argument parser and loader, every config file loading alone, and the import graph
that keeps models/ free of training, data, tasks and tools."""

import ast
import glob
import os

import pytest

from jaxgraphs.configs import common
from jaxgraphs.errors import ConfigError
from training_helpers import REPO

CONFIG_FILES = sorted(
  p for p in glob.glob(os.path.join(REPO, "configs", "*.py")) if not os.path.basename(p).startswith("_")
)
# Configs on built-in data (shapes and the diagnostics) take their preprocessing from the source.
PAPER_CONFIGS = [p for p in CONFIG_FILES if not os.path.basename(p).endswith(("_shapes.py", "_diagnostic.py"))]


def test_parse_arg_reads_words_and_converted_keys():
  words = {"variant": ("fcn", "fcn_a"), "mode": ("predcls",)}
  keys = {"r": float, "layers": common.integer(1), "on": common.switch, "rates": common.dashed_ints}
  parsed = common.parse_arg(" fcn , r=2 ,layers=3,on=0,rates=3-6,predcls", words=words, keys=keys, usage="USAGE")
  assert parsed == {"variant": "fcn", "r": 2.0, "layers": 3, "on": False, "rates": (3, 6), "mode": "predcls"}
  assert common.parse_arg(None, words=words, keys=keys, usage="") == {}


@pytest.mark.parametrize(
  "arg, message",
  [
    ("fcn_b", "unknown variant or mode 'fcn_b'"),
    ("fcn,fcn_a", "'fcn' and 'fcn_a' are both a variant"),
    ("layers=0", r"bad token 'layers=0' \(expected an integer >= 1\)"),
    ("depth=3", r"bad token 'depth=3' \(unknown key 'depth'\)"),
  ],
)
def test_parse_arg_errors_name_the_token_and_show_the_usage(arg, message):
  with pytest.raises(ConfigError, match=message + r"[\s\S]*USAGE"):
    common.parse_arg(
      arg, words={"variant": ("fcn", "fcn_a"), "mode": ("predcls",)}, keys={"layers": common.integer(1)}, usage="USAGE"
    )


def test_pop_words_splits_flags_off_the_argument():
  assert common.pop_words("fcn,tiny,r=2", "tiny") == ("fcn,r=2", {"tiny"})
  assert common.pop_words(None, "tiny") == ("", set())


def test_load_config_splits_the_argument_and_names_a_missing_file(tmp_path):
  config = common.load_config(os.path.join(REPO, "configs", "ssgrl_shapes.py:without_si,tiny"))
  assert (config.model.use_interaction, config.data.source) == (False, "builtin_shapes/tiny")
  with pytest.raises(ConfigError, match="no_such.py: no such config file"):
    common.load_config(str(tmp_path / "no_such.py"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_every_config_file_loads_without_an_argument(path):
  # get_config() with no argument is what `main` calls to name a bad --config.x override.
  config = common.load_config(path)
  assert config.model.name and config.task.name and config.data.source


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=os.path.basename)
def test_a_paper_config_shows_its_optimiser_schedule_and_preprocessing(path):
  with open(path) as f:
    source = f.read()
  for key in (
    "config.optimizer.name =",
    "config.optimizer.learning_rate =",
    "config.data.pp_train =",
    "config.data.pp_eval =",
  ):
    assert key in source, f"{os.path.basename(path)} does not set {key.split(' ')[0]} itself"
  assert "schedule" in source or "plateau" in source


def _imported_modules(path):
  with open(path) as f:
    tree = ast.parse(f.read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module


@pytest.mark.parametrize(
  "layer, forbidden",
  [
    ("models", ("training", "data", "tasks", "tools", "configs", "evaluation")),
    ("data", ("training", "tasks", "tools", "configs")),
    ("tasks", ("training", "tools", "configs")),
    ("evaluation", ("training", "data", "tasks", "tools", "configs", "models")),
  ],
)
def test_lower_layers_never_import_higher_ones(layer, forbidden):
  offending = []
  for path in glob.glob(os.path.join(REPO, "jaxgraphs", layer, "**", "*.py"), recursive=True):
    for module in _imported_modules(path):
      if any(module == f"jaxgraphs.{name}" or module.startswith(f"jaxgraphs.{name}.") for name in forbidden):
        offending.append(f"{os.path.relpath(path, REPO)} imports {module}")
  assert not offending, offending


@pytest.mark.parametrize(
  "name, source", [("coco", "coco/2014"), ("voc2007", "voc/2007"), ("voc2012", "voc/2012"), ("vg500", "vg500")]
)
def test_ssgrl_configs_train_without_a_flip_unless_asked(name, source):
  from jaxgraphs.data import sources, transforms

  path = os.path.join(REPO, "configs", f"ssgrl_{name}.py")
  ops = lambda pp: [op for op, _, _ in transforms.parse(pp)]
  plain = ops(common.load_config(path).data.pp_train)
  # The official transforms: no flip anywhere, in the config or in the source's default.
  assert "flip_lr" not in plain and "flip_lr" not in ops(sources.SOURCES[source].pp_train)
  flipped = common.load_config(path + ":without_si,flip")
  assert ops(flipped.data.pp_train) == plain[:-1] + ["flip_lr", "normalize_imagenet"]
  assert flipped.model.use_interaction is False  # the variant word still applies
  if name == "voc2012":
    scaled = common.load_config(path + ":scale512,flip").data.pp_train
    assert scaled.startswith("decode|resize(512)|") and scaled.endswith("|resize(448)|flip_lr|normalize_imagenet")


def test_ssgrl_flip_word_needs_a_pp_string_and_is_not_a_variant():
  with pytest.raises(ConfigError, match="'flip' needs config.data.pp_train"):
    common.load_config(os.path.join(REPO, "configs", "ssgrl_shapes.py:flip,tiny"))
  with pytest.raises(ConfigError, match="unknown variant or augment 'flop'"):
    common.load_config(os.path.join(REPO, "configs", "ssgrl_coco.py:flop"))
