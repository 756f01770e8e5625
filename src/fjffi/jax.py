"""Call fjffi targets from JAX, inside or outside ``jax.jit``.

``fjffi.jax.call(name, *args, results=...)`` emits one XLA custom call to
fjffi's own handler (the C extension ``fjffi._jax_handler``), with the
target's *name* as an attribute.  On every execution the handler resolves
the name through the registry and runs it with the contract of
``fjffi.Call.invoke``: validated descriptors, outputs zeroed before the
call and after a failure, ``thread_safe=False`` targets serialised, the
kernel's code and message in the error.  No address is compiled into the
program: a re-registered name is what runs, and ``jax.export`` works.

Targets that need the GIL (Python callbacks and ``gil="hold"`` kernels)
run through ``jax.pure_callback`` (``io_callback(ordered=True)`` for an io
callback), so the handler never waits for the GIL.

Transforms fail closed: ``grad``, ``jvp`` and ``vjp`` raise
:class:`fjffi.errors.TransformError`, and so does ``vmap`` unless the target
declared how it batches (``vmap=`` here, or :func:`declare_vmap`):
``"sequential"`` runs the kernel once per batch element, so the kernel never
sees a batched shape; ``"elementwise"`` hands it the whole batch at once,
every input broadcast to the batch.

This module imports without JAX; using it then says how to install it.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np

import fjffi
from fjffi.errors import TransformError, UnsupportedDtypeError

try:
    import jax
    import jax.numpy as jnp
    from jax.custom_batching import custom_vmap
    from jax.experimental import io_callback
except ImportError:  # fjffi works without jax; only this module needs it
    jax = None

__all__ = ["call", "declare_vmap", "export_checks", "register_handler", "TransformError",
           "HANDLER_NAME", "VMAP_METHODS"]

# The XLA custom call target of fjffi's handler.
HANDLER_NAME = "fjffi_call"
VMAP_METHODS = ("sequential", "elementwise")

# The dtypes fjffi has (fjffi.h's table), by numpy name.
_DTYPES = frozenset(fjffi._core.DTYPE_NAMES)

_lock = threading.Lock()
_registered = False
_declared: dict[tuple[int, str], str] = {}


def _require_jax():
    if jax is None:
        raise ImportError("fjffi.jax needs JAX: pip install jax")


def register_handler():
    """Register fjffi's XLA handler with JAX (CPU), once per process.

    Called by :func:`call`; call it yourself before running a program
    deserialised with ``jax.export`` in a process that never traced one.
    """
    global _registered
    _require_jax()
    with _lock:
        if _registered:
            return
        from fjffi import _jax_handler

        capsule = jax.ffi.pycapsule(ctypes.c_void_p(_jax_handler.handler_address()))
        jax.ffi.register_ffi_target(HANDLER_NAME, capsule, platform="cpu")
        _registered = True


def export_checks():
    """The ``disabled_checks`` that ``jax.export.export`` needs for programs
    calling fjffi targets: its custom call is not one of JAX's own."""
    _require_jax()
    return [jax.export.DisabledSafetyCheck.custom_call(HANDLER_NAME)]


def declare_vmap(name, how, *, registry=None):
    """Declare how target name batches under jax.vmap: "sequential" (one
    call per batch element) or "elementwise" (the kernel gets the batch),
    or None to withdraw a declaration (vmap then raises)."""
    if how is not None and how not in VMAP_METHODS:
        raise ValueError(f"vmap must be one of {VMAP_METHODS} or None, not {how!r}")
    key = (id(_registry(registry)), name)
    with _lock:
        if how is None:
            _declared.pop(key, None)
        else:
            _declared[key] = how


def _registry(registry):
    return fjffi.default_registry if registry is None else registry


def _spec(obj, what):
    try:
        shape, dtype = tuple(int(d) for d in obj.shape), np.dtype(obj.dtype)
    except (AttributeError, TypeError) as exc:
        raise TypeError(f"{what} must have .shape and .dtype (an array or "
                        f"jax.ShapeDtypeStruct), not {type(obj).__name__}") from exc
    if dtype.name not in _DTYPES:
        raise UnsupportedDtypeError(dtype, f"{what}: fjffi has no such dtype")
    return shape, dtype


