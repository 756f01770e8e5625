# --- Registry: names to targets ----------------------------------------------

GIL_POLICIES = ("release", "hold", "auto")


cdef inline int check_name(object name, const char **data, Py_ssize_t *size) except -1:
    if type(name) is not str:
        raise TypeError(f"a target name must be a str, not {type(name).__name__}")
    data[0] = PyUnicode_AsUTF8AndSize(name, size)
    if size[0] == 0:
        raise ValueError("a target name must not be empty")
    if memchr(data[0], 0, size[0]) != NULL:
        raise ValueError(f"a target name must not contain a NUL character: {name!r}")
    return 0


cdef int check_api_version(object api_version) except -1:
    if type(api_version) is not int:
        raise TypeError(f"api_version must be the int 0 (raw) or 1 (typed), not "
                        f"{type(api_version).__name__} {api_version!r}")
    if api_version not in (0, 1):
        raise ValueError(f"api_version must be 0 (raw) or 1 (typed), not {api_version!r}")
    return 0


cdef bint check_bool(str what, object value) except -1:
    if type(value) is not bool and not isinstance(value, np.bool_):
        raise TypeError(f"{what} must be True or False, not {value!r}")
    return value


cdef int check_gil(object gil) except -1:
    if type(gil) is not str:
        raise TypeError(f"gil must be a str, one of {GIL_POLICIES}, not {type(gil).__name__}")
    if gil not in GIL_POLICIES:
        raise ValueError(f"gil must be one of {GIL_POLICIES}, not {gil!r}")
    return 0


cdef inline registry *reg_of(Registry r) noexcept nogil:
    return <registry *>r.reg


