"""Dead peers in a multi-process run: every survivor stops within a second, with one `error:` line.

Without this, a process whose peer is killed sees a Gloo "connection reset" in its next collective, prints that,
then waits in `jax.distributed`'s shutdown barrier until the heartbeat timeout and aborts with a core-dump
message. Three layers replace that:

- A lifeline: every process keeps one TCP connection to process 0 (its port is passed through JAX's key-value
  store). The kernel closes a dead process's sockets, so the other end sees it at once, wherever its main thread
  is (inside a collective, compiling, saving). Process 0 tells the others which process it lost before stopping;
  the others see process 0's own death as their connection closing.
- The collective's error: an exception raised from `main` that names a lost connection (Gloo, the coordination
  service) stops the process the same way (an absl exception handler, so it runs before the command line prints
  the error), for processes whose lifeline could not be set up.
- Either way the process prints `error: process J of N stopped (lost connection: ...); the last complete checkpoint
  is <workdir>/checkpoints/<step>; rerun the same command to resume` and leaves with `os._exit(EXIT_PEER_LOST)`,
  skipping the shutdown barrier (which could only time out: the dead process never reaches it).

JAX's coordination service heartbeats remain the backstop for a peer that hangs or becomes unreachable without
dying (its sockets stay open): after `heartbeat_timeout_seconds` the service declares it dead and JAX aborts the
others. `timeouts_from_environment` gives jaxgraphs' values for those settings.

A process that ends normally, or with an error of its own, goes through the shutdown barrier as before: the
lifeline is disarmed at exit, before that barrier, so the others see nothing until they have reached it too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import selectors
import socket
import sys
import threading
import time

from absl import app, logging

from jaxgraphs.errors import ConfigError

# EX_TEMPFAIL, as for a preempted run: the remedy is the same, rerun the same command to resume.
EXIT_PEER_LOST = 75
HEARTBEAT_ENV, SHUTDOWN_ENV = "JAXGRAPHS_HEARTBEAT_TIMEOUT", "JAXGRAPHS_SHUTDOWN_TIMEOUT"
# JAX's defaults are 100 s and 300 s; these are shorter so that a hung or failed process stops the run sooner.
DEFAULT_HEARTBEAT_SECONDS, DEFAULT_SHUTDOWN_SECONDS = 10, 60
_PORT_KEY = "jaxgraphs/lifeline_port"
_PING_SECONDS = 5.0  # traffic on idle connections, so that no firewall or NAT drops them as stale
# Messages of errors that mean another process is gone (Gloo's TCP pairs, JAX's coordination service).
_LOST = re.compile(
  r"Gloo \w+ failed.*|.*(Connection reset by peer|Connection closed by peer|Broken pipe|heartbeat timeout"
  r"|stopped sending heartbeats|CoordinationServiceError).*"
)
_HEARTBEAT = re.compile(r"Task (\d+) heartbeat timeout")


def timeouts_from_environment() -> dict[str, int]:
  """`jax.distributed.initialize`'s heartbeat and shutdown timeouts from JAXGRAPHS_HEARTBEAT_TIMEOUT and
  JAXGRAPHS_SHUTDOWN_TIMEOUT (seconds), or jaxgraphs' defaults."""
  values = {}
  for name, key, default in (
    (HEARTBEAT_ENV, "heartbeat_timeout_seconds", DEFAULT_HEARTBEAT_SECONDS),
    (SHUTDOWN_ENV, "shutdown_timeout_seconds", DEFAULT_SHUTDOWN_SECONDS),
  ):
    text = os.environ.get(name, "").strip()
    if text and not (text.isdigit() and int(text) > 0):
      raise ConfigError(f"{name}={text}: expected a whole number of seconds above 0")
    values[key] = int(text) if text else default
  return values


