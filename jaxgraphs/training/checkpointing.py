"""Orbax checkpoints of the whole train state plus the input position, the last N and the best one.

Orbax writes each step into a temporary directory and renames it only once every file is on disk, so a
run killed in the middle of a save leaves the previous step as the latest complete checkpoint.
Restoring goes through an abstract target that carries the current shardings, so a checkpoint written on
one device count restores on another.

Checksums. Orbax and TensorStore check only their index structures (the OCDBT manifest and B-tree nodes, the
Zarr shard index carry CRC32C); the array chunks themselves have no checksum, so bytes overwritten inside a data
file restore silently as wrong weights, and a truncated one fails with a TensorStore error. Every save therefore
records `_CHECKSUMS.json` (size and SHA-256 of each file below the step's item folders). Process 0 writes it from
Orbax's post-finalisation callback, inside the temporary directory just before Orbax renames it into place, so
a run killed before the manifest is written leaves only a temporary directory (ignored, and removed by the next
run) and every step that looks complete has its manifest, asynchronous saves included. A step without one (saved
before manifests existed, or by another tool) is restored unverified, with a warning.

`latest_step(verify=True)` and `restore()` without a step check the manifests newest first. A step that does not
match its manifest is moved to `<checkpoints>/corrupt/<step>` (kept, never deleted; Orbax no longer lists it) with
one warning line naming the step, its path and the reason, and the next older step is used. `restore()` also
falls back past steps that fail to read, but sets them aside only once an older step has read with the same
target (single process only; several processes raise the read error): when no step reads, the target is what is
wrong (e.g. a config with another model) and nothing is moved. A step asked for by number that does not match
its manifest is set aside and raises `CheckpointCorruptError`; one that fails to read raises Orbax's error.

Failed saves. A save that fails (full disk, no permission) raises one `CheckpointWriteError` with a one-line message
naming the step, its path and the free space, at the latest when the next `save`, `wait` or `close` runs. Orbax's own
error records for it (one traceback per thread that saw the failure) are dropped meanwhile. The failed step never
appears (its temporary directory is removed when the next run starts) and no older step is deleted for it.

Several processes: each one verifies manifests itself (same files, same verdict); only process 0 writes manifests
and moves directories, and every process waits for it before listing the steps again.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging as std_logging
import os
import re
import shutil
from typing import Any

import flax.serialization
import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from jaxgraphs.errors import RunError
from jaxgraphs.training import run_dirs
from jaxgraphs.training.train_state import TrainState

MANIFEST = "_CHECKSUMS.json"
CORRUPT_SUBDIR = "corrupt"
_READ_CHUNK = 1 << 22
_ORBAX_DIR = os.path.dirname(ocp.__file__)


class CheckpointError(RunError):
  """A checkpoint problem whose one-line message the command line prints as `error: ...` (exit code 1)."""


class CheckpointWriteError(CheckpointError):
  """A save that did not complete; the checkpoints saved before it are intact."""


class CheckpointCorruptError(CheckpointError):
  """A step asked for by number whose files do not match the checksums recorded when it was saved."""


@dataclasses.dataclass(frozen=True)
class SetAside:
  """A corrupt step moved out of Orbax's listing: its number, where it is kept now and why."""

  step: int
  path: str
  reason: str


