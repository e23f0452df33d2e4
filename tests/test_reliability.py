"""Checkpoints that cannot lie and saves that fail loudly: corrupt steps are set aside, write errors are one line."""

import errno
import glob
import json
import logging
import os
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgraphs.training import checkpointing, sharding
from jaxgraphs.training.checkpointing import (
  CORRUPT_SUBDIR,
  MANIFEST,
  CheckpointCorruptError,
  Checkpoints,
  CheckpointWriteError,
  SetAside,
)
from jaxgraphs.training.train_state import TrainState


def _state(step):
  # A 64x64 random kernel: its data file is ~16 KB of incompressible bytes, room for 4 KB of damage.
  params = {"dense": {"kernel": jax.random.normal(jax.random.key(step), (64, 64)), "bias": jnp.full((64,), step)}}
  return TrainState(
    step=jnp.asarray(step, jnp.int32),
    params=params,
    model_state={"batch_stats": {"bn": {"mean": jnp.full((2,), float(step))}}},
    opt_state=optax.adam(1e-3).init(params),
    rng=jax.random.key_data(jax.random.key(step)),
  )


def _abstract(extra_layer=False):
  state = _state(0)
  if extra_layer:  # what a config with one more layer asks for
    state = state.replace(params={**state.params, "extra": {"kernel": jnp.zeros((4, 4))}})
  shardings = sharding.state_shardings(state, sharding.make_mesh())
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)


def _save_steps(workdir, steps, **kwargs):
  ckpt = Checkpoints(str(workdir), max_to_keep=kwargs.pop("max_to_keep", 3), **kwargs)
  for step in steps:
    ckpt.save(_state(step), {"examples_consumed": 8 * step})
  ckpt.close()
  return os.path.join(str(workdir), "checkpoints")


def _largest_data_file(step_dir):
  files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
  path = max(files, key=os.path.getsize)
  assert os.path.getsize(path) >= 8192, "the kernel's data file is expected to hold 4 KB of damage"
  return path


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _overwrite_4kb(path):
  with open(path, "r+b") as f:
    f.seek(1024)
    original = f.read(4096)
    damage = np.random.default_rng(0).bytes(4096)
    assert damage != original
    f.seek(1024)
    f.write(damage)


def _assert_equal_to_saved(state, meta, step):
  expected = _state(step)
  assert int(state.step) == step and meta["examples_consumed"] == 8 * step
  for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _our_records(caplog, level=logging.WARNING):
  return [r for r in caplog.records if r.module == "checkpointing" and r.levelno >= level]


@pytest.mark.parametrize("async_save", [True, False])
def test_every_save_records_checksums_of_its_files(tmp_path, async_save):
  directory = _save_steps(tmp_path, [1, 2], async_save=async_save)
  for step in (1, 2):
    with open(os.path.join(directory, str(step), MANIFEST)) as f:
      files = json.load(f)["files"]
    assert os.path.relpath(_largest_data_file(os.path.join(directory, str(step))), f"{directory}/{step}") in files
    assert "meta/metadata" in files
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  assert ckpt.latest_step(verify=True) == 2 and ckpt.set_aside == []
  ckpt.close()


def test_the_manifest_is_written_before_the_step_appears(tmp_path, monkeypatch):
  # A kill can come any time: the manifest goes in with Orbax's rename, never after it.
  seen = []
  write = checkpointing._write_manifest

  def spy(step_dir):
    seen.append((os.path.basename(step_dir), os.path.exists(os.path.join(os.path.dirname(step_dir), "1"))))
    write(step_dir)

  monkeypatch.setattr(checkpointing, "_write_manifest", spy)
  _save_steps(tmp_path, [1])
  assert len(seen) == 1
  (name, final_exists) = seen[0]
  assert name.startswith("1.orbax-checkpoint-tmp") and not final_exists


@pytest.mark.parametrize("damage", [_truncate, _overwrite_4kb], ids=["truncated", "4kb_random_bytes"])
def test_a_corrupt_latest_step_is_set_aside_and_the_previous_one_restores(tmp_path, caplog, damage):
  directory = _save_steps(tmp_path, [1, 2])
  damaged = _largest_data_file(os.path.join(directory, "2"))
  damage(damaged)
  caplog.set_level(logging.WARNING)
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  state, meta = ckpt.restore(_abstract())
  ckpt.close()

  _assert_equal_to_saved(state, meta, 1)
  kept = os.path.join(directory, "corrupt", "2")
  assert ckpt.restored_step == 1
  assert [(s.step, s.path) for s in ckpt.set_aside] == [(2, kept)]
  assert os.path.relpath(damaged, f"{directory}/2") in ckpt.set_aside[0].reason
  assert os.path.exists(os.path.join(kept, os.path.relpath(damaged, f"{directory}/2")))  # kept, not deleted
  assert Checkpoints(str(tmp_path), max_to_keep=3).all_steps() == [1]
  (record,) = _our_records(caplog)
  message = record.getMessage()
  assert "\n" not in message and "step 2" in message and f"{directory}/2" in message and kept in message
  assert ckpt.describe_restore() == f"step 1 (step 2 was corrupt, kept at {kept})"


