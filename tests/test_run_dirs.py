"""A run's files through one path API: a `gs://` workdir (here a bucket mapped onto a local folder by
`etils.epath.testing`, the way Orbax and TFDS see remote paths) gets its JSON next to the checkpoints, never in a
local folder named `gs:`."""

import contextlib
import json
import os

from unittest import mock

import pytest
from etils import epath
from etils.epath import gpath

from jaxgraphs.training import run_dirs

BUCKET = "gs://bucket"


@contextlib.contextmanager
def bucket_on(root):
  """Serves gs://bucket/... from `root` through epath's backend functions."""

  def local(path):
    return str(path).replace(BUCKET, str(root))

  def one_path(original, path, *args, **kwargs):
    return original(local(path), *args, **kwargs)

  def two_paths(original, path, dst, *args, **kwargs):
    return original(local(path), local(dst), *args, **kwargs)

  def glob(original, pattern):
    return [p.replace(str(root), BUCKET) for p in original(local(pattern))]

  def walk(original, top, **kwargs):
    for folder, dirs, files in original(local(top), **kwargs):
      yield str(folder).replace(str(root), BUCKET), dirs, files

  singles = ("exists", "isdir", "listdir", "makedirs", "mkdir", "open", "remove", "rmtree", "stat")
  # With TensorFlow installed epath sends gs:// to tf.io.gfile directly; without it, to the mockable table.
  with (
    mock.patch.object(gpath, "_is_tf_installed", lambda: False),
    epath.testing.mock_epath(
      **{name: one_path for name in singles}, rename=two_paths, replace=two_paths, copy=two_paths, glob=glob, walk=walk
    ),
  ):
    yield


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a built-in open("gs://...") would create ./gs:/ here
  root = tmp_path / "bucket_root"
  root.mkdir()
  with bucket_on(root):
    yield root
  assert not os.path.exists(tmp_path / "gs:"), "something wrote a remote path with the local file API"


def test_json_round_trip_lands_in_the_bucket(bucket):
  run = f"{BUCKET}/runs/a"
  run_dirs.make_dirs(run)
  run_dirs.write_json(run_dirs.join(run, "eval_8.json"), {"step": 8, "mAP": 0.5})
  assert run_dirs.read_json(f"{run}/eval_8.json") == {"step": 8, "mAP": 0.5}
  assert json.loads((bucket / "runs" / "a" / "eval_8.json").read_text())["step"] == 8
  assert run_dirs.list_dir(run) == ["eval_8.json"]  # the temporary name was renamed away
  assert run_dirs.exists(f"{run}/eval_8.json") and not run_dirs.exists(f"{run}/eval_9.json")
  assert run_dirs.list_dir(f"{run}/missing") == []


def test_remote_paths_stay_remote():
  assert run_dirs.absolute("gs://b/run") == "gs://b/run"
  assert run_dirs.join("gs://b/run", "checkpoints", "8") == "gs://b/run/checkpoints/8"
  assert run_dirs.absolute("~/x").startswith("/") and run_dirs.is_remote("gs://b") and not run_dirs.is_remote("/b")


def test_checkpoint_paths_and_saved_config_resolve_in_the_bucket(bucket):
  os.makedirs(bucket / "run" / "checkpoints" / "8")
  (bucket / "run" / "config.json").write_text(json.dumps({"model": {"name": "rgnet"}, "task": {"kind": "binary"}}))
  assert run_dirs.resolve_checkpoint(f"{BUCKET}/run") == (f"{BUCKET}/run", "checkpoints", None)
  assert run_dirs.resolve_checkpoint(f"{BUCKET}/run/checkpoints/8") == (f"{BUCKET}/run", "checkpoints", 8)
  config = run_dirs.config_from_workdir(f"{BUCKET}/run")
  assert config.model.kind == "binary"  # an old run's task key carried over
  # ... and its data read as it was trained: decoded op by op, normalised on the host.
  assert config.data.fuse_decode is False and config.data.normalize_on_device is False
  with pytest.raises(FileNotFoundError, match="gs://bucket/nothing"):
    run_dirs.resolve_checkpoint(f"{BUCKET}/nothing")


def test_trainer_and_command_line_read_and_write_through_it(bucket):
  from jaxgraphs.errors import ConfigError
  from jaxgraphs.training import trainer

  run = f"{BUCKET}/run"
  run_dirs.make_dirs(f"{run}/checkpoints/4")
  trainer._write_json(run_dirs.join(run, "eval_4.json"), {"step": 4, "mAP": 0.25})
  assert trainer._latest_eval(run, 4) == {"step": 4, "mAP": 0.25} and trainer._latest_eval(run, 5) == {}
  assert (bucket / "run" / "eval_4.json").exists()
  run_dirs.checkpoint_directory(run, "4")
  with pytest.raises(ConfigError, match=r"no such step in gs://bucket/run/checkpoints; it has \[4\]"):
    run_dirs.checkpoint_directory(run, "8")


def test_checkpoint_checksums_are_written_and_checked_in_the_bucket(bucket):
  from jaxgraphs.training import checkpointing

  step = bucket / "run" / "checkpoints" / "4"
  os.makedirs(step / "state" / "d")
  (step / "state" / "d" / "chunk").write_bytes(bytes(range(256)) * 8)
  (step / "_CHECKPOINT_METADATA").write_text("{}")  # Orbax rewrites it after the manifest: not covered
  remote = f"{BUCKET}/run/checkpoints/4"
  checkpointing._write_manifest(remote)
  manifest = json.loads((step / checkpointing.MANIFEST).read_text())
  assert list(manifest["files"]) == ["state/d/chunk"] and manifest["files"]["state/d/chunk"]["size"] == 2048
  assert checkpointing._manifest_problem(remote) is None
  (step / "state" / "d" / "chunk").write_bytes(bytes(2048))
  assert "does not match the SHA-256" in checkpointing._manifest_problem(remote)