class Checkpoints:
  """Saves and restores (train state, metadata) pairs under `<workdir>/<subdir>`.

  After `restore`, `restored_step` is the step read and `set_aside` the corrupt steps moved away on the way.
  """

  def __init__(self, workdir: str, *, max_to_keep: int, subdir: str = "checkpoints", async_save: bool = True):
    self.directory = run_dirs.join(run_dirs.absolute(workdir), subdir)
    self.restored_step: int | None = None
    self.set_aside: list[SetAside] = []
    self._async = async_save
    self._saving: int | None = None  # the step whose save may still run in the background
    self._problems: dict[int, str | None] = {}  # verification verdicts, so that a step is hashed once
    self._barriers = 0
    self._unmovable: set[int] = set()  # corrupt steps that could not be moved (reported once, then skipped)
    self._quiet = _QuietOrbaxErrors()
    # Always Orbax's asynchronous checkpointer: only it runs the callback that records the checksums before the
    # rename. A synchronous save is an asynchronous one waited for at once.
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      create=True,
      cleanup_tmp_directories=True,
      enable_async_checkpointing=True,
      async_options=ocp.AsyncOptions(post_finalization_callback=self._record_checksums),
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

  def latest_step(self, verify: bool = False) -> int | None:
    """The newest complete step, or None; with `verify`, the newest matching its checksums (newer ones set aside)."""
    if not verify:
      return self._manager.latest_step()
    return next((step for step in reversed(self.all_steps()) if self._usable(step)), None)

  def all_steps(self) -> list[int]:
    """Steps of every complete checkpoint kept."""
    return list(self._manager.all_steps())

  def step_directory(self, step: int) -> str:
    """Where Orbax keeps the finished checkpoint of `step`."""
    return run_dirs.join(self.directory, str(step))

  def save(self, state: TrainState, meta: dict[str, Any]) -> None:
    """Starts writing `state` (asynchronously by default) with JSON metadata; raises CheckpointWriteError on failure."""
    step = int(jax.device_get(state.step))
    self._finish()  # a failed earlier save is reported before another one starts
    if step in self.all_steps():
      # A run that resumed from an older step (e.g. past a corrupt one) reaches a step it saved before: the best
      # checkpoint of the first attempt. The new one replaces it.
      logging.info("Replacing checkpoint %s, saved by an earlier attempt at this step", self.step_directory(step))
      self._manager.delete(step)
    self._saving = step
    self._problems.pop(step, None)
    logging.get_absl_logger().addFilter(self._quiet)
    try:
      self._manager.save(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)), meta=ocp.args.JsonSave(meta)
        ),
        force=True,
      )
    except Exception as error:
      self._saving = None
      logging.get_absl_logger().removeFilter(self._quiet)
      raise self._write_error(step, error) from error
    if not self._async:
      self._finish()

  def restore(self, abstract_state: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
    """Restores onto the shardings of `abstract_state`, with its metadata: `step`, or the newest good step."""
    target = flax.serialization.to_state_dict(abstract_state)

    def read(number: int) -> tuple[TrainState, dict[str, Any]]:
      restored = self._manager.restore(
        number, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
      )
      return flax.serialization.from_state_dict(abstract_state, restored["state"]), dict(restored["meta"])

    if step is None:
      result, step = self._newest_readable(read)
    else:
      self._require(step)
      result = read(step)
    self.restored_step = step
    return result

  def restore_raw(self, step: int) -> dict[str, Any]:
    """The saved state of `step` as plain arrays, without a target (for initialising another model)."""
    self._require(step)
    restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return dict(restored["state"])

  def describe_restore(self) -> str:
    """The restored step and the corrupt ones set aside, e.g. 'step 2 (step 3 was corrupt, kept at DIR)'."""
    aside = "; ".join(f"step {s.step} was corrupt, kept at {s.path}" for s in self.set_aside)
    return f"step {self.restored_step}" + (f" ({aside})" if aside else "")

  def wait(self) -> None:
    """Blocks until any asynchronous save has finished; raises CheckpointWriteError if it failed."""
    self._finish()

  def check(self) -> None:
    """Raises CheckpointWriteError now if the asynchronous save in flight has already failed; never waits."""
    if self._saving is None:
      return
    try:
      self._manager.check_for_errors()  # the array writes' errors
    except Exception as error:
      step, self._saving = self._saving, None
      logging.get_absl_logger().removeFilter(self._quiet)
      raise self._write_error(step, error) from error
    # A save that has ended, well or not, is collected at once (joining a finished thread), so a failure of its
    # finalisation (manifest, rename) is reported now. One process only: the others may still be in that save.
    if jax.process_count() == 1 and not self._manager.is_saving_in_progress():
      self._finish()

  def close(self) -> None:
    """Finishes pending saves (raising CheckpointWriteError if one failed) and releases the manager."""
    try:
      self._finish()
    finally:
      self._manager.close()

  def _finish(self) -> None:
    """Waits for the save in flight and turns its failure into one CheckpointWriteError."""
    try:
      self._manager.wait_until_finished()
    except Exception as error:
      raise self._write_error(self._saving, error) from error
    finally:
      # Cleared only now: Orbax's callback reads it from the background thread until the save is done.
      self._saving = None
      logging.get_absl_logger().removeFilter(self._quiet)

  def _record_checksums(self) -> None:
    """Writes the manifest of the step being saved (Orbax calls this on process 0 just before the rename)."""
    step = self._saving
    pattern = f"{glob.escape(str(step))}.orbax-checkpoint-tmp*"
    unfinished = [str(p) for p in sorted(epath.Path(self.directory).glob(pattern), key=lambda p: p.stat().mtime)]
    # Without a temporary directory (a storage Orbax commits in place) the step is already at its final path.
    _write_manifest(unfinished[-1] if unfinished else self.step_directory(step))

  def _write_error(self, step: int | None, error: BaseException) -> CheckpointWriteError:
    """The one-line report of a failed save: step, path, reason, free space and the newest intact step."""
    where = self.step_directory(step) if step is not None else self.directory
    try:
      usage = shutil.disk_usage(self.directory)
      space = f"{_size(usage.free)} free of {_size(usage.total)} there"
    except (OSError, ValueError):  # a bucket has no free space to report
      space = "free space unknown"
    try:
      # Orbax already dropped the steps this save would have replaced from its list: list them again.
      self._manager.reload()
      kept = self._manager.latest_step()
    except OSError:
      kept = None
    earlier = f"the newest complete checkpoint is still step {kept}" if kept is not None else "no earlier checkpoint"
    return CheckpointWriteError(
      f"could not write checkpoint step {step} to {where}: {_reason(error)}; {space}; {earlier}"
    )

  def _problem(self, step: int) -> str | None:
    """Why `step` does not match its manifest, or None (also when it has none: then it is restored unverified)."""
    if step not in self._problems:
      path = self.step_directory(step)
      if run_dirs.exists(run_dirs.join(path, MANIFEST)):
        self._problems[step] = _manifest_problem(path)
      else:
        logging.warning("Checkpoint %s has no %s (saved without checksums); restoring it unverified", path, MANIFEST)
        self._problems[step] = None
    return self._problems[step]

  def _usable(self, step: int) -> bool:
    """Whether `step` matches its manifest; a step that does not is set aside."""
    problem = self._problem(step)
    if problem is not None and step not in self._unmovable:
      self._set_aside([(step, problem)])
    return problem is None

  def _require(self, step: int) -> None:
    """Fails for a step that is not there or does not match its manifest (which is then set aside)."""
    if step not in self.all_steps():
      raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.all_steps()}")
    problem = self._problem(step)
    if problem is not None:
      (moved,) = self._set_aside([(step, problem)], log=False)
      raise CheckpointCorruptError(
        f"checkpoint step {step} in {self.directory} is corrupt: {problem}; kept at {moved.path}"
      )

  def _newest_readable(self, read) -> tuple[Any, int]:
    """Reads the newest step that verifies; unreadable newer ones are set aside once an older one reads."""
    unreadable: list[tuple[int, Exception]] = []
    for step in reversed(self.all_steps()):
      if not self._usable(step):
        continue
      try:
        result = read(step)
      except Exception as error:
        # Processes could disagree on which step reads, and then restore different ones: several raise instead.
        if jax.process_count() > 1:
          raise
        unreadable.append((step, error))
        continue
      self._set_aside([(bad, f"it does not read ({_one_line(error)})") for bad, error in unreadable])
      return result, step
    if unreadable:  # no step reads with this target, so the target is what is wrong: nothing is moved
      raise unreadable[0][1]
    aside = f" (set aside as corrupt: {[s.step for s in self.set_aside]})" if self.set_aside else ""
    raise FileNotFoundError(f"no complete checkpoint in {self.directory}{aside}")

  def _set_aside(self, bad: list[tuple[int, str]], log: bool = True) -> list[SetAside]:
    """Moves corrupt steps to `corrupt/` (process 0 only) and lists the steps again on every process."""
    targets = [self._free_corrupt_path(step) for step, _ in bad]
    self._sync()  # every process has named the targets before process 0 takes them
    for (step, reason), target in zip(bad, targets):
      source, where = self.step_directory(step), f"kept at {target}"
      if jax.process_index() == 0:
        try:
          run_dirs.make_dirs(target.rsplit("/", 1)[0])
          epath.Path(source).rename(target)
        except OSError as error:  # e.g. another run's read-only checkpoints: skipped all the same
          where = f"left in place (cannot move it: {error.strerror or error})"
        if log:
          logging.warning("Checkpoint step %d at %s is corrupt: %s; %s", step, source, reason, where)
      self._problems[step] = reason
    self._sync()
    # Seen after the barrier by every process alike, so that all of them skip it from now on.
    self._unmovable.update(step for step, _ in bad if run_dirs.exists(self.step_directory(step)))
    moved = [
      SetAside(step, self.step_directory(step) if step in self._unmovable else target, reason)
      for (step, reason), target in zip(bad, targets)
    ]
    self._manager.reload()
    self.set_aside.extend(moved)
    return moved

  def _free_corrupt_path(self, step: int) -> str:
    """`corrupt/<step>`, or `corrupt/<step>-<n>` when that step was set aside before."""
    base = run_dirs.join(self.directory, CORRUPT_SUBDIR, str(step))
    path, n = base, 0
    while run_dirs.exists(path):
      n += 1
      path = f"{base}-{n}"
    return path

  def _sync(self) -> None:
    """A barrier across processes (nothing with one process)."""
    if jax.process_count() > 1:
      self._barriers += 1
      ocp.multihost.sync_global_processes(f"jaxgraphs_checkpoints_set_aside_{self._barriers}")


