"""What an installed jaxgraphs carries: every package, the configs (as jaxgraphs.shipped_configs), the console script."""

import os
import shutil
import subprocess
import sys
import tomllib

import pytest
import setuptools
from training_helpers import REPO, cpu_env

from jaxgraphs.configs import common


def pyproject():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def test_package_list_holds_every_package_and_the_configs():
  listed = set(pyproject()["tool"]["setuptools"]["packages"])
  found = set(setuptools.find_packages(REPO, include=["jaxgraphs*"]))
  assert listed == found | {"jaxgraphs.shipped_configs"}, "add new packages to [tool.setuptools] packages"
  assert pyproject()["tool"]["setuptools"]["package-dir"] == {"jaxgraphs.shipped_configs": "configs"}


def test_console_script_is_the_main_entry_point():
  assert pyproject()["project"]["scripts"] == {"jaxgraphs": "jaxgraphs.main:run"}


def test_shipped_config_names_are_the_config_files():
  files = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py") and f[0] != "_")
  assert common.shipped_config_names() == files
  assert common.resolve_config_path("ssgrl_coco.py:without_si").endswith(
    os.path.join("configs", "ssgrl_coco.py:without_si")
  )


def test_a_config_by_name_loads_from_any_directory(tmp_path):
  # A bad key is reported only after the named config file was found and run.
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgraphs.main",
      "--config=rgnet_ava:fcn_a",
      f"--workdir={tmp_path / 'w'}",
      "--config.nope=1",
    ],
    cwd=tmp_path,
    env=cpu_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2 and "error: --config.nope=1: config has no key 'nope'" in proc.stderr, proc.stderr[-1000:]


@pytest.mark.skipif(shutil.which("jaxgraphs") is None, reason="the console script exists once the package is installed")
def test_the_installed_jaxgraphs_command_runs_main(tmp_path):
  proc = subprocess.run(
    ["jaxgraphs", "--config=baseline_coco", f"--workdir={tmp_path / 'w'}", "--config.nope=1"],
    cwd=tmp_path,
    env=cpu_env(),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 2 and "error: --config.nope=1: config has no key 'nope'" in proc.stderr, proc.stderr[-1000:]


def test_fault_campaign_command_parses_its_flags():
  proc = subprocess.run(
    [sys.executable, "-m", "benchmarks.fault_campaign", "--help"],
    cwd=REPO,
    env=cpu_env(),
    capture_output=True,
    text=True,
  )
  assert proc.returncode == 0 and "--trials" in proc.stdout and "--workdir" in proc.stdout, proc.stderr
