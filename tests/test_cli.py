"""Every command-line tool starts: `--help` exits 0 naming its key flags, importing one defines no flags of
another, and fused_eval / predict get past their flags to a clear one-line error on a missing run."""

import subprocess
import sys

import pytest
from training_helpers import REPO, cpu_env
from training_helpers import run_module as helpers_run_module

HELP_FLAGS = {
  "jaxgraphs.predict": ("--checkpoint", "--out_dir", "--boxes", "--config"),
  "jaxgraphs.tools.fused_eval": ("--workdir", "--ten_crop", "--checkpoint"),
  "jaxgraphs.tools.convert_torchvision": ("--arch", "--src", "--dst"),
  "jaxgraphs.tools.prepare_dataset": ("--dataset", "--manual_dir"),
  "jaxgraphs.tools.word_vectors": ("--glove", "--out"),
  "jaxgraphs.tools.make_readme_pictures": ("--out", "--steps", "--workdir"),
}


def run_module(module, *args, timeout=300):
  return helpers_run_module(module, *args, merged=True, timeout=timeout)


@pytest.mark.parametrize("module", sorted(HELP_FLAGS))
def test_help_exits_zero_and_names_the_key_flags(module):
  proc = run_module(module, "--help")
  assert proc.returncode == 0, proc.stdout[-3000:]
  for flag in HELP_FLAGS[module]:
    # absl lists a boolean flag as --[no]name.
    listed = f"{flag}:" in proc.stdout or f"--[no]{flag[2:]}:" in proc.stdout
    assert listed, f"{module} --help does not list {flag}:\n{proc.stdout[-3000:]}"


def test_importing_the_entry_points_defines_no_flags():
  modules = ["jaxgraphs.predict", "jaxgraphs.training.run_dirs"] + [m for m in HELP_FLAGS if ".tools." in m]
  code = (
    # absl's own flags and TFDS's (prepare_dataset imports it) come before the baseline.
    "from absl import app, flags, logging; import tensorflow_datasets; before = set(flags.FLAGS)\n"
    f"for name in {modules!r}: __import__(name)\n"
    "print(sorted(set(flags.FLAGS) - before))"
  )
  proc = subprocess.run(
    [sys.executable, "-c", code], cwd=REPO, env=cpu_env(), capture_output=True, text=True, check=False
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip() == "[]"


def test_fused_eval_reaches_the_run_and_names_what_is_missing(tmp_path):
  # Its evaluation path imports the prediction helpers; that once redefined --checkpoint and failed every call.
  proc = run_module("jaxgraphs.tools.fused_eval", f"--workdir={tmp_path}")
  assert proc.returncode == 2, proc.stdout[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == (
    f"error: {tmp_path}/config.json does not exist; pass --config=configs/<the training config>.py"
  )


def test_predict_without_a_run_is_one_line(tmp_path):
  image = tmp_path / "image.png"
  image.write_bytes(b"")
  proc = run_module("jaxgraphs.predict", f"--checkpoint={tmp_path / 'nowhere'}", str(image))
  assert proc.returncode == 2, proc.stdout[-3000:]
  assert proc.stdout.strip().splitlines()[-1].startswith(f"error: --checkpoint={tmp_path / 'nowhere'}: no checkpoint")


@pytest.mark.slow  # imports TensorFlow and generates the tiny built-in dataset (about 10 s)
def test_prepare_dataset_prepares_the_builtin_data(tmp_path):
  proc = run_module("jaxgraphs.tools.prepare_dataset", "--dataset=builtin_shapes/tiny", f"--data_dir={tmp_path}")
  assert proc.returncode == 0, proc.stdout[-3000:]
  summary = [line for line in proc.stdout.splitlines() if line.startswith("builtin_shapes/tiny/")][-1]
  assert "train 256, validation 128, test 128 examples" in summary, summary
  assert (tmp_path / "builtin_shapes" / "tiny").is_dir()
