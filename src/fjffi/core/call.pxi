# --- the call: resolve, validate, zero, run, check ---------------------------

cdef enum:
    # Buffers per side held on the stack; more than this go to the heap.
    STACK_BUFFERS = 8

# Under "auto", a call that moves at least this many bytes (inputs plus
# outputs) releases the GIL.  Below it, the release and reacquire cost more
# than the kernel (measured: see bench/README.md).
cdef Py_ssize_t AUTO_RELEASE_BYTES = 262144


cdef struct Frame:
    # What one call hands the kernel: a descriptor per buffer, a pointer per
    # buffer for the raw ABI, and 16 bytes per input where a Python scalar
    # input is marshalled without allocating.  All of it is on the stack up
    # to STACK_BUFFERS inputs, in one heap block past that.
    fjffi_buffer *inputs
    fjffi_buffer *outputs
    void **pointers
    uint64_t *scalars
    size_t n_inputs
    size_t n_outputs
    fjffi_buffer stack[2 * STACK_BUFFERS]
    void *pointer_stack[2 * STACK_BUFFERS]
    uint64_t scalar_stack[2 * STACK_BUFFERS]
    void *heap


cdef int frame_init(Frame *f, size_t n_inputs, size_t n_outputs) except -1:
    f.heap = NULL
    f.n_inputs = n_inputs
    f.n_outputs = n_outputs
    cdef size_t n = n_inputs + n_outputs
    if n <= 2 * STACK_BUFFERS and n_inputs <= STACK_BUFFERS:
        f.inputs = f.stack
        f.pointers = f.pointer_stack
        f.scalars = f.scalar_stack
    else:
        f.heap = PyMem_Malloc(n * (sizeof(fjffi_buffer) + sizeof(void *))
                              + n_inputs * 2 * sizeof(uint64_t))
        if f.heap == NULL:
            raise MemoryError()
        f.inputs = <fjffi_buffer *>f.heap
        f.pointers = <void **>(f.inputs + n)
        f.scalars = <uint64_t *>(f.pointers + n)
    f.outputs = f.inputs + n_inputs
    return 0


cdef inline int describe_buffer(object obj, fjffi_buffer *desc) noexcept:
    """Fill desc from a Buffer or a C-contiguous, aligned, native ndarray.

    Returns 1 for a read-only object, 0 for a writable one, -1 where obj is
    neither (the caller then takes the slow path).  Allocates nothing.
    """
    cdef Buffer buf
    cdef cnp.ndarray arr
    cdef int code, flags
    if type(obj) is Buffer:
        buf = <Buffer>obj
        if not buf.ready:
            return -1
        desc.data = buf.data
        desc.nbytes = buf.nbytes_
        desc.dtype = buf.code
        desc.ndim = buf.ndim_
        desc.shape = <const int64_t *>buf.dims
        return buf.readonly
    if cnp.PyArray_Check(obj):
        arr = <cnp.ndarray>obj
        code = type_num_code(cnp.PyArray_TYPE(arr))
        flags = cnp.PyArray_FLAGS(arr)
        if (code < 0 or not (flags & cnp.NPY_ARRAY_C_CONTIGUOUS)
                or not (flags & cnp.NPY_ARRAY_ALIGNED) or not cnp.PyArray_ISNOTSWAPPED(arr)):
            return -1
        desc.data = cnp.PyArray_DATA(arr)
        desc.nbytes = cnp.PyArray_NBYTES(arr)
        desc.dtype = code
        desc.ndim = cnp.PyArray_NDIM(arr)
        desc.shape = <const int64_t *>cnp.PyArray_DIMS(arr)
        return not (flags & cnp.NPY_ARRAY_WRITEABLE)
    return -1


cdef int refuse_output(str name, size_t i, object obj) except -1:
    """Raise the error that says why obj cannot be output i."""
    if type(obj) is Buffer:
        (<Buffer>obj).check_ready()
        raise LayoutError(f"{name}: output {i} cannot be written in place: "
                          "it is a read-only Buffer")
    if not cnp.PyArray_Check(obj):
        raise LayoutError(f"{name}: output {i} cannot be written in place: it is a "
                          f"{type(obj).__name__}, not a numpy array or fjffi.Buffer")
    cdef cnp.ndarray arr = <cnp.ndarray>obj
    if user_descr_code(arr.descr) < 0:
        raise UnsupportedDtypeError(arr.dtype, f"output {i}")
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not flags & cnp.NPY_ARRAY_WRITEABLE:
        problem = "it is read-only"
    elif not flags & cnp.NPY_ARRAY_C_CONTIGUOUS:
        problem = "it is not C-contiguous"
    elif not flags & cnp.NPY_ARRAY_ALIGNED:
        problem = "it is misaligned"
    else:
        problem = "it is not in native byte order"
    raise LayoutError(f"{name}: output {i} cannot be written in place: {problem}")