def test_the_trainer_resumes_from_the_newest_step_that_verifies(tmp_path):
  directory = _save_steps(tmp_path, [1, 2, 3])
  _overwrite_4kb(_largest_data_file(os.path.join(directory, "3")))
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  resume_step = ckpt.latest_step(verify=True)
  state, meta = ckpt.restore(_abstract(), resume_step)
  _assert_equal_to_saved(state, meta, 2)
  assert ckpt.describe_restore().startswith("step 2 (step 3 was corrupt, kept at ")
  # Training goes on and saves step 3 again: the set-aside step is not in Orbax's way.
  ckpt.save(_state(3), {"examples_consumed": 24})
  ckpt.close()
  assert Checkpoints(str(tmp_path), max_to_keep=3).latest_step(verify=True) == 3
  assert os.path.isdir(os.path.join(directory, "corrupt", "3"))


def test_a_step_asked_for_by_number_that_is_corrupt_fails_in_one_line(tmp_path):
  directory = _save_steps(tmp_path, [1, 2])
  _truncate(_largest_data_file(os.path.join(directory, "2")))
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  with pytest.raises(CheckpointCorruptError) as raised:
    ckpt.restore(_abstract(), 2)
  message = str(raised.value)
  assert "\n" not in message and "step 2" in message and os.path.join(directory, "corrupt", "2") in message
  assert ckpt.all_steps() == [1]
  with pytest.raises(FileNotFoundError):
    ckpt.restore_raw(2)
  assert int(ckpt.restore_raw(1)["step"]) == 1
  ckpt.close()


def test_an_unreadable_manifest_counts_as_corrupt(tmp_path):
  directory = _save_steps(tmp_path, [1, 2])
  with open(os.path.join(directory, "2", MANIFEST), "w") as f:
    f.write('{"files": ')
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  state, meta = ckpt.restore(_abstract())
  ckpt.close()
  _assert_equal_to_saved(state, meta, 1)
  assert MANIFEST in ckpt.set_aside[0].reason


def test_a_step_without_manifest_restores_unverified_with_a_warning(tmp_path, caplog):
  directory = _save_steps(tmp_path, [1, 2])
  os.remove(os.path.join(directory, "2", MANIFEST))  # what a checkpoint saved before checksums looks like
  caplog.set_level(logging.WARNING)
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  state, meta = ckpt.restore(_abstract())
  ckpt.close()
  _assert_equal_to_saved(state, meta, 2)
  (record,) = _our_records(caplog)
  assert "unverified" in record.getMessage() and f"{directory}/2" in record.getMessage()


def test_an_unverified_step_that_does_not_read_is_set_aside_once_an_older_one_reads(tmp_path):
  directory = _save_steps(tmp_path, [1, 2])
  os.remove(os.path.join(directory, "2", MANIFEST))
  # Damage Orbax reads before any array (damaged arrays fail too, but leave Orbax's other reads pending).
  _truncate(os.path.join(directory, "2", "state", "_METADATA"))
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  state, meta = ckpt.restore(_abstract())
  ckpt.close()
  _assert_equal_to_saved(state, meta, 1)
  assert [s.step for s in ckpt.set_aside] == [2] and "does not read" in ckpt.set_aside[0].reason
  assert "\n" not in ckpt.set_aside[0].reason


def test_a_target_that_fits_no_step_moves_nothing(tmp_path):
  directory = _save_steps(tmp_path, [1, 2])
  os.remove(os.path.join(directory, "2", MANIFEST))
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  with pytest.raises(ValueError, match="tree structures do not match"):  # the checkpoints are fine, the config differs
    ckpt.restore(_abstract(extra_layer=True))
  assert ckpt.all_steps() == [1, 2] and ckpt.set_aside == []
  assert not os.path.exists(os.path.join(directory, "corrupt"))
  ckpt.close()


def test_a_step_set_aside_twice_keeps_both_copies(tmp_path):
  directory = _save_steps(tmp_path, [1, 2])
  os.makedirs(os.path.join(directory, "corrupt", "2"))
  _truncate(_largest_data_file(os.path.join(directory, "2")))
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  assert ckpt.latest_step(verify=True) == 1
  ckpt.close()
  assert ckpt.set_aside == [SetAside(2, os.path.join(directory, "corrupt", "2-1"), ckpt.set_aside[0].reason)]
  assert os.path.isdir(os.path.join(directory, "corrupt", "2-1", "state"))


def test_a_corrupt_step_that_cannot_be_moved_is_reported_once_and_skipped(tmp_path, monkeypatch, caplog):
  directory = _save_steps(tmp_path, [1, 2])
  _truncate(_largest_data_file(os.path.join(directory, "2")))
  rename = os.rename

  def read_only_rename(source, target):
    if CORRUPT_SUBDIR in str(target):
      raise PermissionError(errno.EACCES, "Permission denied", source)
    rename(source, target)

  monkeypatch.setattr(checkpointing.os, "rename", read_only_rename)
  caplog.set_level(logging.WARNING)
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  assert ckpt.latest_step(verify=True) == 1
  state, meta = ckpt.restore(_abstract())
  ckpt.close()
  _assert_equal_to_saved(state, meta, 1)
  assert ckpt.all_steps() == [1, 2] and [(s.step, s.path) for s in ckpt.set_aside] == [(2, f"{directory}/2")]
  (record,) = _our_records(caplog)
  assert "left in place (cannot move it: Permission denied)" in record.getMessage()


