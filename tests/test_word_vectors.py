"""The GloVe class-vector tool on a small fake GloVe file: parsing, averaging, missing words, CLI, loader errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxgraphs.tools.word_vectors import (
  build_word_vectors,
  class_names_from_tfds,
  class_words,
  load_word_vectors,
  parse_aliases,
  read_glove,
)

DIM = 4
FAKE_GLOVE = """\
, 0.1 0.2 0.3 0.4
traffic light 9 9 9 9
traffic 1 0 0 0
light 0 1 0 0
. . . 5 5 5 5
cat 0 0 1 0
dining 1 1 0 0
table 0 0 1 1
tv 0 0 0 3
Cat 7 7 7 7
cat 8 8 8 8
hair 1 2 3 4
"""


@pytest.fixture()
def glove(tmp_path):
  path = tmp_path / "glove.fake.4d.txt"
  path.write_text(FAKE_GLOVE, encoding="utf-8")
  return str(path)


def test_read_glove_parses_from_the_right(glove):
  found = read_glove(glove, ["traffic", "cat", ".", "tv", "absent"], dim=DIM)
  assert set(found) == {"traffic", "cat", "tv"}  # "." is only a prefix of the token ". . .".
  np.testing.assert_array_equal(found["traffic"], [1, 0, 0, 0])  # not the "traffic light" line before it
  np.testing.assert_array_equal(found["cat"], [0, 0, 1, 0])  # first entry wins, lower case only
  assert found["tv"].dtype == np.float32


def test_token_with_spaces_is_read_whole(glove):
  assert read_glove(glove, ["traffic light"], dim=DIM) == {}  # tokens are single words after class_words
  found = read_glove(glove, [".", ","], dim=DIM)
  np.testing.assert_allclose(found[","], [0.1, 0.2, 0.3, 0.4])
  assert "." not in found


def test_class_words_lowercase_split_and_aliases():
  assert class_words("Traffic Light") == ["traffic", "light"]
  assert class_words("potted_plant") == ["potted", "plant"]
  assert class_words("diningtable") == ["dining", "table"]
  assert class_words("tvmonitor") == ["tv", "monitor"]
  assert class_words("tvmonitor", parse_aliases("tvmonitor=tv")) == ["tv"]


def test_multi_word_names_are_averaged_and_missing_words_reported(glove):
  names = ["traffic light", "TV", "diningtable", "hair drier", "cat"]
  vectors, report = build_word_vectors(names, glove, dim=DIM)
  assert vectors.shape == (5, DIM) and vectors.dtype == np.float32
  np.testing.assert_allclose(vectors[0], [0.5, 0.5, 0, 0])
  np.testing.assert_allclose(vectors[1], [0, 0, 0, 3])
  np.testing.assert_allclose(vectors[2], [0.5, 0.5, 0.5, 0.5])
  np.testing.assert_allclose(vectors[3], [1, 2, 3, 4])  # "drier" is missing: the mean of the words found
  assert report["missing_words"] == {"hair drier": ["drier"]}
  assert report["class_names"] == names and report["words"][2] == ["dining", "table"]
  assert report["filled_classes"] == {}


def test_class_without_any_vector_fails_clearly_or_is_filled(glove):
  with pytest.raises(ValueError, match=r"no vector for any word of the classes \['zebra'\].*--missing=zero"):
    build_word_vectors(["cat", "zebra"], glove, dim=DIM)
  zero, report = build_word_vectors(["cat", "zebra"], glove, dim=DIM, missing="zero")
  np.testing.assert_array_equal(zero[1], 0)
  assert report["filled_classes"] == {"zebra": "zero"} and report["missing_words"] == {"zebra": ["zebra"]}
  random, _ = build_word_vectors(["cat", "zebra"], glove, dim=DIM, missing="random", seed=3)
  again, _ = build_word_vectors(["cat", "zebra"], glove, dim=DIM, missing="random", seed=3)
  assert np.abs(random[1]).max() > 0
  np.testing.assert_array_equal(random, again)


def test_wrong_dimension_is_caught_on_the_first_line(glove):
  with pytest.raises(ValueError, match=r":1 has 4 numbers after its token, expected 300 \(set --dim\)"):
    read_glove(glove, ["cat"], dim=300)


def run_tool(*args):
  return subprocess.run(
    [sys.executable, "-m", "jaxgraphs.tools.word_vectors", *args], capture_output=True, text=True, timeout=120
  )


def test_command_line_with_class_names_and_file(glove, tmp_path):
  out = tmp_path / "toy_glove.npy"
  result = run_tool(f"--glove={glove}", "--class_names=cat,traffic light,hair drier", f"--out={out}", f"--dim={DIM}")
  assert result.returncode == 0, result.stderr
  assert "missing in GloVe: 'hair drier': ['drier']" in result.stdout
  vectors = np.load(out)
  np.testing.assert_allclose(vectors, [[0, 0, 1, 0], [0.5, 0.5, 0, 0], [1, 2, 3, 4]])
  report = json.loads((tmp_path / "toy_glove.json").read_text())
  assert report["class_names"] == ["cat", "traffic light", "hair drier"]
  assert report["missing_words"] == {"hair drier": ["drier"]}

  names_file = tmp_path / "names.txt"
  names_file.write_text("cat\n\ntraffic light\nhair drier\n")
  again = tmp_path / "again.npy"
  result = run_tool(f"--glove={glove}", f"--class_names_file={names_file}", f"--out={again}", f"--dim={DIM}")
  assert result.returncode == 0, result.stderr
  np.testing.assert_array_equal(np.load(again), vectors)


def test_command_line_fails_with_a_message_for_a_class_without_vectors(glove, tmp_path):
  result = run_tool(f"--glove={glove}", "--class_names=cat,zebra", f"--out={tmp_path / 'x.npy'}", f"--dim={DIM}")
  assert result.returncode != 0
  assert "error:" in result.stderr and "'zebra'" in result.stderr and "Traceback" not in result.stderr
  assert not (tmp_path / "x.npy").exists()


def test_loader_errors_say_what_to_do(glove, tmp_path):
  missing = tmp_path / "coco_glove.npy"
  with pytest.raises(FileNotFoundError) as error:
    load_word_vectors(str(missing), num_classes=80, dataset="coco/2014")
  assert (
    f"python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=coco/2014 --out={missing}"
  ) in str(error.value)

  out = tmp_path / "toy.npy"
  assert run_tool(f"--glove={glove}", "--class_names=cat,tv", f"--out={out}", f"--dim={DIM}").returncode == 0
  with pytest.raises(ValueError, match=rf"{out} have shape \(2, 4\), expected \(3, 4\)"):
    load_word_vectors(str(out), num_classes=3, dim=DIM)
  with pytest.raises(ValueError, match="class 1 is 'tv' there, 'dog' here"):
    load_word_vectors(str(out), num_classes=2, dim=DIM, class_names=["cat", "dog"])
  loaded = load_word_vectors(str(out), num_classes=2, dim=DIM, class_names=["cat", "tv"])
  assert loaded.dtype == np.float32 and loaded.shape == (2, DIM)


def test_class_names_from_tfds(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  names = class_names_from_tfds("voc/2007", data_dir=str(tmp_path))
  assert len(names) == 20 and names[0] == "aeroplane" and "diningtable" in names
  # coco's ClassLabel gets its names only when the data is prepared; an empty data_dir has none.
  with pytest.raises(ValueError, match="only numeric class names .* --class_names"):
    class_names_from_tfds("coco/2014", data_dir=str(tmp_path))
