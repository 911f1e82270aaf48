"""Several processes, one run: JAX's own multi-process runtime for ``jaxcnn train``.

Each process runs the same command with its own process id. ``initialize`` starts
``jax.distributed`` (before JAX's backend): process 0 hosts the coordination service at
``HOST:PORT``, every process connects to it, and ``jax.devices()`` becomes the devices of
all processes. The run shards the seed axis (or, for one seed, the mini-batch axis) over
that global mesh (``train.Placement``); on a CPU the processes exchange data through
Gloo over TCP. After every compiled chunk the metrics of all seeds are gathered to every
process (``gather``), so that each one applies the same divergence rules and stops at
the same step; only process 0 prints and writes the run folder.

Failures end every process within bounded time:

* an error a user can fix, in any process, before training starts (a missing data
  file, an unusable ``--out``) is exchanged before the first collective (``agree``):
  every process stops with one line naming the process that failed and its message;
* a later error in process 0's callbacks (a full disk while saving a checkpoint) is
  carried to the others with the next chunk's metrics (``train.train``);
* settings that differ between the processes (a flag, the data) are refused in every
  process alike, naming the first that differs (``compare``, after ``agree``);
* SIGINT, SIGTERM and SIGHUP end the process that gets them as in a one-process run
  (one line, 130/143/129); its peers then stop as for a process that died;
* a process that dies (killed, crashed) breaks its peers' next collective, which raises
  at once; they stop with one line. When process 0, which hosts the coordination
  service, dies, JAX's runtime ends the others at once (exit 134); its C++ log (and
  that of a process that never connects, after ``INIT_TIMEOUT_S``) becomes one line
  (``native_log``).

``jax_enable_recoverability`` is set so that a departed process other than 0 is an
error in its peers' collectives rather than an immediate abort.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from jaxcnn.errors import ConfigError, JaxcnnError

MESSAGE_BYTES = 1024  # an error message exchanged by ``agree``, UTF-8, truncated
INIT_TIMEOUT_S = 60  # waiting for every process to connect
HEARTBEAT_TIMEOUT_S = 10  # a silent process counts as dead after this long
SHUTDOWN_TIMEOUT_S = 30


class PeerError(JaxcnnError):
    """Another process of a multi-process run failed; this one stops too."""


@dataclass(frozen=True)
class Settings:
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False  # JAX's cluster auto-detection (SLURM, Open MPI, Kubernetes, ...)

    @property
    def requested(self) -> bool:
        return (self.auto or self.coordinator is not None or self.num_processes is not None
                or self.process_id is not None)


def settings_from(coordinator: str | None, num_processes: int | None,
                  process_id: int | None, auto: bool = False) -> Settings:
    """The flags, else JAX's own ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID``, which jaxcnn reads beside it); checked, ``ConfigError``."""
    env = os.environ
    if coordinator is None and env.get("JAX_COORDINATOR_ADDRESS"):
        coordinator = env["JAX_COORDINATOR_ADDRESS"]
        auto = True
    try:
        if num_processes is None and env.get("JAX_NUM_PROCESSES"):
            num_processes = int(env["JAX_NUM_PROCESSES"])
        if process_id is None and env.get("JAX_PROCESS_ID"):
            process_id = int(env["JAX_PROCESS_ID"])
    except ValueError:
        raise ConfigError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers") from None
    settings = Settings(coordinator, num_processes, process_id, auto)
    if not settings.requested:
        return settings
    if coordinator is not None:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    if not auto and None in (coordinator, num_processes, process_id):
        raise ConfigError("a multi-process run needs --coordinator HOST:PORT, "
                          "--num-processes N and --process-id I (or --distributed, for "
                          "JAX's cluster auto-detection)")
    if num_processes is not None and num_processes < 1:
        raise ConfigError("--num-processes must be at least 1")
    if process_id is not None and num_processes is not None and not (
            0 <= process_id < num_processes):
        raise ConfigError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    return settings