cdef inline void zero_outputs(Frame *f) noexcept nogil:
    cdef size_t i
    for i in range(f.n_outputs):
        memset(f.outputs[i].data, 0, f.outputs[i].nbytes)


cdef int contract_problem(const fjffi_raw_contract *c, Frame *f, char *detail,
                          size_t size, size_t *index) noexcept nogil:
    """What a built-in raw kernel's contract finds wrong with buffer *index
    of the call (1 its dtype, 2 its size), said in detail; 0 when nothing.
    The raw ABI passes no sizes, so the kernel cannot check them itself;
    counts it checks itself, and with other
    counts it fails with its own code."""
    cdef size_t i
    cdef const fjffi_buffer *b
    if f.n_inputs != c.n_inputs or f.n_outputs != c.n_outputs:
        return 0
    for i in range(f.n_inputs + f.n_outputs):
        b = &f.inputs[i]  # outputs follow inputs
        index[0] = i
        if c.dtype >= 0 and b.dtype != c.dtype:
            snprintf(detail, size, "buffer %zu must be %s", i, fjffi_dtype_info_of(c.dtype).name)
            return 1
        if b.nbytes < c.min_nbytes or b.nbytes > c.max_nbytes:
            snprintf(detail, size, "buffer %zu has %zu bytes; it needs %s%zu", i, b.nbytes,
                     "" if c.min_nbytes == c.max_nbytes else "at least ", c.min_nbytes)
            return 2
    return 0


cdef inline int check_contract(str name, const fjffi_raw_contract *c, Frame *f) except -1:
    cdef char detail[128]
    cdef size_t i
    cdef int problem = contract_problem(c, f, detail, sizeof(detail), &i)
    if problem == 0:
        return 0
    role = f"input {i}" if i < f.n_inputs else f"output {i - f.n_inputs}"
    if problem == 1:
        raise UnsupportedDtypeError(code_dtype(f.inputs[i].dtype),
                                    f"{name}: {role} must be {DTYPE_NAMES[c.dtype]}")
    need = (f"{c.min_nbytes} bytes" if c.min_nbytes == c.max_nbytes
            else f"at least {c.min_nbytes} bytes")
    raise BufferMismatchError(i, c.min_nbytes, f.inputs[i].nbytes, f"{name}: {role} needs {need}")


cdef inline int32_t run_kernel(const registry_target *t, Frame *f,
                               fjffi_context *ctx) noexcept nogil:
    """Call the kernel; allocates nothing, so it cannot fail on its own.  A
    target that is not thread-safe is locked by the caller (lock_target)."""
    cdef int32_t rc
    cdef size_t i
    global fjffi_running_target
    if fjffi_stats_mode:
        return run_kernel_counted(t, f, ctx)
    cdef const char *outer = fjffi_running_target
    fjffi_running_target = t.name
    if t.api_version == FJFFI_ABI_TYPED:
        rc = (<fjffi_typed_fn>t.fn)(f.inputs, f.n_inputs, f.outputs, f.n_outputs, ctx)
    else:
        for i in range(f.n_inputs + f.n_outputs):
            f.pointers[i] = f.inputs[i].data  # outputs follow inputs in both arrays
        rc = (<fjffi_raw_fn>t.fn)(<const uint8_t **>f.pointers, f.n_inputs,
                                  <uint8_t **>(f.pointers + f.n_inputs), f.n_outputs)
    fjffi_running_target = outer
    return rc


