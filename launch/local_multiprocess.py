r"""Emulates a multi-host pod on one machine: starts N jaxgraphs processes on localhost, joined by
`jax.distributed` with CPU collectives, each with its own share of the (fake) devices.

  python launch/local_multiprocess.py --num_processes=2 --devices_per_process=2 -- \
      --config=configs/baseline_shapes.py --workdir=/tmp/jaxgraphs/pod2

Each process's output goes to <workdir>/process_<i>.log. The launcher prints the processes' ids, then one line at
the end. When a process fails (exits non-zero or is killed), the launcher stops the others (SIGTERM, then SIGKILL
after --grace_period seconds), prints which process failed first and exits with that process's code (128+N for a
process killed by signal N, as shells report it; e.g. 137 for SIGKILL). "First" ignores the processes that exited
75 because they lost a peer, unless all of them did.

Dead peers: when a process dies, every other one notices at once (a socket to process 0, and the error of its
next collective), prints `error: process J of N stopped (lost connection: ...); the last complete checkpoint is
<workdir>/checkpoints/<step>; rerun the same command to resume` in its log and exits 75 within about a second,
without waiting in `jax.distributed`'s shutdown barrier. Rerunning the same command resumes from that checkpoint.
Two timeouts of `jax.distributed.initialize` remain, passed to the processes as environment variables:
  --heartbeat_timeout (JAXGRAPHS_HEARTBEAT_TIMEOUT, default 10 s; JAX's is 100 s): a process whose heartbeats stop
    this long (frozen, unreachable: its sockets stay open, so nothing above notices) is declared dead by JAX's
    coordination service, which aborts the others with its own message (SIGABRT) some seconds later.
  --shutdown_timeout (JAXGRAPHS_SHUTDOWN_TIMEOUT, default 60 s; JAX's is 300 s): how long a process that ends waits
    for the others at the shutdown barrier. A process that fails alone (an error on that process only) prints its
    error line and waits there while the others wait for it in a collective; after this long JAX aborts them all.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

EXIT_PEER_LOST = 75  # jaxgraphs.training.peers.EXIT_PEER_LOST (not imported: the launcher needs no JAX)


PREEMPTED_WAIT = 120.0  # seconds the processes get to save and shut down after a forwarded SIGTERM


def free_port() -> int:
  """An unused TCP port on localhost for the coordinator."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def describe(code: int) -> str:
  """A child's exit status in words: 'exit 3' or 'killed by SIGKILL'."""
  if code < 0:
    try:
      return f"killed by {signal.Signals(-code).name}"
    except ValueError:
      return f"killed by signal {-code}"
  return f"exit {code}"


def shell_code(code: int) -> int:
  """The exit code a shell would report for a child's status (128+N for signal N)."""
  return 128 - code if code < 0 else code


def first_failure(codes: list[int | None]) -> int | None:
  """Among the processes that have failed so far, the one that caused the others to stop (see the docstring)."""
  failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
  causes = [i for i in failed if codes[i] != EXIT_PEER_LOST]
  return (causes or failed or [None])[0]


def stop(procs: list[subprocess.Popen], grace_period: float) -> None:
  """SIGTERM to the processes still running, then SIGKILL to those still there after `grace_period` seconds."""
  for p in procs:
    if p.poll() is None:
      p.terminate()
  deadline = time.monotonic() + grace_period
  while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
    time.sleep(0.05)
  for p in procs:
    if p.poll() is None:
      p.kill()
  for p in procs:
    p.wait()


