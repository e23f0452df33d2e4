r"""Emulates a multi-host pod on one machine: starts N jaxgraphs processes on localhost, joined by
`jax.distributed` with CPU collectives, each with its own share of the (fake) devices.

  python launch/local_multiprocess.py --num_processes=2 --devices_per_process=2 -- \
      --config=configs/baseline_shapes.py --workdir=/tmp/jaxgraphs/pod2

Each process's output goes to <workdir>/process_<i>.log; the command fails if any process fails.
"""

import argparse
import os
import socket
import subprocess
import sys


def free_port() -> int:
  """An unused TCP port on localhost for the coordinator."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def main():
  """Parses the launcher's flags, starts the processes and waits for all of them."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument("--devices_per_process", type=int, default=1)
  parser.add_argument("--module", default="jaxgraphs.main")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="flags passed to every process (after --)")
  opts = parser.parse_args()
  args = [a for a in opts.args if a != "--"]
  workdir = next((a.split("=", 1)[1] for a in args if a.startswith("--workdir=")), ".")
  os.makedirs(workdir, exist_ok=True)
  address = f"127.0.0.1:{free_port()}"
  env = dict(
    os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={opts.devices_per_process}"
  )
  procs, logs = [], []
  for i in range(opts.num_processes):
    log = open(os.path.join(workdir, f"process_{i}.log"), "w")
    cmd = [
      sys.executable,
      "-m",
      opts.module,
      *args,
      f"--coordinator_address={address}",
      f"--num_processes={opts.num_processes}",
      f"--process_id={i}",
    ]
    procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    logs.append(log)
  codes = [p.wait() for p in procs]
  for log in logs:
    log.close()
  for i, code in enumerate(codes):
    print(f"process {i}: exit {code} (log: {os.path.join(workdir, f'process_{i}.log')})")
  sys.exit(max(codes, key=abs))


if __name__ == "__main__":
  main()