def call(name, *args, results, registry=None, vmap=None):
    """Call target name on args (arrays or scalars) from JAX.

    results: one object with ``.shape`` and ``.dtype`` (a
    ``jax.ShapeDtypeStruct`` or an array), giving one array, or a tuple or
    list of them, giving a tuple.  vmap: "sequential" or "elementwise" for
    this call (default: the target's declare_vmap, else vmap raises).
    """
    _require_jax()
    if type(name) is not str:
        raise TypeError(f"a target name must be a str, not {type(name).__name__}")
    if vmap is not None and vmap not in VMAP_METHODS:
        raise ValueError(f"vmap must be one of {VMAP_METHODS} or None, not {vmap!r}")
    reg = _registry(registry)
    target = reg.get(name)  # TargetNotFoundError now, at trace time
    single = not isinstance(results, (tuple, list))
    specs = tuple(_spec(r, f"result {i}")
                  for i, r in enumerate([results] if single else results))
    args = tuple(jnp.asarray(a) for a in args)
    for i, a in enumerate(args):
        _spec(a, f"{name}: input {i}")
    if vmap is None:
        vmap = _declared.get((id(reg), name))
    if target.kind == "callback" or target.gil == "hold":
        route = "io" if getattr(target, "flavor", None) == "io" else "pure"
    else:
        route = "handler"
    register_handler()
    from fjffi import _jax_handler

    fn = _build(name, _jax_handler.registry_index(reg), reg if registry is not None else None,
                specs, vmap, route)
    out = fn(*args)
    return out[0] if single else tuple(out)


@functools.lru_cache(maxsize=1024)
def _build(name, reg_index, registry, specs, vmap, route):
    """The jax function for one target, results and batching: a custom
    call (or callback) behind a jvp rule and a vmap rule that refuse."""
    avals = [jax.ShapeDtypeStruct(s, d) for s, d in specs]

    def emit(*args, avals=avals, vmap=vmap):
        if route == "handler":
            method = {"sequential": "sequential", "elementwise": "broadcast_all"}.get(vmap)
            f = jax.ffi.ffi_call(HANDLER_NAME, avals, vmap_method=method)
            return f(*args, fjffi_target=name, fjffi_registry=np.int64(reg_index))

        in_ndims = [np.ndim(a) for a in args]

        def host(*arrays):
            # Under vmap="elementwise" the arrays carry leading batch
            # dimensions, and so must the results.
            batch = ()
            if arrays and np.ndim(arrays[0]) > in_ndims[0]:
                batch = np.shape(arrays[0])[:np.ndim(arrays[0]) - in_ndims[0]]
            outs = [jax.ShapeDtypeStruct(batch + tuple(a.shape), a.dtype) for a in avals]
            return fjffi.call(name, [np.asarray(a) for a in arrays], outs, registry=registry)

        if route == "io":
            return io_callback(host, avals, *args, ordered=True)
        method = {"sequential": "sequential", "elementwise": "broadcast_all"}.get(vmap)
        return jax.pure_callback(host, avals, *args, vmap_method=method)

    if vmap is None:
        inner = custom_vmap(emit)

        @inner.def_vmap
        def refuse_vmap(axis_size, in_batched, *args):
            raise TransformError(
                name, "jax.vmap",
                "it did not declare how it batches; pass vmap='sequential' (one call per "
                "batch element) or vmap='elementwise' (the kernel gets the whole batch) "
                "to fjffi.jax.call, or use fjffi.jax.declare_vmap")
    else:
        inner = emit

    @jax.custom_jvp
    def f(*args):
        return tuple(inner(*args))

    @f.defjvp
    def refuse_jvp(primals, tangents):
        raise TransformError(name, "differentiation (jax.grad, jax.jvp, jax.vjp)",
                             "a foreign kernel is opaque to transforms; wrap it in "
                             "jax.custom_jvp or jax.custom_vjp with your own rule")

    return f
