"""fjffi kernels over dask arrays, on one machine or a ``distributed`` cluster.

    import fjffi.dask
    y = fjffi.dask.map_blocks("my_kernel", x, results=np.float64)

A kernel registered in the client does not exist in the workers' processes.
Every task therefore carries the KernelSpec of the target it calls and
registers it on first use (idempotent), and :class:`RegisterSpecs`, a
``distributed`` WorkerPlugin, registers specs in every worker up front,
including workers that join later, optionally shipping the libraries'
bytes to them.

dask and distributed are optional: this module imports without them and
says how to install them when one is needed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
import warnings
from dataclasses import replace

import numpy as np

import fjffi
from fjffi._spec import KernelSpec
from fjffi._spec import spec as spec_of

__all__ = ["HOLD_WARN_SECONDS", "RegisterSpecs", "map_blocks"]

INSTALL = "pip install 'dask[array]' distributed"

# A gil="hold" call longer than this inside a dask worker warns once per
# target and process: it blocks the worker's other threads, event loop
# included (heartbeats, transfers, client.run).
HOLD_WARN_SECONDS = 0.2

# Per process: library paths of the client mapped to their shipped copies
# here, and the names already warned about.
shipped_paths: dict[str, str] = {}
registered_here: set[KernelSpec] = set()
warned_hold: set[str] = set()
lock = threading.Lock()


def require_dask():
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(f"fjffi.dask needs dask: {INSTALL}") from exc
    return da


def map_blocks(name: str, *arrays, results, specs=None, **kwargs):
    """Run target name on matching blocks of dask arrays.

    arrays: dask arrays (or anything da.asarray takes) with the same chunks
    along every dimension, as for dask.array.map_blocks.
    results: the dtype of the output, or a list of dtypes for several
    outputs; each output block has the shape of the first array's block.
    Or a callable taking the input blocks and returning objects with
    ``.shape`` and ``.dtype``, one per output (output chunks must then be
    given with ``chunks=``).
    specs: KernelSpecs to register in the worker before the call; by default
    the spec of name in the client's default registry (fjffi.spec), when it
    is registered there.  Extra keyword arguments go to dask's map_blocks.

    Returns a dask array, or a tuple of them for several outputs.
    """
    da = require_dask()
    arrays = tuple(da.asarray(a) for a in arrays)
    if not arrays:
        raise ValueError("map_blocks needs at least one array")
    if specs is None:
        specs = (spec_of(name),) if name in fjffi.default_registry else ()
    specs = tuple(spec_of(s) if isinstance(s, str) else s for s in specs)
    for s in specs:
        if not isinstance(s, KernelSpec):
            raise TypeError(f"specs must be KernelSpecs or names, not {type(s).__name__}")
    dtypes = as_dtypes(results)
    if dtypes is None and not callable(results):
        raise TypeError(f"results must be a dtype, a list of dtypes or a callable, "
                        f"not {results!r}")
    n_outputs = None if dtypes is None else len(dtypes)
    task = BlockCall(name, dtypes, results if dtypes is None else None, specs)
    if n_outputs == 1:
        return da.map_blocks(task, *arrays, dtype=dtypes[0], **kwargs)
    # Several outputs: one task per block returns them all; each output is
    # then picked from it, so the kernel runs once per block.
    ndim = max(a.ndim for a in arrays)
    together = da.map_blocks(task, *arrays, dtype=object,
                             meta=np.empty((0,) * ndim, dtype=object), **kwargs)
    if n_outputs is None:
        return together
    return tuple(together.map_blocks(pick, i, dtype=dtypes[i]) for i in range(n_outputs))


def as_dtypes(results) -> list | None:
    """results as a list of dtypes, or None for a callable (np.float64 is
    both: a dtype first)."""
    try:
        if isinstance(results, (list, tuple)):
            return [np.dtype(r) for r in results]
        return [np.dtype(results)]
    except TypeError:
        return None


def pick(block, i):
    return block[i]


class BlockCall:
    """The task of map_blocks: register the specs, call the target on one
    block.  A plain class, so it pickles by reference to this module."""

    def __init__(self, name, dtypes, results, specs):
        self.name = name
        self.dtypes = dtypes
        self.results = results
        self.specs = specs

    def __call__(self, *blocks):
        for s in self.specs:
            if s not in registered_here:  # names are never removed: once is enough
                register_here(s)
                registered_here.add(s)
        if self.dtypes is not None:
            shape = np.shape(blocks[0])
            outputs = tuple(np.empty(shape, dt) for dt in self.dtypes)
        else:
            outputs = tuple(np.empty(r.shape, r.dtype) for r in self.results(*blocks))
        start = time.perf_counter()
        fjffi.Call(self.name).invoke(blocks, outputs)
        check_hold(self.name, time.perf_counter() - start)
        return outputs[0] if len(outputs) == 1 else outputs


def register_here(s: KernelSpec):
    """Register s in this process's default registry (idempotent), from
    the shipped copy of its library when there is one."""
    s = localize(s)
    try:
        return s.register()
    except OSError as exc:
        where = worker_address()
        raise OSError(
            f"{'worker ' + where if where else 'this process'} cannot register "
            f"{s.name!r}: {exc}; put the library at the same path on every worker, or ship "
            "it with fjffi.dask.RegisterSpecs(specs, ship_libraries=True)") from exc


def localize(s: KernelSpec) -> KernelSpec:
    if s.kind != "library":
        return s
    local = shipped_paths.get(s.path)
    if local is None and not os.path.exists(s.path):
        # Uploaded with client.upload_file: in the worker's local directory.
        folder = worker_directory()
        candidate = folder and os.path.join(folder, os.path.basename(s.path))
        if candidate and os.path.exists(candidate):
            local = candidate
    return s if local is None else replace(s, path=local)


def worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def worker_directory() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except (ImportError, ValueError):
        return None


def check_hold(name: str, seconds: float) -> None:
    if seconds < HOLD_WARN_SECONDS or name in warned_hold:
        return
    target = fjffi.default_registry.get(name)
    if target.gil != "hold" or worker_address() is None:
        return
    with lock:
        if name in warned_hold:
            return
        warned_hold.add(name)
    warnings.warn(
        f"fjffi target {name!r} holds the GIL (gil='hold') and a call took {seconds:.2f} s in "
        "a dask worker, blocking the worker's other threads and its event loop; register "
        "compute kernels with gil='release'",
        RuntimeWarning,
        stacklevel=2,
    )


def ship(path: str, data: bytes, digest: str) -> str:
    """Write a library's bytes under a folder named by their SHA-256 (once
    per machine), and return the copy's path."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"the shipped bytes of {path} do not match their digest")
    folder = os.path.join(tempfile.gettempdir(), "fjffi-libraries", digest)
    local = os.path.join(folder, os.path.basename(path))
    if not os.path.exists(local):
        os.makedirs(folder, exist_ok=True)
        # Write then rename: another worker may be loading the same copy.
        fd, temporary = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, local)
    return local