def _fail_writing_step(monkeypatch, failing_step):
  """Makes the save of `failing_step` fail in Orbax's background thread as a full disk would."""
  write = checkpointing._write_manifest

  def write_or_fail(step_dir):
    if os.path.basename(step_dir).split(".")[0] == str(failing_step):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), step_dir)
    write(step_dir)

  monkeypatch.setattr(checkpointing, "_write_manifest", write_or_fail)


def _assert_write_error(message, directory, step, intact_step):
  assert "\n" not in message
  assert f"checkpoint step {step} to {directory}/{step}:" in message
  assert "No space left on device" in message
  assert re.search(r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB) free of ", message)
  assert f"newest complete checkpoint is still step {intact_step}" in message


@pytest.mark.parametrize("async_save", [True, False])
def test_a_failed_save_raises_one_line_and_earlier_checkpoints_stay(tmp_path, monkeypatch, caplog, async_save):
  caplog.set_level(logging.INFO)
  _fail_writing_step(monkeypatch, 3)
  directory = os.path.join(str(tmp_path), "checkpoints")
  ckpt = Checkpoints(str(tmp_path), max_to_keep=1, async_save=async_save)
  ckpt.save(_state(2), {"examples_consumed": 16})
  with pytest.raises(CheckpointWriteError) as raised:
    ckpt.save(_state(3), {"examples_consumed": 24})
    ckpt.wait()  # an asynchronous save reports at the latest here
  _assert_write_error(str(raised.value), directory, 3, intact_step=2)
  ckpt.close()  # reported once: closing does not raise it again
  errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
  assert errors == [], [r.getMessage()[:200] for r in errors]
  assert not any(isinstance(f, checkpointing._QuietOrbaxErrors) for f in logging.getLogger("absl").filters)

  again = Checkpoints(str(tmp_path), max_to_keep=1)
  assert again.all_steps() == [2]
  state, meta = again.restore(_abstract())
  _assert_equal_to_saved(state, meta, 2)
  again.close()


def test_a_failed_asynchronous_save_is_reported_by_the_next_save(tmp_path, monkeypatch):
  _fail_writing_step(monkeypatch, 3)
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  ckpt.save(_state(2), {"examples_consumed": 16})
  ckpt.save(_state(3), {"examples_consumed": 24})
  with pytest.raises(CheckpointWriteError, match="step 3 "):
    ckpt.save(_state(4), {"examples_consumed": 32})  # names the step that failed, not this one
  ckpt.save(_state(5), {"examples_consumed": 40})  # the failure was reported; saving goes on when asked
  ckpt.close()
  assert Checkpoints(str(tmp_path), max_to_keep=3).all_steps() == [2, 5]


def test_a_failed_asynchronous_save_is_reported_by_check_without_waiting_for_the_next_save(tmp_path, monkeypatch):
  _fail_writing_step(monkeypatch, 3)
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  ckpt.save(_state(2), {"examples_consumed": 16})
  ckpt.save(_state(3), {"examples_consumed": 24})
  raised = None
  for _ in range(600):  # the background thread fails within milliseconds; 30 s of room for a loaded machine
    try:
      ckpt.check()
    except CheckpointWriteError as error:
      raised = error
      break
    time.sleep(0.05)
  assert raised is not None and "checkpoint step 3 " in str(raised)
  ckpt.check()  # reported once
  ckpt.close()
  assert Checkpoints(str(tmp_path), max_to_keep=3).all_steps() == [2]


def test_a_tensorstore_disk_error_is_reported_by_its_os_error():
  error = ValueError(
    'RESOURCE_EXHAUSTED: Error writing "w/0" in OCDBT database at local file "/x/2.orbax-checkpoint-tmp/": '
    "Failed to write 571805 bytes to file 4: No space left on device [os_error_code='28']"
  )
  assert checkpointing._reason(error) == "No space left on device (errno 28)"
  assert checkpointing._reason(PermissionError(errno.EACCES, "Permission denied")) == "Permission denied (errno 13)"
  assert checkpointing._size(0) == "0 B" and checkpointing._size(3 * 2**30 + 2**29) == "3.5 GiB"


def test_saving_a_step_that_exists_replaces_it(tmp_path):
  # A run that fell back past a corrupt step saves its best checkpoint at a step number it used before.
  manager = Checkpoints(str(tmp_path), max_to_keep=1, subdir="checkpoints_best", async_save=False)
  first, second = _state(4), _state(5).replace(step=jnp.asarray(4, jnp.int32))
  manager.save(first, {"attempt": 1})
  manager.save(second, {"attempt": 2})
  restored, meta = manager.restore(_abstract())
  assert manager.all_steps() == [4] and meta["attempt"] == 2
  np.testing.assert_array_equal(restored.params["dense"]["kernel"], second.params["dense"]["kernel"])
  manager.close()