def initialize(settings: Settings) -> bool:
    """Start JAX's multi-process runtime (before anything touches JAX's backend).

    Returns whether it runs (False without settings, or for ``--num-processes 1``).
    A coordinator that cannot be reached is a ``ConfigError`` (one line)."""
    if not settings.requested or settings.num_processes == 1:
        return False
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_enable_recoverability", True)
    jax.config.update("jax_enable_preemption_service", False)  # it took SIGTERM over
    from jaxcnn.training import native_log

    native_log.filter_stderr("jaxcnn train", INIT_TIMEOUT_S)  # one line, not C++'s log
    try:
        jax.distributed.initialize(
            settings.coordinator, settings.num_processes, settings.process_id,
            initialization_timeout=INIT_TIMEOUT_S,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
            shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot start the multi-process run (coordinator "
                          f"{settings.coordinator or 'auto-detected'}): {first[:300]}") from None
    # JAX's preemption notifier took SIGTERM over in C++ (a SIGTERM was then ignored and
    # the run trained on): SIGINT, SIGTERM and SIGHUP act as in a single-process run
    from jaxcnn import interrupts

    interrupts.install("train")
    return True


def active() -> bool:
    import jax

    return jax.process_count() > 1


def process_index() -> int:
    import jax

    return jax.process_index()


def gather(tree):
    """Every leaf as a NumPy array holding the global value, on every process (a
    collective: all processes must call it). Single process: ``np.asarray``."""
    import jax

    if not active():
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    try:
        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    except (RuntimeError, ValueError) as exc:  # a peer is gone: Gloo's connection closed
        raise PeerError(f"another process of this run stopped or failed ({_first_line(exc)}); "
                        "see its output") from None


@contextlib.contextmanager
def _native_stdout_silenced():
    """File descriptor 1 points at /dev/null meanwhile: what C++ code (Gloo connecting
    its peers at the first collective) prints there never reaches the terminal."""
    import sys

    try:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        yield
        return
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def agree(error: BaseException | None) -> None:
    """Exchange each process's status (a collective). Raises ``PeerError`` naming the
    first process that failed when another did; returns when all are well (a process
    that failed itself raises its own error afterwards)."""
    if not active():
        return
    message = np.zeros(MESSAGE_BYTES, np.uint8)
    if error is not None:
        text = (str(error) or type(error).__name__).encode()[:MESSAGE_BYTES - 1]
        message[:len(text)] = np.frombuffer(text, np.uint8)
        message[-1] = 1
    with _native_stdout_silenced():  # Gloo prints "[Gloo] Rank 0 is connected ..." here
        everyone = gather(message[None])  # (processes, MESSAGE_BYTES)
    me = process_index()
    for index, row in enumerate(everyone):
        if row[-1] and index != me:
            text = bytes(row[:-1]).rstrip(b"\0").decode(errors="replace")
            if error is None:
                raise PeerError(f"process {index} of this run failed: {text}")
            return


SETTINGS_BYTES = 8192  # the settings exchanged by ``compare``, as UTF-8 JSON


def compare(values: dict, names: dict | None = None) -> None:
    """Check that every process runs with the same ``values`` (a collective; JSON-able
    settings: the training config, the data's sha256, what a run resumes). Exchanges a
    sha256 of them; only when they differ, the values themselves, to say which. Raises
    ``ConfigError`` in every process alike, naming the first differing key (shown as
    ``names[key]``, e.g. its flag) and its values in process 0 and in the other one."""
    import hashlib
    import json

    if not active():
        return
    text = json.dumps(values, sort_keys=True, default=str).encode()
    digest = np.frombuffer(hashlib.sha256(text).digest(), np.uint8)
    digests = gather(digest[None])
    if (digests == digests[0]).all():
        return
    buffer = np.zeros(SETTINGS_BYTES, np.uint8)
    text = text[:SETTINGS_BYTES]
    buffer[:len(text)] = np.frombuffer(text, np.uint8)
    rows = gather(buffer[None])

    def decoded(row) -> dict:
        try:
            return json.loads(bytes(row).rstrip(b"\0").decode())
        except ValueError:  # cut at SETTINGS_BYTES: still says they differ
            return {"settings": bytes(row).rstrip(b"\0").decode(errors="replace")}

    first = decoded(rows[0])
    for index in range(1, len(rows)):
        other = decoded(rows[index])
        for key in sorted(set(first) | set(other)):
            if first.get(key) != other.get(key):
                name = (names or {}).get(key, key)
                raise ConfigError(
                    f"the processes of this run were not given the same settings: {name} is "
                    f"{first.get(key)!r} in process 0 but {other.get(key)!r} in process "
                    f"{index}; start every process with the same flags and data (only "
                    "--process-id, --out and --cpu-devices may differ)")
    raise ConfigError("the processes of this run were not given the same settings; start "
                      "every process with the same flags and data")


def any_failed(failed: bool) -> bool:
    """Whether any process reports ``failed`` (a collective)."""
    if not active():
        return failed
    return bool(gather(np.array([failed], np.bool_)).any())


def shutdown() -> None:
    """Leave the run together: a barrier, then only process 0 shuts JAX's runtime down.

    JAX's own shutdown does not wait for recoverable processes, so a client whose
    disconnect reached process 0's coordination service after it had stopped aborted
    (SIGABRT, in about 1 run of 5). The other processes leave at the barrier instead:
    their process ends right after (``jaxcnn._program`` exits without teardown).
    Errors here (a peer already gone) are ignored."""
    import jax
    from jax.experimental import multihost_utils

    try:
        multihost_utils.sync_global_devices("jaxcnn: end of run")
    except Exception:  # noqa: BLE001 - a peer is gone: leave anyway
        pass
    if jax.process_index() != 0:
        return
    try:
        jax.distributed.shutdown()
    except Exception:  # noqa: BLE001 - leaving anyway
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