def lost_connection(error: BaseException) -> str | None:
  """The sentence of `error` (or of an error it wraps) that says a connection to another process was lost."""
  seen = 0
  while error is not None and seen < 8:
    for line in str(error).splitlines():
      for sentence in line.split(". "):
        if _LOST.search(sentence):
          # From the collective's own words (a wrapping error's, e.g. a failed save's, come before them) to the
          # end of its clause.
          sentence = sentence[max(sentence.find("Gloo "), 0) :].split("; ")[0].split(" [type.googleapis.com")[0]
          return " ".join(sentence.split())[:240]
    error, seen = error.__cause__ or error.__context__, seen + 1
  return None


def last_checkpoint_words(workdir: str, training: bool) -> str:
  """The end of the error line: the newest complete checkpoint (a step folder) of `workdir` and what to do."""
  if not training:
    return "rerun the same command"
  from jaxgraphs.training import run_dirs

  directory = run_dirs.join(run_dirs.absolute(workdir), "checkpoints")
  try:
    steps = run_dirs.complete_steps(directory)
  except OSError:
    steps = []
  if not steps:
    return f"no checkpoint was complete yet in {directory}; rerun the same command to start again"
  return f"the last complete checkpoint is {directory}/{steps[-1]}; rerun the same command to resume"


class _Watch:
  """The lifeline of one process, and the one place that stops it when a peer is lost."""

  def __init__(self, client, coordinator_address: str, process_id: int, num_processes: int, words):
    self.client, self.process_id, self.num_processes = client, process_id, num_processes
    self.coordinator_host = coordinator_address.rsplit(":", 1)[0].strip("[]")
    self.words = words  # () -> the error line's end, read when stopping (the newest checkpoint then)
    self.armed = True
    self.connected = threading.Event()  # the lifeline is up (a peer: to process 0; process 0: listening)
    self._lock = threading.Lock()
    self._peers: dict[socket.socket, int | None] = {}  # process 0: connection -> process id once it said hello

  def disarm(self) -> None:
    """Called at exit, before JAX's shutdown barrier: from now on a closing connection is a normal exit."""
    with self._lock:
      self.armed = False

  def stop(self, lost: int | None, detail: str) -> None:
    """Prints the one error line and ends the process at once (no shutdown barrier); the first caller wins."""
    with self._lock:  # a second caller blocks here until the first one's os._exit
      if not self.armed:
        return
      if self.process_id == 0 and lost is not None:
        self._tell_others(f"lost {lost}\n", but=lost)
      who = f"process {lost} of {self.num_processes}" if lost is not None else f"another of the {self.num_processes}"
      line = f"error: {who} stopped (lost connection: {detail}); {self.words()}\n"
      for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream must not keep the process alive
          stream.flush()
      os.write(2, line.encode("utf-8", "replace"))
      os._exit(EXIT_PEER_LOST)

  # ---- the lifeline thread ------------------------------------------------------------------------
  def run(self) -> None:
    """Sets up the lifeline and watches it until the process ends; a failed set-up only logs a warning."""
    try:
      if self.process_id == 0:
        self._serve()
      else:
        self._follow()
    except Exception as error:  # noqa: BLE001 (the run goes on, relying on the collectives' errors)
      if self.armed:
        logging.warning(
          "No lifeline to the other processes (%s: %s): a dead process is then noticed at the next collective, "
          "or after the heartbeat timeout",
          type(error).__name__,
          error,
        )

  def _serve(self) -> None:
    """Process 0: accepts one connection per peer and stops when one of them closes."""
    if socket.has_dualstack_ipv6():
      server = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
      server = socket.create_server(("", 0))
    self.client.key_value_set(_PORT_KEY, str(server.getsockname()[1]))
    self.connected.set()
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytes] = {}
    next_ping = time.monotonic() + _PING_SECONDS
    while True:
      for key, _ in selector.select(timeout=_PING_SECONDS):
        if key.fileobj is server:
          conn, _ = server.accept()
          conn.settimeout(_PING_SECONDS)
          self._peers[conn], buffers[conn] = None, b""
          selector.register(conn, selectors.EVENT_READ)
          continue
        conn = key.fileobj
        data = _receive(conn)
        if not data:
          lost = self._peers.pop(conn)
          selector.unregister(conn)
          if lost is not None and self.armed:
            self.stop(lost, "its socket to process 0 closed")
          continue
        buffers[conn] += data
        *lines, buffers[conn] = buffers[conn].split(b"\n")
        for line in lines:
          if line.startswith(b"hello ") and line[6:].isdigit():
            self._peers[conn] = int(line[6:])
      if time.monotonic() >= next_ping:
        self._tell_others("ping\n")
        next_ping = time.monotonic() + _PING_SECONDS

  def _follow(self) -> None:
    """Another process: connects to process 0, then stops when process 0 reports a loss or goes away."""
    port = int(self.client.blocking_key_value_get(_PORT_KEY, 120_000))
    conn = socket.create_connection((self.coordinator_host, port), timeout=30)
    conn.settimeout(_PING_SECONDS)
    conn.sendall(f"hello {self.process_id}\n".encode())
    self.connected.set()
    buffer = b""
    while True:
      readable, _, _ = select.select([conn], [], [], _PING_SECONDS)
      if not readable:
        if _send(conn, "ping\n"):
          continue
        data = b""
      else:
        data = _receive(conn)
      if not data:
        if self.armed:
          self.stop(0, "the socket to process 0 closed")
        return
      buffer += data
      *lines, buffer = buffer.split(b"\n")
      for line in lines:
        if line.startswith(b"lost ") and line[5:].isdigit():
          self.stop(int(line[5:]), "process 0 saw its socket close")

  def _tell_others(self, message: str, but: int | None = None) -> None:
    """Process 0: sends `message` to every connected peer except process `but` (best effort)."""
    for conn, process in list(self._peers.items()):
      if process is not None and process != but:
        _send(conn, message)