def plugin_base():
    try:
        from distributed.diagnostics.plugin import WorkerPlugin
    except ImportError:
        return object
    return WorkerPlugin


class RegisterSpecs(plugin_base()):
    """A distributed WorkerPlugin registering specs in every worker,
    including the ones that join later:

        client.register_plugin(fjffi.dask.RegisterSpecs([fjffi.spec("k")]))

    ship_libraries=True sends the bytes of every library spec along; each
    machine keeps one copy per content (named by its SHA-256) in its temp
    folder, and the workers load that copy, so the library need not exist
    at the same path there.
    """

    def __init__(self, specs, *, ship_libraries: bool = False):
        if plugin_base() is object:
            raise ImportError(f"fjffi.dask.RegisterSpecs needs distributed: {INSTALL}")
        specs = tuple(spec_of(s) if isinstance(s, str) else s for s in specs)
        self.specs = specs
        self.libraries = {}  # client path -> (sha256, bytes)
        if ship_libraries:
            for s in specs:
                if s.kind == "library" and s.path not in self.libraries:
                    with open(s.path, "rb") as f:
                        data = f.read()
                    self.libraries[s.path] = (hashlib.sha256(data).hexdigest(), data)
        digest = hashlib.sha256(repr((specs, sorted(
            (p, d) for p, (d, _) in self.libraries.items()))).encode()).hexdigest()
        # One plugin per set of specs: a plugin of the same name replaces it.
        self.name = f"fjffi-specs-{digest[:16]}"

    def setup(self, worker=None):
        for path, (digest, data) in self.libraries.items():
            local = ship(path, data, digest)
            with lock:
                shipped_paths[path] = local
        for s in self.specs:
            register_here(s)