cdef int32_t run_kernel_counted(const registry_target *t, Frame *f,
                                fjffi_context *ctx) noexcept nogil:
    """run_kernel while statistics are on (set_stats): counted, and timed."""
    cdef bint timed = fjffi_stats_mode == 2
    cdef uint64_t start = fjffi_stats_now() if timed else 0
    cdef int32_t rc
    cdef size_t i
    global fjffi_running_target
    cdef const char *outer = fjffi_running_target
    fjffi_running_target = t.name
    if t.api_version == FJFFI_ABI_TYPED:
        rc = (<fjffi_typed_fn>t.fn)(f.inputs, f.n_inputs, f.outputs, f.n_outputs, ctx)
    else:
        for i in range(f.n_inputs + f.n_outputs):
            f.pointers[i] = f.inputs[i].data
        rc = (<fjffi_raw_fn>t.fn)(<const uint8_t **>f.pointers, f.n_inputs,
                                  <uint8_t **>(f.pointers + f.n_inputs), f.n_outputs)
    fjffi_running_target = outer
    count_call(t, f, rc != 0, fjffi_stats_now() - start if timed else 0)
    return rc


cdef void count_call(const registry_target *t, Frame *f, bint failed,
                     uint64_t ns) noexcept nogil:
    cdef size_t i, moved = 0
    for i in range(f.n_inputs + f.n_outputs):
        moved += f.inputs[i].nbytes  # outputs follow inputs
    fjffi_stats_count(t.stats_id, moved, failed, ns)


cdef inline int lock_target(str name, const registry_target *t) except -1:
    """Take a non-thread-safe target's lock, never waiting for it with the
    GIL held: its holder may need the GIL to finish (a kernel that calls
    back into Python), which would deadlock the two threads."""
    cdef pthread_mutex_t *m = &(<registry_target *>t).serial
    cdef int rc
    if pthread_mutex_trylock(m) != 0:
        with nogil:
            rc = pthread_mutex_lock(m)
        if rc != 0:  # EDEADLK: this thread is inside the target already
            raise CallFailedError(name, -1, "a thread_safe=False target cannot be called "
                                  "again from inside its own call (re-entered on one thread)")
    return 0


cdef inline void unlock_target(const registry_target *t) noexcept nogil:
    pthread_mutex_unlock(&(<registry_target *>t).serial)


cdef inline bint releases_gil(const registry_target *t, size_t moved) noexcept nogil:
    return t.gil == FJFFI_GIL_RELEASE or (t.gil == FJFFI_GIL_AUTO
                                          and moved >= <size_t>AUTO_RELEASE_BYTES)


def rebuild_call(str name, Registry registry, guard):
    """Call.__reduce__'s constructor."""
    return Call(name, registry, guard=guard)


cdef class Call:
    """Call(name, registry=None, *, guard=None)
--

    A call to a named target: ``Call(name).invoke(inputs, outputs)``.

    The target is resolved through the registry on every invoke
    (docs/design.md, invariant 1), so a Call is cheap to keep and never
    holds a stale target.  guard=True (or, when guard is None, the process
    default of fjffi.set_guard, first read from FJFFI_GUARD) runs the kernel
    on outputs with guard bytes before and after them, and raises
    BufferOverrunError when a kernel writes outside an output.

    copy and pickle give a Call of the same name; a Call on a Registry
    other than fjffi.default_registry does not pickle.

    Thread safety: a Call is immutable after __init__ (a second __init__ is
    refused), and any number of threads may invoke one Call at once.
    """

    cdef readonly str name
    cdef readonly Registry registry
    cdef readonly bint guard
    cdef const char *cname
    cdef Py_ssize_t clen
    cdef uint64_t hash
    cdef int claimed  # set by the one __init__ that fills the fields
    cdef registry_cache cache  # the last resolution; all zero (empty) from tp_alloc

    def __cinit__(self):
        self.cname = NULL

    def __init__(self, str name not None, Registry registry=None, *, guard=None):
        cdef const char *cname
        cdef Py_ssize_t clen
        if self.cname != NULL:
            raise TypeError("fjffi.Call.__init__ may be called only once")
        check_name(name, &cname, &clen)
        if guard is not None:
            guard = check_bool("guard", guard)
        # Checked above, claimed here: of two first __init__s at once
        # (possible without a GIL), one fills the fields, the other is refused.
        if not fjffi_claim(&self.claimed):
            raise TypeError("fjffi.Call.__init__ may be called only once")
        self.name = name  # holds the str whose UTF-8 cname points into
        self.hash = registry_hash(cname, clen)
        self.clen = clen
        self.registry = default_registry if registry is None else registry
        self.guard = GUARD_DEFAULT if guard is None else guard
        fjffi_publish_ptr(&self.cname, cname)  # last: a Call with cname set is complete

    def __repr__(self):
        if self.cname == NULL:
            return "fjffi.Call(<never initialised>)"
        return f"fjffi.Call({self.name!r})"

    def __reduce__(self):
        self.check_ready()
        if self.registry is not default_registry:
            # Only the default registry is the same in every process.
            return (rebuild_call, (self.name, self.registry, self.guard))
        return (rebuild_call, (self.name, None, self.guard))

    def __deepcopy__(self, memo):
        self.check_ready()
        return rebuild_call(self.name, self.registry, self.guard)

    cdef inline int check_ready(self) except -1:
        if self.cname == NULL:
            raise TypeError("this fjffi.Call was never initialised (made with Call.__new__ "
                            "and no __init__)")
        return 0

    def invoke(self, inputs, outputs, /):
        """Validate every buffer, zero the outputs, run the target.

        inputs: a tuple or list of Buffers, arrays or anything to_buffer
        takes.  outputs: a tuple or list of writable, C-contiguous, aligned,
        native-order numpy arrays or Buffers, written in place.  On any
        failure the outputs are left zeroed (or untouched, if validation
        failed first).
        """
        self.check_ready()
        invoke_target(self.name, self.registry, &self.cache, self.cname, self.clen, self.hash,
                      self.guard, False, inputs, outputs)