class _QuietOrbaxErrors(std_logging.Filter):
  """On absl's logger while a save is in flight: drops Orbax's error records, the failure is raised once instead."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    """False for an error record logged by Orbax."""
    return not (record.levelno >= std_logging.ERROR and record.pathname.startswith(_ORBAX_DIR))


def _covered_files(step_dir: str) -> list[str]:
  """Paths (relative to `step_dir`) of the files a manifest covers: all of them below the item folders."""
  root = epath.Path(step_dir)
  files = []
  for folder, _, names in root.walk():
    # Files directly in the step folder are Orbax's step metadata, which it rewrites after the manifest is taken.
    if epath.Path(folder) != root:
      files.extend(str((epath.Path(folder) / name).relative_to(root)) for name in names)
  return sorted(files)


def _sha256(path: str) -> str:
  """Hex SHA-256 of a file, read in chunks."""
  digest = hashlib.sha256()
  with epath.Path(path).open("rb") as f:
    while chunk := f.read(_READ_CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def _write_manifest(step_dir: str) -> None:
  """Records size and SHA-256 of every covered file in `step_dir/_CHECKSUMS.json`."""
  files = {}
  for name in _covered_files(step_dir):
    path = run_dirs.join(step_dir, name)
    files[name] = {"size": epath.Path(path).stat().length, "sha256": _sha256(path)}
  tmp = run_dirs.join(step_dir, MANIFEST + ".tmp")
  with epath.Path(tmp).open("w") as f:
    json.dump({"version": 1, "files": files}, f, indent=1)
    f.flush()
    if not run_dirs.is_remote(tmp):
      os.fsync(f.fileno())  # on disk before Orbax renames the step into place
  epath.Path(tmp).replace(run_dirs.join(step_dir, MANIFEST))


def _manifest_problem(step_dir: str) -> str | None:
  """The first way `step_dir` differs from its manifest, or None."""
  try:
    files = run_dirs.read_json(run_dirs.join(step_dir, MANIFEST))["files"]
    expected = {str(name): (int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()}
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
    return f"its {MANIFEST} is unreadable ({_one_line(error)})"
  for name, (size, digest) in sorted(expected.items()):
    path = run_dirs.join(step_dir, name)
    try:
      actual = epath.Path(path).stat().length
      if actual != size:
        return f"{name} has {actual} bytes, {size} were written"
      if _sha256(path) != digest:
        return f"{name} does not match the SHA-256 recorded when it was written"
    except OSError as error:
      return f"{name} cannot be read ({error.strerror or error})"
  return None


def _reason(error: BaseException) -> str:
  """The cause of a failed write in a few words: the OS error when there is one."""
  text = str(error)
  code = re.search(r"os_error_code='?(\d+)", text)  # TensorStore's way of passing errno through
  if code:
    return f"{os.strerror(int(code.group(1)))} (errno {code.group(1)})"
  if isinstance(error, OSError) and error.strerror:
    return f"{error.strerror} (errno {error.errno})"
  return f"{type(error).__name__}: {_one_line(error)}"


def _one_line(error: BaseException, limit: int = 300) -> str:
  """The first line of an error message, shortened to `limit` characters."""
  lines = str(error).strip().splitlines() or [type(error).__name__]
  line = lines[0]
  return line if len(line) <= limit else line[: limit - 3] + "..."


def _size(n: float) -> str:
  """Bytes in binary units, e.g. '3.2 GiB'."""
  if n < 1024:
    return f"{n:.0f} B"
  for unit in ("KiB", "MiB", "GiB", "TiB"):
    n /= 1024
    if n < 1024 or unit == "TiB":
      break
  return f"{n:.1f} {unit}"
