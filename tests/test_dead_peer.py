"""Dead peers: when one process of a multi-process run dies, the others stop at once in one line, and the launcher
stops every child and reports which one failed first (jaxgraphs/training/peers.py, launch/local_multiprocess.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from training_helpers import REPO, cpu_env, main_command

LAUNCHER = os.path.join(REPO, "launch", "local_multiprocess.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """builtin_shapes/tiny prepared once for this module."""
  path = str(tmp_path_factory.mktemp("tfds"))
  from jaxgraphs.data.builders import shapes

  shapes.ensure_prepared("tiny", path)
  return path


def running(pid: int) -> bool:
  """Whether `pid` is still a live (not zombie) process of a run started by these tests."""
  try:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
      cmdline = f.read()
    with open(f"/proc/{pid}/stat") as f:
      state = f.read().rsplit(")", 1)[1].split()[0]
  except OSError:
    return False
  return b"--process_id=" in cmdline and state != "Z"


def test_lost_connection_finds_the_collective_error_inside_a_wrapping_one():
  from jaxgraphs.training import peers

  gloo = (
    "UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/pair.cc:538] Read error "
    "[127.0.0.1]:4001: Connection reset by peer"
  )
  try:
    try:
      raise ValueError(gloo)
    except ValueError as error:
      raise RuntimeError("could not write checkpoint step 5 to /w/checkpoints/5: see below; no earlier one") from error
  except RuntimeError as error:
    wrapped = error
  assert peers.lost_connection(wrapped) == gloo.removeprefix("UNKNOWN: ")
  heartbeat = RuntimeError(
    "INTERNAL: Barrier failed because: task is set to ERROR: UNAVAILABLE: Task 1 heartbeat timeout. This indicates "
    "that the remote task has failed [type.googleapis.com/tensorflow.CoordinationServiceError='']"
  )
  assert peers.lost_connection(heartbeat).endswith("UNAVAILABLE: Task 1 heartbeat timeout")
  assert peers.lost_connection(RuntimeError("could not write checkpoint step 5: disk full")) is None


def test_the_error_line_names_the_newest_complete_checkpoint(tmp_path):
  from jaxgraphs.training import peers

  checkpoints = tmp_path / "checkpoints"
  assert peers.last_checkpoint_words(str(tmp_path), training=True) == (
    f"no checkpoint was complete yet in {checkpoints}; rerun the same command to start again"
  )
  for name in ("4", "12", "16.orbax-checkpoint-tmp-1700000000"):  # the last one is a save still in flight
    (checkpoints / name).mkdir(parents=True)
  assert peers.last_checkpoint_words(str(tmp_path), training=True) == (
    f"the last complete checkpoint is {checkpoints}/12; rerun the same command to resume"
  )
  assert peers.last_checkpoint_words(str(tmp_path), training=False) == "rerun the same command"


def test_timeouts_come_from_the_environment(monkeypatch):
  from jaxgraphs.errors import ConfigError
  from jaxgraphs.training import peers

  monkeypatch.delenv(peers.HEARTBEAT_ENV, raising=False)
  monkeypatch.delenv(peers.SHUTDOWN_ENV, raising=False)
  assert peers.timeouts_from_environment() == {"heartbeat_timeout_seconds": 10, "shutdown_timeout_seconds": 60}
  monkeypatch.setenv(peers.HEARTBEAT_ENV, "30")
  assert peers.timeouts_from_environment()["heartbeat_timeout_seconds"] == 30
  monkeypatch.setenv(peers.SHUTDOWN_ENV, "soon")
  with pytest.raises(ConfigError, match="JAXGRAPHS_SHUTDOWN_TIMEOUT=soon: expected a whole number"):
    peers.timeouts_from_environment()


# One process of a pretend run: the lifeline alone (no JAX), with a key-value store made of files. It says when
# its lifeline is up (process 0: once every other process has said hello), then waits to be stopped.
LIFELINE_PROCESS = textwrap.dedent(
  """
  import os, sys, threading, time

  from jaxgraphs.training import peers

  class FileStore:
    def key_value_set(self, key, value):
      path = os.path.join(folder, key.replace("/", "_"))
      with open(path + ".tmp", "w") as f:
        f.write(value)
      os.replace(path + ".tmp", path)

    def blocking_key_value_get(self, key, timeout_in_ms):
      path = os.path.join(folder, key.replace("/", "_"))
      while not os.path.exists(path):
        time.sleep(0.01)
      return open(path).read()

  me, count, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
  watch = peers._Watch(FileStore(), "127.0.0.1:1", me, count, lambda: "the checkpoint words")
  threading.Thread(target=watch.run, daemon=True).start()
  watch.connected.wait()
  while me == 0 and sorted(p for p in watch._peers.values() if p is not None) != list(range(1, count)):
    time.sleep(0.01)
  open(os.path.join(folder, f"ready_{me}"), "w").close()
  time.sleep(120)
  """
)


@pytest.mark.parametrize("victim", [1, 0])
def test_lifeline_tells_every_survivor_which_process_died(tmp_path, victim):
  env = dict(os.environ, PYTHONPATH=REPO)
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", LIFELINE_PROCESS, str(i), "3", str(tmp_path)],
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(3)
  ]
  try:
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready_{i}").exists() for i in range(3)):
      assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "the lifelines did not come up"
      time.sleep(0.05)
    procs[victim].kill()
    killed = time.monotonic()
    survivors = [p for i, p in enumerate(procs) if i != victim]
    codes = [p.wait(timeout=30) for p in survivors]
    seconds = time.monotonic() - killed
    lines = [p.stderr.read().splitlines() for p in survivors]
  finally:
    for p in procs:
      p.kill()
      p.wait()
  assert codes == [75, 75] and seconds < 5, (codes, seconds, lines)
  for words in lines:
    assert len(words) == 1 and words[0].startswith(f"error: process {victim} of 3 stopped (lost connection: "), words
    assert words[0].endswith("); the checkpoint words"), words


# A stand-in for jaxgraphs.main, so that the launcher's own behaviour is tested in about a second: each process
# writes its pid, then does what --do_<its id> says.
FAKE_CHILD = textwrap.dedent(
  """
  import os, signal, sys, time

  flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
  me, workdir = flags["process_id"], flags["workdir"]
  with open(os.path.join(workdir, f"pid_{me}.tmp"), "w") as f:
    f.write(str(os.getpid()))
  os.replace(os.path.join(workdir, f"pid_{me}.tmp"), os.path.join(workdir, f"pid_{me}"))
  what = flags.get(f"do_{me}", "finish")
  if what == "finish":
    sys.exit(0)
  if what.startswith("exit_"):
    sys.exit(int(what[5:]))
  if what == "die":
    os.kill(os.getpid(), signal.SIGKILL)
  if what == "save_on_sigterm":  # like the trainer: SIGTERM -> save -> exit 75
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(75))
    time.sleep(600)
  if what == "ignore_sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
  if what.startswith("lose_"):  # like a survivor: exit 75 once the other process has ended
    path = os.path.join(workdir, "pid_" + what[5:])
    while not os.path.exists(path):
      time.sleep(0.01)
    stat = "/proc/" + open(path).read() + "/stat"
    while os.path.exists(stat) and open(stat).read().rsplit(")", 1)[1].split()[0] != "Z":
      time.sleep(0.01)
    sys.exit(75)
  """
)


def launch_fake(tmp_path, *flags: str, children=()) -> tuple[subprocess.CompletedProcess, list[int]]:
  """Runs the launcher (`flags`) on two fake processes (`children`: their flags); returns it and their pids."""
  (tmp_path / "fake_child.py").write_text(FAKE_CHILD)
  workdir = tmp_path / "run"
  env = dict(os.environ, PYTHONPATH=str(tmp_path))
  cmd = [sys.executable, LAUNCHER, "--num_processes=2", "--module=fake_child", *flags, "--", f"--workdir={workdir}"]
  cmd += children
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
  return proc, [int((workdir / f"pid_{i}").read_text()) for i in range(2)]


def test_launcher_stops_the_others_and_returns_the_first_failure(tmp_path):
  proc, pids = launch_fake(tmp_path, "--grace_period=1", children=("--do_0=ignore_sigterm", "--do_1=exit_3"))
  assert proc.returncode == 3, proc.stderr
  expected = (
    f"error: process 1 of 2 failed first (exit 3; log: {tmp_path}/run/process_1.log); "
    "stopped the others (process 0: killed by SIGKILL)"
  )
  assert proc.stderr.splitlines() == [expected]
  assert not any(running(pid) for pid in pids)


def test_launcher_names_the_dead_process_not_the_one_that_lost_it(tmp_path):
  # Process 0 ends (75) only after process 1 died; the launcher blames process 1 even if it sees process 0 first.
  proc, pids = launch_fake(tmp_path, children=("--do_0=lose_1", "--do_1=die"))
  assert proc.returncode == 128 + signal.SIGKILL, proc.stderr
  assert proc.stderr.startswith("error: process 1 of 2 failed first (killed by SIGKILL;"), proc.stderr
  # Process 0 either saw the loss itself (exit 75) or was still at it when the launcher stopped it (SIGTERM): which
  # comes first is a race between two processes, and either way the launcher's first words are the ones above.
  assert proc.stderr.rstrip().endswith(
    ("stopped the others (process 0: exit 75)", "stopped the others (process 0: killed by SIGTERM)")
  ), proc.stderr
  assert not any(running(pid) for pid in pids)


def test_sigterm_to_the_launcher_reaches_every_process(tmp_path):
  (tmp_path / "fake_child.py").write_text(FAKE_CHILD)
  workdir = tmp_path / "run"
  cmd = [sys.executable, LAUNCHER, "--num_processes=2", "--module=fake_child", "--", f"--workdir={workdir}"]
  cmd += ["--do_0=save_on_sigterm", "--do_1=save_on_sigterm"]
  env = dict(os.environ, PYTHONPATH=str(tmp_path))
  launcher = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  for _ in range(600):  # the children are up once both wrote their pids
    if all((workdir / f"pid_{i}").exists() for i in range(2)):
      break
    time.sleep(0.05)
  launcher.send_signal(signal.SIGTERM)
  _, stderr = launcher.communicate(timeout=60)
  assert launcher.returncode == 75, stderr
  assert stderr.splitlines() == [
    f"error: stopped by SIGTERM: every process saved and exited (logs: {workdir}/process_<i>.log); "
    "rerun the same command to resume"
  ]
  assert not any(running(int((workdir / f"pid_{i}").read_text())) for i in range(2))


def test_launcher_succeeds_when_every_process_does(tmp_path):
  proc, _ = launch_fake(tmp_path)
  assert proc.returncode == 0 and proc.stderr == "", proc.stderr
  assert proc.stdout.splitlines()[-1] == f"all 2 processes finished (logs: {tmp_path}/run/process_<i>.log)"


def checkpoint_steps(workdir: str) -> list[int]:
  """The complete checkpoints' steps (Orbax renames a save's folder to its step number once it is complete)."""
  directory = os.path.join(workdir, "checkpoints")
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit()) if os.path.isdir(directory) else []


def wait_until(condition, timeout: float, what: str, launcher: subprocess.Popen) -> None:
  """Polls `condition` until it holds; fails naming `what` if the launcher ends first or `timeout` passes."""
  deadline = time.monotonic() + timeout
  while not condition():
    assert launcher.poll() is None, f"the launcher ended (exit {launcher.returncode}) before {what}"
    assert time.monotonic() < deadline, f"no {what} within {timeout} s"
    time.sleep(0.2)


@pytest.mark.slow  # two command-line processes, about a minute on two cores
def test_when_process_1_is_killed_process_0_stops_within_seconds_naming_it(tmp_path, data_dir):
  workdir = str(tmp_path / "pod")
  run_flags = main_command(
    workdir,
    data_dir,
    "--config.total_steps=100000",
    "--config.checkpoint.every_steps=2",
    "--config.log_every_steps=2",
  )[3:]
  # A grace period longer than the bound asserted below: the survivor must stop by itself, not be killed. A long
  # heartbeat keeps JAX's own detection (and abort) out of the way while process 1 is paused.
  launcher = subprocess.Popen(
    [sys.executable, LAUNCHER, "--grace_period=60", "--heartbeat_timeout=300", "--", *run_flags],
    cwd=REPO,
    env=cpu_env(),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  pids = []
  try:
    started = launcher.stdout.readline()
    assert started.startswith("started 2 processes, pids "), started
    pids = [int(pid) for pid in started.split("pids ")[1].split()]
    wait_until(lambda: checkpoint_steps(workdir), 600, "complete checkpoint", launcher)
    # Process 1 is paused first, so that the checkpoints stop changing (no save can finish without it), then
    # killed at a known state: the survivor must name the newest complete checkpoint.
    os.kill(pids[1], signal.SIGSTOP)
    seen, stable_since = checkpoint_steps(workdir), time.monotonic()
    while time.monotonic() - stable_since < 2:
      time.sleep(0.2)
      if checkpoint_steps(workdir) != seen:
        seen, stable_since = checkpoint_steps(workdir), time.monotonic()
    os.kill(pids[1], signal.SIGKILL)
    killed = time.monotonic()
    code = launcher.wait(timeout=120)
    seconds = time.monotonic() - killed
    print(f"the launcher exited {seconds:.2f} s after process 1 was killed")  # shown by pytest -s
    stderr = launcher.stderr.read()
  finally:
    for pid in pids:
      if running(pid):
        os.kill(pid, signal.SIGKILL)
    if launcher.poll() is None:
      launcher.kill()
      launcher.wait()

  with open(os.path.join(workdir, "process_0.log")) as f:
    log = f.read()
  errors = [line for line in log.splitlines() if line.startswith("error:")]
  assert code == 128 + signal.SIGKILL, stderr + log[-3000:]
  assert seconds < 10, f"the launcher exited {seconds:.1f} s after the kill"
  expected = (
    f"error: process 1 of 2 failed first (killed by SIGKILL; log: {workdir}/process_1.log); "
    "stopped the others (process 0: exit 75)"
  )
  assert stderr.splitlines() == [expected]
  assert len(errors) == 1 and errors[0].startswith("error: process 1 of 2 stopped (lost connection: "), log[-3000:]
  assert errors[0].endswith(
    f"; the last complete checkpoint is {workdir}/checkpoints/{seen[-1]}; rerun the same command to resume"
  )
  assert "Fatal Python error" not in log and "Check failure stack trace" not in log
  assert not any(running(pid) for pid in pids)