cdef inline tuple as_buffers(object seq, str which):
    # A tuple holds its items for the whole call; a list could be
    # emptied by another thread while the kernel runs without the GIL.
    if type(seq) is tuple:
        return <tuple>seq
    if type(seq) is list:
        return tuple(<list>seq)
    raise TypeError(f"{which} must be a tuple or a list of buffers, not {type(seq).__name__}")


cdef int invoke_target(str name, Registry registry, registry_cache *cache, const char *cname,
                       Py_ssize_t clen, uint64_t hash, bint guard, bint zeroed, object inputs,
                       object outputs) except -1:
    """Resolve (through cache when there is one), then run.  zeroed: the
    outputs are fresh zeroed memory, so the scrub before the kernel is moot."""
    cdef const registry_target *t
    if cache != NULL:
        t = registry_cached_get(reg_of(registry), cache, cname, clen, hash)
    else:
        t = registry_get(reg_of(registry), cname, clen, hash)
    if t == NULL:
        raise TargetNotFoundError(name, registry.names())
    # Held for the call: what owns the target's code stays alive even if the
    # target is unregistered or replaced meanwhile.
    cdef object holder = <object>t.record
    cdef tuple ins = as_buffers(inputs, "inputs")
    cdef tuple outs = as_buffers(outputs, "outputs")
    cdef Frame f
    frame_init(&f, len(ins), len(outs))
    try:
        run(name, guard, zeroed or t.writes_all_outputs, t, ins, outs, &f)
    finally:
        if f.heap != NULL:  # the common frame is all on the stack
            PyMem_Free(f.heap)
    return 0


