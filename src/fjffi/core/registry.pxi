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
                              is_callback, record, 0)])

    cdef int add_all(self, list entries) except -1:
        """Add every (name, fn address, api_version, gil, thread_safe,
        is_callback, record, contract address) entry, or none of them."""
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
                name, fn, api_version, gil, thread_safe, is_callback, record, contract = entries[k]
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
                              contract)
                ts[k].record = <void *>holder
                ts[k].contract = <const void *><uintptr_t>contract
            with nogil:
                rc = registry_add_all(reg_of(self), ts, n)
        finally:
            PyMem_Free(ts)
        if rc > 0:
            raise DuplicateTargetError(entries[rc - 1][0])
        if rc != 0:
            raise MemoryError(f"cannot register {[e[0] for e in entries]!r}")
        for entry in entries:
            self.targets[entry[0]] = entry[6]
        return 0

    def register(self, name, target, *, api_version=0, gil="auto", thread_safe=True,
                 keep_alive=None):
        """register(name, target, *, api_version=0, gil="auto", thread_safe=True, keep_alive=None)

        Register a C function under name; returns its Target record.

        target is a PyCapsule holding the function pointer, a ctypes or cffi
        function pointer, or an object exposing one (``.ctypes``).  A bare
        integer address is refused.  api_version 0 is the raw ABI, 1 the
        typed ABI of fjffi.h.  gil is "release", "hold" or "auto".  With
        thread_safe=False, calls to this target run one at a time.
        keep_alive: any object for the registry to hold while the target is
        registered, such as the lib of an ffi.dlopen function (a cffi cdata
        does not keep its library loaded).
        """
        cdef const char *data
        cdef Py_ssize_t size
        check_name(name, &data, &size)
        check_api_version(api_version)
        check_gil(gil)
        thread_safe = check_bool("thread_safe", thread_safe)
        if PyCapsule_CheckExact(target):
            address = <uintptr_t>PyCapsule_GetPointer(target, PyCapsule_GetName(target))
            kind, owner = "foreign", target
        else:
            address, kind, owner = foreign_address(name, target, api_version)
        record = Target(name=name, kind=kind, api_version=api_version, gil=gil,
                        thread_safe=bool(thread_safe), owner=owner, keep_alive=keep_alive)
        self.add(name, <void *><uintptr_t>address, api_version, gil, thread_safe, False, record)
        return record

    def register_callback(self, name, fn, *, flavor="pure", purity=None):
        """register_callback(name, fn, *, flavor="pure", purity=None)

        Register a Python callable under name; returns its Target record.

        fn receives read-only numpy views of the inputs and returns one array
        per output.  flavor "pure" may be run twice to check idempotency
        (purity, a PurityConfig); flavor "io" runs once per call, in call
        order, never two at once.
        """
        cdef const char *data
        cdef Py_ssize_t size
        check_name(name, &data, &size)
        callback = Callback(name, fn, flavor, purity)
        record = Target(name=name, kind="callback", api_version=None, gil="hold",
                        thread_safe=flavor == "pure", flavor=flavor, owner=callback)
        self.add(name, NULL, 0, "hold", True, True, record)
        return record

    def register_builtins(self):
        """Register every built-in kernel (fjffi.default_registry has them),
        all of them or, when one name is taken, none."""
        entries = []
        for i in range(fjffi_num_builtin_kernels):
            entry = &fjffi_builtin_kernels[i]
            name = entry.name.decode()
            record = Target(name=name, kind="builtin", api_version=entry.api_version,
                            gil="auto", thread_safe=True, owner=None, doc=entry.doc.decode())
            entries.append((name, <uintptr_t>entry.fn, entry.api_version, "auto", True, False,
                            record, <uintptr_t>entry.contract))
        self.add_all(entries)

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
