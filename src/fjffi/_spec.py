"""Registrations that travel: a picklable description of a target, and its replay.

A Target record holds live objects (a ctypes function, a cffi cdata, a
capsule, a Python callable), none of which pickles.  A KernelSpec says
instead where the kernel comes from, so another process (a worker, a dask
task, an isolated runner) can register the same kernel under the same name.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import os
import pickle
import sys
from dataclasses import dataclass, field, replace

from fjffi._callbacks import FLAVORS, PurityConfig
from fjffi._targets import foreign_address
from fjffi.errors import DuplicateTargetError

__all__ = ["KernelSpec", "spec"]

KINDS = ("library", "builtin", "module", "callback")
GIL_POLICIES = ("release", "hold", "auto")

# ctypes prototypes of the two ABIs of fjffi.h, for a replayed library symbol.
RAW_ARGS = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t)
ARGTYPES = {0: RAW_ARGS, 1: RAW_ARGS + (ctypes.c_void_p,)}


@dataclass(frozen=True)
class KernelSpec:
    """A picklable description of one registration, replayed by register().

    Build one with a ``for_*`` constructor, or from a registered target with
    ``fjffi.spec(name)``.  Fields by kind:

    - "library": ``path`` (absolute) and ``symbol`` of a shared library
      function, ``api_version``, ``gil``, ``thread_safe``.
    - "builtin": the name of a kernel built into fjffi.
    - "module": ``module``, an importable module, and ``attribute``, a
      PyCapsule in it holding the function pointer (with ``api_version``,
      ``gil``, ``thread_safe``); or ``attribute=None`` for a module that
      registers its kernels in the default registry when imported.
    - "callback": ``function``, the pickled Python callable, ``flavor`` and
      ``purity``.
    """

    kind: str
    name: str
    path: str | None = None
    symbol: str | None = None
    module: str | None = None
    attribute: str | None = None
    function: bytes | None = field(default=None, repr=False)
    flavor: str | None = None
    purity: PurityConfig | None = None
    api_version: int = 0
    gil: str = "auto"
    thread_safe: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"spec kind must be one of {KINDS}, not {self.kind!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"spec name must be a non-empty str, not {self.name!r}")
        if self.api_version not in ARGTYPES:
            raise ValueError(f"api_version must be 0 (raw) or 1 (typed), not {self.api_version!r}")
        if self.gil not in GIL_POLICIES:
            raise ValueError(f"gil must be one of {GIL_POLICIES}, not {self.gil!r}")
        if self.kind == "library":
            if not (isinstance(self.path, str) and os.path.isabs(self.path)):
                raise ValueError(f"spec {self.name!r}: a library path must be absolute, "
                                 f"not {self.path!r}, so it means the same in every process")
            if not (isinstance(self.symbol, str) and self.symbol):
                raise ValueError(f"spec {self.name!r}: a library spec needs a symbol")
        elif self.kind == "module":
            if not (isinstance(self.module, str) and self.module):
                raise ValueError(f"spec {self.name!r}: a module spec needs a module name")
        elif self.kind == "callback":
            if not isinstance(self.function, bytes):
                raise ValueError(f"spec {self.name!r}: a callback spec holds the pickled function")
            if self.flavor not in FLAVORS:
                raise ValueError(f"spec {self.name!r}: flavor must be 'pure' or 'io', "
                                 f"not {self.flavor!r}")

    # --- constructors -------------------------------------------------------

    @classmethod
    def for_library(cls, name: str, path, symbol: str, *, api_version: int = 0,
                    gil: str = "auto", thread_safe: bool = True) -> KernelSpec:
        """A function of a shared library, by path and exported symbol."""
        return cls("library", name, path=os.path.abspath(os.fspath(path)), symbol=symbol,
                   api_version=api_version, gil=gil, thread_safe=bool(thread_safe))

    @classmethod
    def for_builtin(cls, name: str) -> KernelSpec:
        """A kernel built into fjffi (see ``fjffi.targets()``)."""
        if name not in builtin_names():
            raise ValueError(f"no built-in kernel is named {name!r}; built-ins: "
                             f"{sorted(builtin_names())}")
        return cls("builtin", name)

    @classmethod
    def for_module(cls, name: str, module: str, attribute: str | None = None, *,
                   api_version: int = 0, gil: str = "auto",
                   thread_safe: bool = True) -> KernelSpec:
        """A PyCapsule ``module.attribute``, or (attribute=None) a Cython or C
        extension that registers name in the default registry on import."""
        return cls("module", name, module=module, attribute=attribute,
                   api_version=api_version, gil=gil, thread_safe=bool(thread_safe))

    @classmethod
    def for_callback(cls, name: str, fn, *, flavor: str = "pure",
                     purity: PurityConfig | None = None) -> KernelSpec:
        """A Python callable, which must pickle (a module-level function)."""
        try:
            data = pickle.dumps(fn)
        except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError
            raise ValueError(
                f"cannot make a spec of callback {name!r}: {fn!r} does not pickle ({exc}); "
                "a spec carries the function by pickle, so define it at module level "
                "(not a lambda or a local function)"
            ) from exc
        return cls("callback", name, function=data, flavor=flavor, purity=purity)

    # --- replay -------------------------------------------------------------

    def describe(self) -> str:
        """What kernel this spec names, in words (used in error messages)."""
        if self.kind == "library":
            return f"symbol {self.symbol!r} of {self.path} (api_version {self.api_version})"
        if self.kind == "builtin":
            return f"the built-in kernel {self.name!r}"
        if self.kind == "module":
            if self.attribute is None:
                return f"whatever importing module {self.module!r} registers"
            return f"capsule {self.attribute!r} of module {self.module!r}"
        return f"a {self.flavor} callback ({len(self.function)} pickled bytes)"

    def same_kernel(self, other: KernelSpec) -> bool:
        """Whether other names the same kernel (gil and thread_safe aside)."""
        if self.kind != other.kind:
            return False
        if self.kind == "library":
            return (os.path.realpath(self.path) == os.path.realpath(other.path)
                    and self.symbol == other.symbol and self.api_version == other.api_version)
        if self.kind == "builtin":
            return self.name == other.name
        if self.kind == "module":
            return (self.module, self.attribute, self.api_version) == (
                other.module, other.attribute, other.api_version)
        return (self.function, self.flavor) == (other.function, other.flavor)

    def register(self, registry=None, *, isolate: bool = False, timeout: float | None = None,
                 workers: int = 1):
        """Register this kernel under self.name in registry (default: the
        default registry); returns its Target.

        Idempotent: where the name already holds the same kernel (same
        library path and symbol, same built-in, same capsule, same pickled
        callback), nothing happens and the Target there is returned.  A
        different kernel under the name raises DuplicateTargetError saying
        what is registered and what this spec wants.

        isolate=True runs the kernel in a worker process (see
        fjffi.register_isolated), with an optional timeout in seconds.
        """
        from fjffi._core import default_registry

        if registry is None:
            registry = default_registry
        if isolate:
            from fjffi._isolate import register_isolated_spec

            return register_isolated_spec(self, registry, timeout=timeout, workers=workers)
        if timeout is not None or workers != 1:
            raise ValueError("timeout and workers apply to isolated targets (isolate=True) only")
        if self.name in registry:
            return self.check_holds(registry)
        try:
            return self.replay(registry)
        except DuplicateTargetError:
            # Another thread registered the name in between.
            return self.check_holds(registry)

    def check_holds(self, registry, *, name: str | None = None, isolated: bool = False,
                    timeout=None):
        """The Target under name (default self.name) if it is this kernel
        (isolated or not, with this timeout), else DuplicateTargetError
        saying what is there."""
        name = self.name if name is None else name
        target = registry.get(name)
        if (self.kind == "module" and self.attribute is None and not isolated
                and target.kind in ("cython", "foreign") and target.owner is None):
            # A module that registers on import is trusted: nothing in its
            # record says which module it came from.
            return target
        try:
            there, there_isolated, there_timeout = describe_target(target)
        except ValueError as exc:
            raise DuplicateTargetError(
                name, f"it holds a {target.kind} target that cannot be described ({exc}); "
                f"the spec wants {self.describe()}") from None
        if (there.same_kernel(self) and there_isolated == isolated
                and (not isolated or there_timeout == timeout)):
            return target
        held = there.describe() + (f", isolated (timeout {there_timeout})" if there_isolated
                                   else "")
        wanted = self.describe() + (f", isolated (timeout {timeout})" if isolated else "")
        raise DuplicateTargetError(name, f"it holds {held}; the spec wants {wanted}")

    def replay(self, registry):
        """Register in registry, which does not hold self.name yet."""
        if self.kind == "library":
            try:
                lib = ctypes.CDLL(self.path)
                fn = lib[self.symbol]
            except (OSError, AttributeError) as exc:
                raise OSError(f"cannot register {self.name!r} from {self.describe()}: {exc}; "
                              "the library must exist at this path in every process that "
                              "replays the spec") from exc
            fn.restype, fn.argtypes = ctypes.c_int32, ARGTYPES[self.api_version]
            return registry.register(self.name, fn, api_version=self.api_version, gil=self.gil,
                                     thread_safe=self.thread_safe)
        if self.kind == "builtin":
            present = builtin_names() & set(registry.names())
            if present:
                raise ValueError(
                    f"cannot register the built-in {self.name!r} alone: this registry holds "
                    f"{len(present)} of the built-ins but not it, and built-ins are "
                    "registered all at once (Registry.register_builtins)")
            registry.register_builtins()
            return registry.get(self.name)
        if self.kind == "module":
            try:
                mod = importlib.import_module(self.module)
            except ImportError as exc:
                raise ImportError(f"cannot register {self.name!r}: cannot import module "
                                  f"{self.module!r} ({exc})") from exc
            if self.attribute is None:
                if self.name not in registry:
                    raise ValueError(
                        f"importing module {self.module!r} did not register {self.name!r} in "
                        "this registry; a module that registers on import uses the default "
                        "registry")
                return registry.get(self.name)
            capsule = getattr(mod, self.attribute, None)
            if capsule is None:
                raise AttributeError(f"cannot register {self.name!r}: module {self.module!r} "
                                     f"has no attribute {self.attribute!r}")
            return registry.register(self.name, capsule, api_version=self.api_version,
                                     gil=self.gil, thread_safe=self.thread_safe)
        try:
            fn = pickle.loads(self.function)
        except Exception as exc:
            raise ValueError(f"cannot register callback {self.name!r}: its pickled function "
                             f"does not load here ({type(exc).__name__}: {exc})") from exc
        return registry.register_callback(self.name, fn, flavor=self.flavor, purity=self.purity)


def spec(name: str, registry=None) -> KernelSpec:
    """The KernelSpec of the target registered under name.

    Raises ValueError saying why when the target cannot be described: a
    function that is not an exported symbol of a shared library (a ctypes
    CFUNCTYPE of a Python function, a static function), a callback that
    does not pickle, a capsule or C-API registration of unknown origin.
    """
    from fjffi._core import default_registry

    target = (default_registry if registry is None else registry).get(name)
    return describe_target(target)[0]


def describe_target(target) -> tuple[KernelSpec, bool, float | None]:
    """(spec, isolated, timeout) of a Target record."""
    name = target.name
    if target.kind == "builtin":
        return KernelSpec.for_builtin(name), False, None
    if target.kind == "callback":
        fn = target.owner.fn
        inner = getattr(fn, "spec", None)
        if getattr(fn, "takes_outputs", False) and isinstance(inner, KernelSpec):
            # Named as registered here, where the kind allows another name.
            if inner.kind != "builtin" and not (inner.kind == "module"
                                                and inner.attribute is None):
                inner = replace(inner, name=name)
            return inner, True, fn.timeout
        return (KernelSpec.for_callback(name, fn, flavor=target.flavor,
                                        purity=target.owner.purity), False, None)
    options = {"api_version": target.api_version, "gil": target.gil,
               "thread_safe": target.thread_safe}
    owner = target.owner
    if owner is None:
        raise ValueError(
            f"cannot make a spec of {name!r}: it was registered from C or Cython "
            "(register_function or the C API), which leaves no record of where it came from; "
            "describe it with KernelSpec.for_module(name, module) for the module that "
            "registers it")
    if type(owner).__name__ == "PyCapsule":
        address = capsule_pointer(owner)
        found = module_holding(owner)
        if found is not None:
            return KernelSpec.for_module(name, found[0], found[1], **options), False, None
        try:
            path, symbol = library_symbol(address)
        except ValueError as exc:
            raise ValueError(
                f"cannot make a spec of {name!r}: its capsule is of unknown origin (no "
                f"imported module holds it, and {exc})") from None
        return KernelSpec.for_library(name, path, symbol, **options), False, None
    address, _, _ = foreign_address(name, owner, target.api_version)
    try:
        path, symbol = library_symbol(address)
    except ValueError as exc:
        raise ValueError(f"cannot make a spec of {name!r}: {exc}") from None
    return KernelSpec.for_library(name, path, symbol, **options), False, None


# --- where a function pointer comes from ------------------------------------

class DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


@functools.cache
def dladdr_function():
    import ctypes.util

    # glibc 2.34+ has dladdr in libc; older ones in libdl.
    for lib in (None, ctypes.util.find_library("c"), ctypes.util.find_library("dl")):
        try:
            fn = ctypes.CDLL(lib).dladdr
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
        fn.restype = ctypes.c_int
        return fn
    raise OSError("dladdr is not available on this system, so no spec can name a library")


def library_symbol(address: int) -> tuple[str, str]:
    """(absolute path, symbol) of the exported function at address.

    Raises ValueError saying why when address is not the start of an
    exported symbol of a shared library that resolves back to it.
    """
    info = DlInfo()
    if not address or not dladdr_function()(address, ctypes.byref(info)) or not info.dli_fname:
        raise ValueError(
            f"the function at {address:#x} is not in any loaded shared library (a ctypes "
            "CFUNCTYPE of a Python function, or generated code)")
    path = os.path.abspath(os.fsdecode(info.dli_fname))
    if not info.dli_sname or info.dli_saddr != address:
        raise ValueError(
            f"the function at {address:#x} in {path} is not an exported symbol (a static "
            "function, or an address inside one)")
    symbol = info.dli_sname.decode()
    try:
        again = ctypes.cast(ctypes.CDLL(path)[symbol], ctypes.c_void_p).value
    except (OSError, AttributeError) as exc:
        raise ValueError(f"{symbol!r} of {path} does not resolve again ({exc})") from None
    if again != address:
        raise ValueError(f"resolving {symbol!r} in {path} gives {again:#x}, not the "
                         f"registered {address:#x} (interposed or not the library it loaded)")
    return path, symbol


@functools.cache
def capsule_functions():
    """PyCapsule_GetName and PyCapsule_GetPointer with their signatures, made
    once: setting argtypes on the shared ctypes.pythonapi functions on every
    call would race with other threads calling them (and change them for
    every other user of ctypes.pythonapi)."""
    api = ctypes.pythonapi
    get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", api))
    get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", api))
    return get_name, get_pointer


def capsule_pointer(capsule) -> int:
    get_name, get_pointer = capsule_functions()
    return get_pointer(capsule, get_name(capsule)) or 0


def module_holding(obj) -> tuple[str, str] | None:
    """(module name, attribute) of an imported module holding obj itself."""
    for module_name, mod in list(sys.modules.items()):
        for attribute, value in list(getattr(mod, "__dict__", {}).items()):
            if value is obj:
                return module_name, attribute
    return None


@functools.cache
def builtin_names() -> frozenset:
    from fjffi._core import Registry

    registry = Registry()
    registry.register_builtins()
    return frozenset(registry.names())