cdef inline int run(str name, bint guard, bint unscrubbed, const registry_target *t,
                    tuple inputs, tuple outputs, Frame *f) except -1:
    """Steps 2 to 6 of the call: validate, zero, run, check (docs/reference.md).
    unscrubbed: the outputs need no zeroing before the kernel (they are
    fresh, or the kernel writes all of them); after a failure they are
    zeroed all the same."""
    cdef size_t i, j
    cdef int state
    cdef Py_ssize_t bad
    cdef fjffi_context ctx
    cdef int32_t rc
    cdef size_t moved = 0
    cdef list converted = None
    cdef list unpinned = None

    for i in range(f.n_inputs):
        obj = inputs[i]
        if (describe_buffer(obj, &f.inputs[i]) < 0
                and describe_scalar(obj, &f.inputs[i], f.scalars + 2 * i) < 0):
            # Slow path: a DLPack object described in place, or a copy into
            # a native, contiguous Buffer; either kept alive by `converted`
            # until the call returns.
            if has_dlpack(obj):
                keep = describe_dlpack(obj, &f.inputs[i], False, (name, "input", i), False)
                if keep is None:  # pinned below if the kernel may run unguarded
                    if unpinned is None:
                        unpinned = []
                    unpinned.append(i)
                else:
                    if converted is None:
                        converted = []
                    converted.append(keep)
            else:
                if converted is None:
                    converted = []
                obj = marshal(obj, i)
                converted.append(obj)
                describe_buffer(obj, &f.inputs[i])
        if f.inputs[i].dtype == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<uint8_t *>f.inputs[i].data, f.inputs[i].nbytes)
            if bad >= 0:
                raise InvalidBoolByteError(i, bad, (<uint8_t *>f.inputs[i].data)[bad],
                                           f"{name}: input {i}")
        moved += f.inputs[i].nbytes
    for i in range(f.n_outputs):
        obj = outputs[i]
        state = describe_buffer(obj, &f.outputs[i])
        if state < 0 and has_dlpack(obj):
            if converted is None:
                converted = []
            converted.append(describe_dlpack(obj, &f.outputs[i], True, (name, "output", i),
                                             True))
        elif state != 0:
            refuse_output(name, i, obj)
        for j in range(f.n_inputs):
            if fjffi_overlaps(&f.outputs[i], &f.inputs[j]):
                raise LayoutError(f"{name}: output {i} overlaps input {j}; outputs "
                                  "are zeroed before the call, so they must not alias")
        for j in range(i):
            if fjffi_overlaps(&f.outputs[i], &f.outputs[j]):
                raise LayoutError(f"{name}: output {i} overlaps output {j}")
        moved += f.outputs[i].nbytes
    if t.contract != NULL:
        check_contract(name, <const fjffi_raw_contract *>t.contract, f)
    if unpinned is not None and (t.is_callback or not t.thread_safe or releases_gil(t, moved)):
        # Other Python threads may run before the kernel returns, and a
        # DLPack producer's table gave pointers without holding the memory:
        # hold it now, through the producer's managed tensor.
        if converted is None:
            converted = []
        for i in unpinned:
            converted.append(describe_dlpack(inputs[i], &f.inputs[i], False, (name, "input", i),
                                             True))

    if t.is_callback:
        run_callback(name, t, inputs if converted is None else (inputs, converted), f)
    else:
        ctx.message[0] = 0
        if guard:
            rc = run_guarded(name, t, f, &ctx, releases_gil(t, moved))
        else:
            # Nothing between lock and unlock can raise.
            if not t.thread_safe:
                lock_target(name, t)
            if releases_gil(t, moved):
                with nogil:
                    if not unscrubbed:
                        zero_outputs(f)  # a large scrub need not hold the GIL either
                    rc = run_kernel(t, f, &ctx)
            else:
                if not unscrubbed:
                    zero_outputs(f)
                rc = run_kernel(t, f, &ctx)
            if not t.thread_safe:
                unlock_target(t)
        if rc != 0:
            zero_outputs(f)
            raise CallFailedError(name, rc, failure_message(t, rc, &ctx))
    for i in range(f.n_outputs):
        if f.outputs[i].dtype == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<uint8_t *>f.outputs[i].data, f.outputs[i].nbytes)
            if bad >= 0:
                value = (<uint8_t *>f.outputs[i].data)[bad]
                zero_outputs(f)
                raise InvalidBoolByteError(f.n_inputs + i, bad, value,
                                           f"{name}: output {i}")
    return 0


cdef str failure_message(const registry_target *t, int32_t rc, fjffi_context *ctx):
    """The kernel's own message; a raw-ABI kernel has no way to give one."""
    ctx.message[FJFFI_MESSAGE_SIZE - 1] = 0
    if ctx.message[0] != 0:
        return ctx.message.decode("utf-8", "replace")
    return f"extern function returned code {rc}"


def call(str name not None, inputs, results, Registry registry=None):
    """Marshal inputs, allocate outputs like results, invoke, return the outputs.

    results: a tuple or list of objects with ``.shape`` and ``.dtype``
    (arrays, or any spec).  Returns a tuple of numpy arrays.
    """
    cdef const char *cname
    cdef Py_ssize_t clen, i, n
    check_name(name, &cname, &clen)
    cdef tuple specs = as_buffers(results, "results")
    n = len(specs)
    # Filled in place: no list on the way to the tuple (this is the path of
    # a Python float in and out, where every allocation shows).
    cdef tuple outputs = PyTuple_New(n)
    for i in range(n):
        out = new_output(specs[i], i)
        Py_INCREF(out)
        PyTuple_SET_ITEM(outputs, i, out)
    invoke_target(name, default_registry if registry is None else registry, NULL, cname, clen,
                  registry_hash(cname, clen), GUARD_DEFAULT, True, inputs, outputs)
    return outputs


