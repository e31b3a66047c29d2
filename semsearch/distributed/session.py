"""Reaching Ray: the optional import, the options of a build's cluster, and a session that
connects to a cluster (or starts a local Ray) for one build and disconnects after."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from semsearch.errors import ConfigError, IndexError_

INSTALL_HINT = "--engine ray needs Ray; install it with: pip install 'semsearch[distributed]'"
# documents a partition (= a shard): 10,000 sentences are ~15 MB of float32 vectors at 384 dims,
# small enough to redo after a crash, large enough that a shard's fixed costs stay small
PARTITION_DOCUMENTS = 10_000
# seconds to wait for a cluster address to answer before calling it unreachable
CONNECT_TIMEOUT = 10.0
# times a died worker is restarted, or a task retried, before the build fails
MAX_RETRIES = 3


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray build runs: the CLI's --address, --concurrency, --num-gpus."""

    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:10001": a cluster
    concurrency: int = 2  # encoder actors (each loads the model once)
    num_cpus: float = 1.0  # CPUs each actor reserves
    num_gpus: float = 0.0  # GPUs each actor reserves (0: encode on the CPU)
    partition_documents: int = PARTITION_DOCUMENTS  # documents a shard
    local_cpus: int | None = None  # CPUs a local Ray may use (None: all); tests pass 2
    object_store_memory: int | None = None  # bytes for a local Ray's object store (None: Ray's)


def require_ray():
    """The ray module, or a ConfigError saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (the `data` extra: pyarrow, pandas)
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(ray, options: RayOptions) -> Iterator[None]:
    """Connect to the cluster at options.address (or start a local Ray) for the build, and
    disconnect after; a Ray already initialised by the caller is used as it is."""
    if ray.is_initialized():
        yield
        return
    if options.address not in (None, "auto", "local"):
        _check_reachable(options.address)
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    try:
        if options.address is None:
            import semsearch

            # the workers import the same semsearch as this driver
            root = str(Path(semsearch.__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            ray.init(num_cpus=options.local_cpus, object_store_memory=options.object_store_memory,
                     runtime_env={"env_vars": {"PYTHONPATH": path}}, **quiet)
        else:
            ray.init(address=options.address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error)
        raise IndexError_(
            f"cannot start or reach Ray at {options.address or 'local'} ({detail}); check "
            "--address (auto, HOST:6379 or ray://HOST:10001), or leave it out for a local Ray"
        ) from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail fast, in one line, when nothing listens at HOST:PORT (Ray itself retries for
    minutes before giving up on a GCS address)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT; "
                          "e.g. --address ray://head-node:10001")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise IndexError_(
            f"cannot reach the Ray cluster at {address} ({error.strerror or error}); check that "
            "the head node is up (`ray status` there) and the address, or leave out --address "
            "for a local Ray") from None