@cython.no_gc_clear
cdef class Registry:
    """Registry()
--

    A registry of targets by name: a C hash table behind a pthread rwlock.

    A name is registered once; the registry holds whatever owns each
    target's code (the CDLL, the capsule, the callable) for its whole
    lifetime (docs/design.md, threat T2).  Every registration call either
    fully happens or leaves the registry as it was.

    Thread safety: lookups take the read lock and need no GIL, so calls from
    many threads resolve their targets at once; registration takes the
    write lock, which no holder keeps while it waits for the GIL.  Around
    fork() the locks are held and re-initialised in the child.
    """

    def __cinit__(self):
        cdef registry *r = <registry *>calloc(1, sizeof(registry))
        if r == NULL or registry_init(r) != 0:
            free(r)
            raise MemoryError("cannot allocate a registry")
        self.reg = <opaque_registry *>r
        self.targets = {}
        self.retired = []

    def __dealloc__(self):
        if self.reg != NULL:
            registry_destroy(reg_of(self))
            free(self.reg)

    def __reduce__(self):
        raise TypeError("a fjffi.Registry cannot be copied or pickled: it holds loaded code; "
                        "pickle fjffi.Call objects of the default registry, or rebuild the "
                        "registry in the other process")

    cdef const opaque_target *lookup(self, str name) except NULL:
        cdef const char *data
        cdef Py_ssize_t size
        check_name(name, &data, &size)
        cdef const registry_target *t = registry_get(reg_of(self), data, size,
                                                     registry_hash(data, size))
        if t == NULL:
            raise TargetNotFoundError(name, self.names())
        return <const opaque_target *>t

    cdef int add(self, object name, void *fn, int api_version, str gil, bint thread_safe,
                 bint is_callback, object record) except -1:
        """Add one target; the registry holds record and what owns the code."""
        return self.add_all([(name, <uintptr_t>fn, api_version, gil, thread_safe,
                              is_callback, record, 0, False)])

    cdef int add_all(self, list entries, bint replace=False) except -1:
        """Add every (name, fn address, api_version, gil, thread_safe,
        is_callback, record, contract address, writes_all_outputs) entry, or
        none of them; with replace, a name's old target is retired."""
        cdef Py_ssize_t n = len(entries), k
        cdef const char *data
        cdef Py_ssize_t size
        cdef int rc
        cdef registry_target *ts = <registry_target *>PyMem_Malloc(
            max(n, 1) * sizeof(registry_target))
        if ts == NULL:
            raise MemoryError()
        try:
            for k in range(n):
                (name, fn, api_version, gil, thread_safe, is_callback, record, contract,
                 writes_all) = entries[k]
                check_name(name, &data, &size)
                check_api_version(api_version)
                check_gil(gil)
                if fn == 0 and not is_callback:
                    raise NullPointerError(name)
                ts[k].name = <char *>data  # borrowed from name, held by entries
                ts[k].name_len = size
                ts[k].hash = registry_hash(data, size)
                ts[k].fn = <void *><uintptr_t>fn
                ts[k].api_version = api_version
                ts[k].gil = GIL_POLICIES.index(gil)
                ts[k].thread_safe = thread_safe
                ts[k].is_callback = is_callback
                # The registry's own reference to what owns the code: a Target
                # record's fields can be rebound (object.__setattr__).
                holder = (record, record.owner, record.keep_alive)
                entries[k] = (name, fn, api_version, gil, thread_safe, is_callback, holder,
                              contract, writes_all)
                ts[k].record = <void *>holder
                ts[k].contract = <const void *><uintptr_t>contract
                ts[k].writes_all_outputs = writes_all
            with nogil:
                rc = registry_add_all(reg_of(self), ts, n, replace)
        finally:
            PyMem_Free(ts)
        if rc > 0:
            raise DuplicateTargetError(entries[rc - 1][0])
        if rc != 0:
            raise MemoryError(f"cannot register {[e[0] for e in entries]!r}")
        for entry in entries:
            old = self.targets.get(entry[0])
            self.targets[entry[0]] = entry[6]
            if old is not None:
                self.retire(old)
        return 0

    cdef int retire(self, tuple holder) except -1:
        """A removed or replaced target's holder: a call that resolved it
        holds its own reference until it returns, taken with the GIL held
        (the removal holds it too), so the registry's may go now.  Without
        a GIL that ordering is not given: the registry keeps it."""
        if FREE_THREADED:
            self.retired.append(holder)
        return 0

    def register(self, name, target, *, api_version=0, gil="auto", thread_safe=True,
                 keep_alive=None, writes_all_outputs=False, replace=False):
        """Register a C function under name; returns its Target record.

        target is a PyCapsule holding the function pointer, a ctypes or cffi
        function pointer, or an object exposing one (``.ctypes``).  A bare
        integer address is refused.  api_version 0 is the raw ABI, 1 the
        typed ABI of fjffi.h.  gil is "release", "hold" or "auto".  With
        thread_safe=False, calls to this target run one at a time.
        keep_alive: any object for the registry to hold while the target is
        registered, such as the lib of an ffi.dlopen function (a cffi cdata
        does not keep its library loaded).  writes_all_outputs=True declares
        that the kernel writes every byte of every output whenever it
        returns 0: the outputs are then not zeroed before the call (they
        still are after a failure).  replace=True puts the target in the
        place of one already registered under name: calls that resolved the
        old one finish on it, and its owner is released after them.
        """
        cdef const char *data
        cdef Py_ssize_t size
        check_name(name, &data, &size)
        check_api_version(api_version)
        check_gil(gil)
        thread_safe = check_bool("thread_safe", thread_safe)
        writes_all_outputs = check_bool("writes_all_outputs", writes_all_outputs)
        replace = check_bool("replace", replace)
        if PyCapsule_CheckExact(target):
            address = <uintptr_t>PyCapsule_GetPointer(target, PyCapsule_GetName(target))
            kind, owner = "foreign", target
        else:
            address, kind, owner = foreign_address(name, target, api_version)
        record = Target(name=name, kind=kind, api_version=api_version, gil=gil,
                        thread_safe=bool(thread_safe), owner=owner, keep_alive=keep_alive,
                        writes_all_outputs=writes_all_outputs)
        self.add_all([(name, address, api_version, gil, thread_safe, False, record, 0,
                       writes_all_outputs)], replace)
        return record

    def register_callback(self, name, fn, *, flavor="pure", purity=None, replace=False):
        """Register a Python callable under name; returns its Target record.

        fn receives read-only numpy views of the inputs and returns one array
        per output.  flavor "pure" may be run twice to check idempotency
        (purity, a PurityConfig); flavor "io" runs once per call, in call
        order, never two at once.  replace=True as for register.
        """
        cdef const char *data
        cdef Py_ssize_t size
        check_name(name, &data, &size)
        replace = check_bool("replace", replace)
        callback = Callback(name, fn, flavor, purity)
        record = Target(name=name, kind="callback", api_version=None, gil="hold",
                        thread_safe=flavor == "pure", flavor=flavor, owner=callback)
        self.add_all([(name, 0, 0, "hold", True, True, record, 0, False)], replace)
        return record

    def unregister(self, name):
        """Remove the target registered under name (TargetNotFoundError if
        none).  Calls that resolved it finish on it, and what owns its code
        is released after them; the next call of name does not find it."""
        cdef const char *data
        cdef Py_ssize_t size
        check_name(name, &data, &size)
        # The GIL is held from the removal to the release of the holder, so
        # no call can resolve the target in between without holding its own
        # reference already.
        if registry_remove(reg_of(self), data, size, registry_hash(data, size)) != 0:
            raise TargetNotFoundError(name, self.names())
        self.retire(self.targets.pop(name))

    def register_builtins(self):
        """Register every built-in kernel (fjffi.default_registry has them),
        all of them or, when one name is taken, none."""
        entries = []
        for i in range(fjffi_num_builtin_kernels):
            entry = &fjffi_builtin_kernels[i]
            name = entry.name.decode()
            record = Target(name=name, kind="builtin", api_version=entry.api_version,
                            gil="auto", thread_safe=True, owner=None, doc=entry.doc.decode(),
                            writes_all_outputs=bool(entry.writes_all_outputs))
            entries.append((name, <uintptr_t>entry.fn, entry.api_version, "auto", True, False,
                            record, <uintptr_t>entry.contract, entry.writes_all_outputs))
        self.add_all(entries)

    def stats(self, name):
        """Statistics of the target registered under name, since it was
        registered (a replaced target starts again), over every thread:
        calls, failures, bytes (inputs plus outputs moved) and kernel_ns
        (time inside the kernel; None unless timing was on).  Counted only
        while fjffi.set_stats(True) is in force."""
        cdef fjffi_counts counts
        cdef const registry_target *t = <const registry_target *>self.lookup(name)
        fjffi_stats_read(t.stats_id, &counts)
        return {"calls": counts.calls, "failures": counts.failures, "bytes": counts.bytes,
                "kernel_ns": counts.kernel_ns if counts.kernel_ns or STATS_TIMED else None}

    def get(self, name):
        """The Target record registered under name (TargetNotFoundError if none)."""
        return (<tuple>(<const registry_target *>self.lookup(name)).record)[0]

    def names(self):
        """The registered names, sorted."""
        return sorted(self.targets)

    def __len__(self):
        return len(self.targets)

    def __contains__(self, name):
        cdef const char *data
        cdef Py_ssize_t size
        if type(name) is not str:
            return False
        try:
            data = PyUnicode_AsUTF8AndSize(name, &size)
        except UnicodeEncodeError:  # a lone surrogate: no registered name holds one
            return False
        return registry_get(reg_of(self), data, size, registry_hash(data, size)) != NULL

    def __iter__(self):
        return iter(self.names())

    def __repr__(self):
        return f"<fjffi.Registry with {len(self)} targets>"