cdef object new_output(object spec, Py_ssize_t i):
    """A zeroed array shaped like spec: numpy's calloc gives large ones
    zero pages lazily, so the kernel's writes are the first touch."""
    cdef cnp.ndarray arr
    cdef cnp.dtype descr
    cdef Py_ssize_t nbytes
    cdef int code
    if cnp.PyArray_Check(spec):
        arr = <cnp.ndarray>spec
        descr = arr.descr
        if user_descr_code(descr) < 0:
            raise UnsupportedDtypeError(descr, f"result {i}")
        if not cnp.PyDataType_ISNOTSWAPPED(descr):
            descr = descr.newbyteorder("=")  # outputs are always native
        Py_INCREF(descr)
        return PyArray_Zeros(cnp.PyArray_NDIM(arr), cnp.PyArray_DIMS(arr), descr, 0)
    try:
        spec_dtype, spec_shape = spec.dtype, spec.shape
    except AttributeError:
        raise TypeError(f"result {i} must have .shape and .dtype (an array or a spec), "
                        f"not {type(spec).__name__}") from None
    code = dtype_code(spec_dtype)
    dt = code_dtype(code)
    if isinstance(dt, str):
        raise UnsupportedDtypeError("bfloat16", "install ml_dtypes for bfloat16 results")
    dims = normalize_shape(spec_shape)
    if checked_nbytes(dims, itemsize_of(code), &nbytes):
        raise BufferMismatchError(None, None, 0, f"result {i}: product of shape {dims} * "
                                  f"itemsize {itemsize_of(code)}")
    return np.zeros(dims, dt)


# --- the call without Python: fjffi_c_api.invoke -----------------------------

cdef extern from *:
    # A Registry object's C struct, to reach its table without the GIL.
    ctypedef struct RegistryObject "struct __pyx_obj_5fjffi_5_core_Registry":
        opaque_registry *reg
    ctypedef struct TypeObject "PyTypeObject":
        TypeObject *tp_base
    TypeObject *type_of "Py_TYPE"(void *obj) noexcept nogil

cdef registry *DEFAULT_REGISTRY = NULL   # default_registry's table, set at init
cdef TypeObject *REGISTRY_TYPE = NULL


cdef registry *registry_of_object(void *obj) noexcept nogil:
    """The table of a Registry object, or NULL for anything else; reads
    only immutable type pointers, so it needs no GIL."""
    cdef TypeObject *tp
    if obj == NULL:
        return DEFAULT_REGISTRY
    tp = type_of(obj)
    while tp != NULL and tp != REGISTRY_TYPE:
        tp = tp.tp_base
    return <registry *>(<RegistryObject *>obj).reg if tp != NULL else NULL


