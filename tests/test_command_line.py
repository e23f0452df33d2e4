"""`python -m jaxgraphs.main` mistakes: each is one `error:` line on stderr, exit code 2, and nothing written.

These fail before TensorFlow or any data is touched, so each call takes about a second."""

import os

import pytest
from training_helpers import run_module


def main_cli(*args):
  return run_module("jaxgraphs.main", *args)


def assert_one_line(proc, expected: str, *, silent: bool = True):
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr[-2000:]
  assert expected in errors[0], errors[0]
  assert "Traceback" not in proc.stderr
  assert not (silent and proc.stdout.strip()), proc.stdout


@pytest.fixture
def bad_config_file(tmp_path):
  path = tmp_path / "broken.py"
  path.write_text("def get_config(:\n")
  return str(path)


CASES = {
  "missing config file": (["--config=configs/nope.py"], "--config=configs/nope.py: no such config file"),
  "shipped names listed": (["--config=nope"], "shipped: baseline_coco, baseline_shapes"),
  "unknown variant": (["--config=configs/rgnet_shapes.py:fcn_x"], "unknown variant 'fcn_x'"),
  "unknown key": (["--config=configs/baseline_shapes.py", "--config.batch_sise=3"], "config has no key 'batch_sise'"),
  "bad value": (["--config=configs/baseline_shapes.py", "--config.batch_size=abc"], "--config.batch_size=abc"),
  "zero batch": (["--config=configs/baseline_shapes.py", "--config.batch_size=0"], "config.batch_size=0: must be"),
  "negative steps": (["--config=configs/baseline_shapes.py", "--config.total_steps=-5"], "config.total_steps=-5"),
  "bad mode": (["--config=configs/baseline_shapes.py", "--mode=evl"], "flag --mode=evl"),
  "stray argument": (["--config=configs/baseline_shapes.py", "train"], "unexpected arguments: train"),
  "frozen random backbone": (
    ["--config=configs/ssgrl_voc2007.py"],
    "config.model.backbone_init is empty but config.optimizer.freeze",
  ),
  "eval without a run": (["--config=configs/baseline_shapes.py", "--mode=eval"], "checkpoints does not exist"),
  "eval without config.json": (["--mode=eval"], "--mode=eval without --config"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistake_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
  args, expected = CASES[case]
  workdir = tmp_path / "run"
  proc = main_cli(*args, f"--workdir={workdir}")
  assert_one_line(proc, expected)
  assert not workdir.exists()


def test_broken_config_file_names_the_file_and_the_syntax_error(tmp_path, bad_config_file):
  proc = main_cli(f"--config={bad_config_file}", f"--workdir={tmp_path / 'run'}")
  assert_one_line(proc, f"--config={bad_config_file}: SyntaxError: invalid syntax")


def test_frozen_random_backbone_names_the_convert_command_and_the_way_out(tmp_path):
  proc = main_cli("--config=ssgrl_voc2007", f"--workdir={tmp_path / 'run'}")
  assert_one_line(proc, "python -m jaxgraphs.tools.convert_torchvision --arch=resnet101")
  assert "--config.allow_random_frozen_backbone=True" in proc.stderr


def test_missing_workdir_and_a_workdir_under_a_file(tmp_path):
  assert_one_line(main_cli("--config=configs/baseline_shapes.py"), "--workdir is required")
  (tmp_path / "a_file").write_text("")
  proc = main_cli("--config=configs/baseline_shapes.py", f"--workdir={tmp_path / 'a_file' / 'run'}")
  assert_one_line(proc, f"{tmp_path / 'a_file'} is a file, not a directory")


@pytest.mark.parametrize(
  "checkpoint,expected", [("last", "expected 'latest', 'best' or a step number"), ("999", "no such step")]
)
def test_eval_checkpoint_that_does_not_exist(tmp_path, checkpoint, expected):
  steps = tmp_path / "run" / "checkpoints"
  os.makedirs(steps / "4")
  proc = main_cli(
    "--config=configs/baseline_shapes.py", f"--workdir={tmp_path / 'run'}", "--mode=eval", f"--checkpoint={checkpoint}"
  )
  assert_one_line(proc, expected)
  assert sorted(os.listdir(tmp_path / "run")) == ["checkpoints"]


def test_convert_torchvision_checks_the_architecture_before_asking_for_pytorch(tmp_path):
  proc = run_module("jaxgraphs.tools.convert_torchvision", "--arch=resnet7", "--src=x.pth", f"--dst={tmp_path / 'w'}")
  assert_one_line(proc, "--arch=resnet7 is not a torchvision architecture this project builds: resnet18")
  proc = run_module("jaxgraphs.tools.convert_torchvision", "--arch=resnet18", "--src=x.pth", f"--dst={tmp_path / 'w'}")
  assert_one_line(proc, "--src=x.pth: no such file")


@pytest.mark.parametrize(
  "args,expected",
  [
    (
      ["--dataset=avva"],
      "--dataset=avva: no such TFDS dataset (ours: aadb, ava, builtin_shapes, diagnostic_labels, diagnostic_objects, diagnostic_regions, vg150, vg500",
    ),
    (["--dataset=ava", "--manual_dir=/nonexistent/ava"], "--manual_dir=/nonexistent/ava does not exist or is empty"),
  ],
)
def test_prepare_dataset_mistakes_are_one_line(tmp_path, args, expected):
  proc = run_module("jaxgraphs.tools.prepare_dataset", *args, f"--data_dir={tmp_path / 'tfds'}")
  assert_one_line(proc, expected)


def test_prepare_dataset_with_a_file_missing_names_it(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "README").write_text("not the AVA files")
  proc = run_module(
    "jaxgraphs.tools.prepare_dataset", "--dataset=ava", f"--manual_dir={tmp_path / 'manual'}", f"--data_dir={tmp_path}"
  )
  assert_one_line(proc, f"--dataset=ava: {tmp_path / 'manual' / 'AVA.txt'} not found", silent=False)


@pytest.mark.slow  # reads TFDS metadata (about 8 s)
@pytest.mark.parametrize(
  "override,expected",
  [
    ("--config.data.source=vocc/2007", "config.data.source: unknown source 'vocc/2007'; valid sources: aadb, ava"),
    ("--config.data.data_dir=/nonexistent/tfds", "config.data.source: voc is not prepared in /nonexistent/tfds/voc"),
  ],
)
def test_dataset_mistakes_are_one_line(tmp_path, override, expected):
  proc = main_cli("--config=configs/baseline_voc2007.py", f"--workdir={tmp_path / 'run'}", override)
  assert_one_line(proc, expected, silent=False)
  assert not (tmp_path / "run").exists()