def _receive(conn: socket.socket) -> bytes:
  """Up to 4 KiB from `conn`; b'' when it was closed or reset (both mean the other process is gone)."""
  try:
    return conn.recv(4096)
  except OSError:
    return b""


def _send(conn: socket.socket, message: str) -> bool:
  """Sends `message`; False when the connection is gone."""
  try:
    conn.sendall(message.encode())
    return True
  except OSError:
    return False


class _LostPeerHandler(app.ExceptionHandler):
  """absl calls this with an exception raised from `main`, before the command line prints it."""

  def __init__(self, watch: _Watch):
    self.watch = watch

  def wants(self, exception: Exception) -> bool:
    """Only errors that say a connection to another process was lost."""
    return lost_connection(exception) is not None

  def handle(self, exception: Exception) -> None:
    """Stops naming the other process (two processes) or, with more, the one the lifeline names."""
    detail = lost_connection(exception)
    named = _HEARTBEAT.search(detail)
    if self.watch.num_processes == 2:
      lost = 1 - self.watch.process_id
    elif named:
      lost = int(named.group(1))
    else:
      # The lifeline knows which process ended; give it a moment to say so (it ends this process when it does).
      time.sleep(2.0 if self.watch.connected.is_set() else 0.0)
      lost = None
    self.watch.stop(lost, detail)


def watch(workdir: str, training: bool) -> _Watch | None:
  """Arms the dead-peer watch of this process of a multi-process run (after `jax.distributed.initialize`)."""
  from jax._src import distributed

  state = distributed.global_state
  if state.client is None or (state.num_processes or 1) < 2:
    return None
  watch = _Watch(
    state.client,
    state.coordinator_address,
    state.process_id,
    state.num_processes,
    lambda: last_checkpoint_words(workdir, training),
  )
  # Registered after JAX's own exit hook, so it runs before JAX's shutdown barrier.
  atexit.register(watch.disarm)
  app.install_exception_handler(_LostPeerHandler(watch))
  threading.Thread(target=watch.run, name="jaxgraphs-lifeline", daemon=True).start()
  return watch