cdef int32_t c_api_invoke(void *registry_obj, const char *name, size_t name_len,
                          const fjffi_buffer *inputs, size_t n_inputs,
                          const fjffi_buffer *outputs, size_t n_outputs,
                          int32_t *code, char *message, size_t message_size) noexcept nogil:
    """fjffi_c_api.invoke (fjffi.h): Call.invoke's contract on descriptors,
    with no GIL and no Python object."""
    cdef registry *r = registry_of_object(registry_obj)
    cdef const registry_target *t
    cdef Frame f
    cdef fjffi_context ctx
    cdef size_t i, j, n = n_inputs + n_outputs
    cdef char detail[128]
    cdef int32_t rc
    cdef ptrdiff_t bad
    if message_size > 0:
        message[0] = 0
    if r == NULL:
        snprintf(message, message_size, "fjffi invoke: registry is not a fjffi.Registry")
        return FJFFI_INVOKE_REFUSED
    if name == NULL or (n_inputs > 0 and inputs == NULL) or (n_outputs > 0 and outputs == NULL):
        snprintf(message, message_size, "fjffi invoke: NULL name or descriptor array")
        return FJFFI_INVOKE_REFUSED
    t = registry_get(r, name, name_len, registry_hash(name, name_len))
    if t == NULL:
        snprintf(message, message_size, "no target named '%.*s' is registered",
                 <int>min(name_len, 200), name)
        return FJFFI_INVOKE_REFUSED
    if t.is_callback or t.gil == FJFFI_GIL_HOLD:
        snprintf(message, message_size, "target '%s' %s: it needs the GIL, which this entry "
                 "point does not take; call it through fjffi.call", t.name,
                 "is a Python callback" if t.is_callback else "is registered with gil=\"hold\"")
        return FJFFI_INVOKE_REFUSED
    for i in range(n):
        b = &inputs[i] if i < n_inputs else &outputs[i - n_inputs]
        if fjffi_check_buffer(b, detail, sizeof(detail)) != 0:
            snprintf(message, message_size, "%s: buffer %zu: %s", t.name, i, detail)
            return FJFFI_INVOKE_REFUSED
        if i < n_inputs and b.dtype == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<const uint8_t *>b.data, b.nbytes)
            if bad >= 0:
                snprintf(message, message_size, "%s: input %zu: bool byte %zd is %d; a bool "
                         "byte must be 0 or 1", t.name, i, bad, (<const uint8_t *>b.data)[bad])
                return FJFFI_INVOKE_REFUSED
    for i in range(n_outputs):
        for j in range(n):
            b = &inputs[j] if j < n_inputs else &outputs[j - n_inputs]
            if j != n_inputs + i and fjffi_overlaps(&outputs[i], b):
                snprintf(message, message_size, "%s: output %zu overlaps buffer %zu", t.name,
                         i, j)
                return FJFFI_INVOKE_REFUSED

    # One frame: descriptors of the inputs, then the outputs (as run_kernel
    # reads them), and a pointer each for the raw ABI.
    f.n_inputs = n_inputs
    f.n_outputs = n_outputs
    f.heap = NULL
    f.inputs = f.stack
    f.pointers = f.pointer_stack
    if n > 2 * STACK_BUFFERS:
        f.heap = malloc(n * (sizeof(fjffi_buffer) + sizeof(void *)))
        if f.heap == NULL:
            snprintf(message, message_size, "%s: out of memory", t.name)
            return FJFFI_INVOKE_REFUSED
        f.inputs = <fjffi_buffer *>f.heap
        f.pointers = <void **>(f.inputs + n)
    f.outputs = f.inputs + n_inputs
    if n_inputs > 0:
        memcpy(f.inputs, inputs, n_inputs * sizeof(fjffi_buffer))
    if n_outputs > 0:
        memcpy(f.outputs, outputs, n_outputs * sizeof(fjffi_buffer))
    rc = 0
    if t.contract != NULL:
        rc = contract_problem(<const fjffi_raw_contract *>t.contract, &f, detail,
                              sizeof(detail), &j)
    if rc != 0:
        snprintf(message, message_size, "%s: %s", t.name, detail)
        free(f.heap)
        return FJFFI_INVOKE_REFUSED

    ctx.message[0] = 0
    if not t.thread_safe and pthread_mutex_lock(&(<registry_target *>t).serial) != 0:
        snprintf(message, message_size, "%s: a thread_safe=False target cannot be called "
                 "again from inside its own call", t.name)
        free(f.heap)
        return FJFFI_INVOKE_REFUSED
    zero_outputs(&f)
    rc = run_kernel(t, &f, &ctx)
    if not t.thread_safe:
        unlock_target(t)
    code[0] = rc
    if rc != 0:
        zero_outputs(&f)
        ctx.message[FJFFI_MESSAGE_SIZE - 1] = 0
        if ctx.message[0] != 0:
            snprintf(message, message_size, "%s", ctx.message)
        else:
            snprintf(message, message_size, "extern function returned code %d", rc)
        free(f.heap)
        return FJFFI_INVOKE_FAILED
    for i in range(n_outputs):
        if f.outputs[i].dtype == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<const uint8_t *>f.outputs[i].data, f.outputs[i].nbytes)
            if bad >= 0:
                snprintf(message, message_size, "%s: output %zu: bool byte %zd is %d; a bool "
                         "byte must be 0 or 1", t.name, i, bad,
                         (<const uint8_t *>f.outputs[i].data)[bad])
                zero_outputs(&f)
                free(f.heap)
                return FJFFI_INVOKE_FAILED
    free(f.heap)
    return 0