cdef int register_function(Registry registry, str name, void *fn, int api_version,
                           str gil="auto", bint thread_safe=True) except -1:
    if registry is None:
        registry = default_registry
    record = Target(name=name, kind="cython", api_version=api_version, gil=gil,
                    thread_safe=bool(thread_safe), owner=None)
    return registry.add(name, fn, api_version, gil, thread_safe, False, record)


cdef int c_api_register(void *registry, const char *name, void *fn, int32_t api_version,
                        const char *gil, int32_t thread_safe) except -1 with gil:
    """fjffi_c_api.register_function: the same for plain C extensions.

    except -1 is the C contract: -1 with the Python exception left set."""
    reg = default_registry if registry == NULL else <object>registry
    if not isinstance(reg, Registry):
        raise TypeError(f"registry must be a fjffi.Registry, not {type(reg).__name__}")
    if name == NULL or gil == NULL:
        raise ValueError("name and gil must not be NULL")
    record = Target(name=name.decode(), kind="foreign", api_version=api_version,
                    gil=gil.decode(), thread_safe=bool(thread_safe), owner=None)
    return (<Registry>reg).add(record.name, fn, api_version, record.gil, thread_safe, False,
                               record)


cdef bint STATS_TIMED = False  # timing was on at some point: kernel_ns means something


def set_stats(enabled, *, timing=False):
    """Count calls, failures and bytes of every target (Registry.stats), and
    with timing=True the time inside each kernel too.  Off by default:
    counting costs a few ns per call, timing two clock reads."""
    global STATS_TIMED
    enabled = check_bool("enabled", enabled)
    timing = check_bool("timing", timing)
    if timing and not enabled:
        raise ValueError("timing=True needs enabled=True")
    STATS_TIMED = STATS_TIMED or timing
    set_stats_mode(&fjffi_stats_mode, 2 if timing else 1 if enabled else 0)


def stats_enabled():
    """(enabled, timing) of set_stats."""
    return fjffi_stats_mode != 0, fjffi_stats_mode == 2
