"""GloVe vectors of class names for SSGRL's semantic decoupling: one (C, 300) float32 .npy per dataset.

  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=coco/2014 --out=coco_glove.npy
  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --class_names="cat,dog,traffic light" --out=x.npy

Class order is the dataset's label order (TFDS ClassLabel names; coco/2014 is in COCO category-id order). Names are
lower-cased and split into words ('_' counts as a space); a multi-word name ("traffic light") gets the mean of its
words' vectors. VOC's glued names are split by DEFAULT_ALIASES ("diningtable" -> "dining table"). The GloVe text
file is streamed once, keeping only the words asked for; its tokens may contain spaces, so each line is parsed from
the right (the last `dim` fields are the numbers). Beside the .npy a .json records the class names, the words used
and the words GloVe lacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from absl import app, flags, logging

from jaxgraphs.data.label_graph import class_label_feature, default_label_key

# Re-exported: the tool's users load what it writes with these.
from jaxgraphs.data.label_priors import DEFAULT_ALIASES, MAKE_COMMAND, class_words, load_word_vectors  # noqa: F401
from jaxgraphs.errors import ConfigError

MISSING_POLICIES = ("error", "zero", "random")


def read_glove(path: str, words: Sequence[str], dim: int = 300, log_every: int = 500_000) -> dict[str, np.ndarray]:
  """Streams a GloVe text file and returns {word: (dim,) float32} for the requested words found (first entry wins)."""
  wanted = set(words)
  found: dict[str, np.ndarray] = {}
  with open(path, encoding="utf-8", errors="replace") as f:
    for line_number, line in enumerate(f, 1):
      if line_number == 1:
        num_fields = len(line.rstrip().split(" "))
        if num_fields != dim + 1:
          raise ValueError(f"{path}:1 has {num_fields - 1} numbers after its token, expected {dim} (set --dim)")
      if line_number % log_every == 0:
        logging.info("%s: %d lines read, %d/%d words found", path, line_number, len(found), len(wanted))
      head = line[: line.find(" ")]
      # Cheap filter on the first field; the exact token (which may contain spaces) is checked below.
      if head not in wanted or head in found:
        continue
      fields = line.rstrip().split(" ")
      if " ".join(fields[:-dim]) != head:
        continue  # A longer token that merely starts with a wanted word, e.g. "traffic light".
      try:
        found[head] = np.asarray(fields[-dim:], np.float32)
      except ValueError as error:
        raise ValueError(f"{path}:{line_number}: expected a token and {dim} numbers") from error
      if len(found) == len(wanted):
        break
  return found


def build_word_vectors(
  class_names: Sequence[str],
  glove_path: str,
  dim: int = 300,
  missing: str = "error",
  aliases: dict[str, str] | None = None,
  seed: int = 0,
) -> tuple[np.ndarray, dict]:
  """(C, dim) float32 class vectors (mean over each name's words) and a report of the words GloVe lacks."""
  if missing not in MISSING_POLICIES:
    raise ValueError(f"--missing={missing!r} is not one of {MISSING_POLICIES}")
  if not class_names:
    raise ValueError("no class names given")
  words = [class_words(name, aliases) for name in class_names]
  for name, name_words in zip(class_names, words):
    if not name_words:
      raise ValueError(f"class name {name!r} has no words")
  found = read_glove(glove_path, sorted({w for name_words in words for w in name_words}), dim)

  vectors = np.zeros((len(class_names), dim), np.float32)
  missing_words, empty = {}, []
  for index, (name, name_words) in enumerate(zip(class_names, words)):
    lacking = [w for w in name_words if w not in found]
    if lacking:
      missing_words[name] = lacking
    present = [found[w] for w in name_words if w in found]
    if present:
      vectors[index] = np.mean(present, axis=0)
    else:
      empty.append(index)

  filled = {}
  if empty:
    names = [class_names[i] for i in empty]
    if missing == "error":
      raise ValueError(
        f"{glove_path} has no vector for any word of the classes {names} (words: "
        f"{[words[i] for i in empty]}); give them other words with --aliases=name=words, or pass "
        "--missing=zero or --missing=random to fill them"
      )
    # Random fills match the spread of the real vectors so they are neither dominant nor negligible.
    scale = float(np.std(list(found.values()))) if found else 1.0
    rng = np.random.default_rng(seed)
    for index in empty:
      vectors[index] = 0.0 if missing == "zero" else rng.normal(0.0, scale, dim)
      filled[class_names[index]] = missing
  report = {
    "class_names": list(class_names),
    "words": words,
    "missing_words": missing_words,
    "filled_classes": filled,
    "glove": os.path.basename(glove_path),
    "dim": dim,
  }
  return vectors, report


def save_word_vectors(out: str, vectors: np.ndarray, report: dict) -> str:
  """Writes `out` (.npy) and the report beside it (.json); returns the .json path."""
  json_path = os.path.splitext(out)[0] + ".json"
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.save(out, vectors.astype(np.float32))
  with open(json_path, "w") as f:
    json.dump(report, f, indent=1)
  return json_path


def class_names_from_tfds(dataset: str, data_dir: str | None = None, label_key: str | None = None) -> list[str]:
  """Class names in label order from a TFDS dataset's info (coco/2014: objects/label; voc: labels)."""
  from jaxgraphs.data.builders import registry  # our datasets (vg500) register on import

  label_key = label_key or default_label_key(dataset)
  feature = class_label_feature(registry.builder(dataset, data_dir=data_dir).info.features, label_key)
  names = list(feature.names)
  if names == [str(i) for i in range(len(names))]:
    raise ValueError(
      f"{dataset}: the dataset info has only numeric class names for {label_key!r} (TFDS fills in "
      f"coco's names when it prepares the data); pass --data_dir=<where {dataset} is prepared>, or "
      "--class_names / --class_names_file"
    )
  return names


def parse_aliases(text: str) -> dict[str, str]:
  """'name=words,name=words' -> {name: words}, on top of DEFAULT_ALIASES."""
  aliases = dict(DEFAULT_ALIASES)
  for item in filter(None, (part.strip() for part in text.split(","))):
    if "=" not in item:
      raise ValueError(f"--aliases item {item!r} is not name=words")
    name, phrase = item.split("=", 1)
    aliases[name.strip().lower()] = phrase.strip()
  return aliases


FLAGS = flags.FLAGS


def _define_flags():
  """Command-line flags, defined only when run as a program so importing the loader defines none."""
  flags.DEFINE_string("glove", None, "GloVe text file, e.g. glove.840B.300d.txt.")
  flags.DEFINE_string("out", None, "Output .npy; the report goes to the same name with .json.")
  flags.DEFINE_string("dataset", None, "TFDS name whose class names to use, e.g. coco/2014, voc/2007.")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (coco's names only exist once the dataset is prepared).")
  flags.DEFINE_string("label_key", None, "Label feature path; default per dataset (coco: objects/label, voc: labels).")
  flags.DEFINE_string("class_names", None, "Comma-separated class names, instead of --dataset.")
  flags.DEFINE_string("class_names_file", None, "File with one class name per line, instead of --dataset.")
  flags.DEFINE_string("aliases", "", "Extra name=words pairs, comma-separated, e.g. 'tvmonitor=television'.")
  flags.DEFINE_integer("dim", 300, "Vector dimension of the GloVe file.")
  flags.DEFINE_enum("missing", "error", MISSING_POLICIES, "What to do with a class none of whose words GloVe has.")
  flags.DEFINE_integer("seed", 0, "Seed of --missing=random.")


def _class_names_from_flags() -> list[str]:
  """Class names from whichever of --dataset, --class_names, --class_names_file was given."""
  sources = [s for s in ("dataset", "class_names", "class_names_file") if getattr(FLAGS, s)]
  if len(sources) != 1:
    raise app.UsageError("give exactly one of --dataset, --class_names, --class_names_file")
  if FLAGS.dataset:
    return class_names_from_tfds(FLAGS.dataset, FLAGS.data_dir, FLAGS.label_key)
  if FLAGS.class_names:
    return [name.strip() for name in FLAGS.class_names.split(",") if name.strip()]
  with open(FLAGS.class_names_file) as f:
    return [line.strip() for line in f if line.strip()]


def main(argv):
  """Builds, reports and saves the class word vectors named by the flags."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    names = _class_names_from_flags()
    vectors, report = build_word_vectors(
      names, FLAGS.glove, FLAGS.dim, FLAGS.missing, parse_aliases(FLAGS.aliases), FLAGS.seed
    )
  except (ValueError, KeyError, OSError) as error:  # a bad GloVe file, class list or output path
    raise ConfigError(str(error)) from None
  json_path = save_word_vectors(FLAGS.out, vectors, report)
  for name, words in report["missing_words"].items():
    print(
      f"missing in GloVe: {name!r}: {words}"
      + (f" (filled: {report['filled_classes'][name]})" if name in report["filled_classes"] else "")
    )
  print(f"wrote {FLAGS.out} {vectors.shape} and {json_path}")


if __name__ == "__main__":
  _define_flags()
  flags.mark_flags_as_required(["glove", "out"])
  from jaxgraphs import cli

  cli.run(main)