def wait_for(
  procs: list[subprocess.Popen], grace_period: float, preempted: list | None = None
) -> tuple[list[int], int | None]:
  """Waits for every process; when one fails, stops the others. Returns the exit codes and the first failure.

  After a forwarded SIGTERM (`preempted` non-empty) every process saves and exits 75 by itself, each at its own
  pace through JAX's shutdown: they are given PREEMPTED_WAIT seconds before being stopped."""
  while True:
    codes = [p.poll() for p in procs]
    if preempted and any(code is None for code in codes) and time.monotonic() < preempted[0] + PREEMPTED_WAIT:
      time.sleep(0.1)
      continue
    first = first_failure(codes)
    if first is not None:
      # A process that lost a peer ended after its cause: poll again (for up to a second) to see the cause too.
      deadline = time.monotonic() + 1.0
      while codes[first] == EXIT_PEER_LOST and time.monotonic() < deadline:
        time.sleep(0.05)
        codes = [p.poll() for p in procs]
        first = first_failure(codes)
      # The peers of a dead process stop by themselves within a second or so; the grace period covers the rest.
      stop(procs, grace_period)
      return [p.wait() for p in procs], first
    if all(code == 0 for code in codes):
      return codes, None
    time.sleep(0.1)


def main():
  """Parses the launcher's flags, starts the processes and waits for all of them."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument("--devices_per_process", type=int, default=1)
  parser.add_argument("--module", default="jaxgraphs.main")
  parser.add_argument("--grace_period", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
  parser.add_argument("--heartbeat_timeout", type=int, default=None, help="seconds (JAXGRAPHS_HEARTBEAT_TIMEOUT)")
  parser.add_argument("--shutdown_timeout", type=int, default=None, help="seconds (JAXGRAPHS_SHUTDOWN_TIMEOUT)")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="flags passed to every process (after --)")
  opts = parser.parse_args()
  args = [a for a in opts.args if a != "--"]
  workdir = next((a.split("=", 1)[1] for a in args if a.startswith("--workdir=")), ".")
  os.makedirs(workdir, exist_ok=True)
  address = f"127.0.0.1:{free_port()}"
  env = dict(
    os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={opts.devices_per_process}"
  )
  if opts.heartbeat_timeout is not None:
    env["JAXGRAPHS_HEARTBEAT_TIMEOUT"] = str(opts.heartbeat_timeout)
  if opts.shutdown_timeout is not None:
    env["JAXGRAPHS_SHUTDOWN_TIMEOUT"] = str(opts.shutdown_timeout)
  log_path = lambda i: os.path.join(workdir, f"process_{i}.log")
  procs = []
  try:
    for i in range(opts.num_processes):
      cmd = [
        sys.executable,
        "-m",
        opts.module,
        *args,
        f"--coordinator_address={address}",
        f"--num_processes={opts.num_processes}",
        f"--process_id={i}",
      ]
      with open(log_path(i), "w") as log:
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    print(f"started {opts.num_processes} processes, pids {' '.join(str(p.pid) for p in procs)}", flush=True)
    preempted = []

    def forward_sigterm(signum, frame):
      # A scheduler preempting the launcher: every process gets the notice, saves at the same step and exits 75.
      preempted.append(time.monotonic())
      for p in procs:
        if p.poll() is None:
          p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_sigterm)
    codes, first = wait_for(procs, opts.grace_period, preempted)
  except KeyboardInterrupt:
    stop(procs, opts.grace_period)
    print("error: interrupted (Ctrl-C); stopped every process", file=sys.stderr, flush=True)
    sys.exit(130)
  logs = log_path("<i>")
  if preempted and all(code == EXIT_PEER_LOST for code in codes):
    print(
      f"error: stopped by SIGTERM: every process saved and exited (logs: {logs}); rerun the same command to resume",
      file=sys.stderr,
      flush=True,
    )
    sys.exit(EXIT_PEER_LOST)
  if first is None:
    print(f"all {opts.num_processes} processes finished (logs: {logs})")
    return
  others = ", ".join(f"process {i}: {describe(code)}" for i, code in enumerate(codes) if i != first)
  print(
    f"error: process {first} of {opts.num_processes} failed first ({describe(codes[first])}; log: {log_path(first)}); "
    f"stopped the others ({others})",
    file=sys.stderr,
    flush=True,
  )
  sys.exit(shell_code(codes[first]))


if __name__ == "__main__":
  main()
