# --- the call: resolve, validate, zero, run, check ---------------------------

def rebuild_call(str name, Registry registry, guard):
    """Call.__reduce__'s constructor."""
    return Call(name, registry, guard=guard)


# no_gc_clear: a Call in a garbage cycle keeps its registry until it is
# freed itself, so a finalizer in the cycle that still invokes it finds the
# registry's table where reg points, not freed memory.
@cython.no_gc_clear
cdef class Call:
    """Call(name, registry=None, *, guard=None)
--

    A call to a named target: ``Call(name).invoke(inputs, outputs)``.

    The target is resolved through the registry on every invoke
    (docs/design.md, invariant 1): a Call caches the resolution, checked
    against the registry's generation, so it never runs a target that was
    replaced or removed since.  guard=True (or, when guard is None, the process
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
    cdef registry *reg  # registry's table, read without touching its reference count
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
        if fjffi_seen_ptr(&self.cname) != NULL:
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
        self.reg = reg_of(self.registry)
        self.guard = GUARD_DEFAULT if guard is None else guard
        fjffi_publish_ptr(&self.cname, cname)  # last: a Call with cname set is complete

    def __repr__(self):
        if fjffi_seen_ptr(&self.cname) == NULL:
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
        if fjffi_seen_ptr(&self.cname) == NULL:
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
        if fjffi_seen_ptr(&self.cname) == NULL:
            self.check_ready()
        invoke_target(self, self.guard, False, inputs, outputs)


cdef int invoke_target(Call c, bint guard, bint zeroed, object inputs,
                       object outputs) except -1:
    """Resolve c's name through its cache, then run.  zeroed: the outputs
    are fresh zeroed memory, so the scrub before the kernel is moot.  The
    Call is passed whole, and its name read only to say what went wrong:
    no reference counting of its fields on the way."""
    cdef Frame f
    cdef const registry_target *t = registry_cached_get(c.reg, &c.cache, c.cname, c.clen,
                                                        c.hash)
    if t == NULL:
        raise TargetNotFoundError(c.name, c.registry.names())
    # Held for the call: what owns the target's code stays alive even if the
    # target is unregistered or replaced meanwhile.  Without a GIL the
    # registry keeps every target it ever held until it dies (retire), and
    # c holds the registry: a reference here would only make the threads
    # that call one target write one reference count.
    cdef object holder
    if not FREE_THREADED:
        holder = <object>t.record
    # The common call, tuples of at most STACK_BUFFERS buffers a side, has
    # its whole frame on the stack and nothing to free.
    if (type(inputs) is tuple and type(outputs) is tuple
            and frame_on_stack(&f, PyTuple_GET_SIZE(inputs), PyTuple_GET_SIZE(outputs))):
        return run(c, guard, zeroed or t.writes_all_outputs, t, <tuple>inputs,
                   <tuple>outputs, &f)
    return invoke_copied(c, guard, zeroed or t.writes_all_outputs, t, inputs, outputs)


cdef int invoke_copied(Call c, bint guard, bint unscrubbed, const registry_target *t,
                       object inputs, object outputs) except -1:
    """invoke_target for lists, and for more buffers than the stack frame
    holds.  A tuple holds its items for the whole call; a list could be
    emptied by another thread while the kernel runs without the GIL, so a
    list is copied to a tuple."""
    cdef Frame f
    cdef tuple ins = as_buffers(inputs, "inputs")
    cdef tuple outs = as_buffers(outputs, "outputs")
    frame_init(&f, len(ins), len(outs))
    try:
        run(c, guard, unscrubbed, t, ins, outs, &f)
    finally:
        if f.heap != NULL:
            PyMem_Free(f.heap)
    return 0


cdef inline int run(Call c, bint guard, bint unscrubbed, const registry_target *t,
                    tuple inputs, tuple outputs, Frame *f) except -1:
    """Steps 2 to 6 of the call: validate, zero, run, check (docs/reference.md).
    unscrubbed: the outputs need no zeroing before the kernel (they are
    fresh, or the kernel writes all of them); after a failure they are
    zeroed all the same."""
    cdef size_t moved = 0
    cdef object owner  # holds every buffer of the frame until the call returns
    if describe_in_place(c, inputs, outputs, f, &moved):
        owner = inputs
    else:
        owner = describe_converting(c, t, inputs, outputs, f, &moved)
    if t.contract != NULL and not contract_holds(<const fjffi_raw_contract *>t.contract, f):
        refuse_contract(c.name, <const fjffi_raw_contract *>t.contract, f)
    return execute(c, guard, unscrubbed, t, owner, f, moved)


cdef inline int describe_in_place(Call c, tuple inputs, tuple outputs, Frame *f,
                                  size_t *moved) except -1:
    """Describe and check every buffer of the call where all of them are
    described in place (Buffers, native contiguous arrays, Python scalars):
    1.  At the first buffer that needs more, 0: describe_converting then
    starts over, and checks the same things in the same order."""
    cdef size_t i, j
    for i in range(f.n_inputs):
        if (describe_buffer(inputs[i], &f.inputs[i]) < 0
                and describe_scalar(inputs[i], &f.inputs[i], f.scalars + 2 * i) < 0):
            return 0
        if f.inputs[i].dtype == FJFFI_BOOL:
            check_input_bools(c.name, f, i)
        moved[0] += f.inputs[i].nbytes
    for i in range(f.n_outputs):
        if describe_buffer(outputs[i], &f.outputs[i]) != 0:
            return 0
        for j in range(f.n_inputs):
            if fjffi_overlaps(&f.outputs[i], &f.inputs[j]):
                raise_overlap(c.name, i, j, True)
        for j in range(i):
            if fjffi_overlaps(&f.outputs[i], &f.outputs[j]):
                raise_overlap(c.name, i, j, False)
        moved[0] += f.outputs[i].nbytes
    return 1


cdef object describe_converting(Call c, const registry_target *t, tuple inputs, tuple outputs,
                                Frame *f, size_t *moved):
    """Describe and check every buffer of a call with one that is not
    described in place: a DLPack object, or anything marshal copies into a
    Buffer.  Returns what holds all the buffers: inputs, or inputs and
    what was made for the call."""
    cdef size_t i, j
    cdef int state
    cdef list converted = None
    cdef list unpinned = None
    cdef str name = c.name
    moved[0] = 0  # it starts over where describe_in_place stopped counting

    for i in range(f.n_inputs):
        obj = inputs[i]
        if (describe_buffer(obj, &f.inputs[i]) < 0
                and describe_scalar(obj, &f.inputs[i], f.scalars + 2 * i) < 0):
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
            check_input_bools(name, f, i)
        moved[0] += f.inputs[i].nbytes
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
                raise_overlap(name, i, j, True)
        for j in range(i):
            if fjffi_overlaps(&f.outputs[i], &f.outputs[j]):
                raise_overlap(name, i, j, False)
        moved[0] += f.outputs[i].nbytes
    if unpinned is not None and (t.is_callback or not t.thread_safe
                                 or releases_gil(t, moved[0])):
        # Other Python threads may run before the kernel returns, and a
        # DLPack producer's table gave pointers without holding the memory:
        # hold it now, through the producer's managed tensor.
        if converted is None:
            converted = []
        for i in unpinned:
            converted.append(describe_dlpack(inputs[i], &f.inputs[i], False, (name, "input", i),
                                             True))
    return inputs if converted is None else (inputs, converted)


# fjffi.call's Calls on the default registry, by name: the name's UTF-8,
# hash and the Call's resolution cache are then made once, not on every
# call.  Bounded, so a program calling ever new names does not grow it.
cdef dict CALLS = {}
cdef enum:
    CALLS_MAX = 1024


def call(str name not None, inputs, results, Registry registry=None):
    """Marshal inputs, allocate outputs like results, invoke, return the outputs.

    results: a tuple or list of objects with ``.shape`` and ``.dtype``
    (arrays, or any spec).  Returns a tuple of numpy arrays.
    """
    cdef Py_ssize_t i, n
    cdef Call c = None
    cdef bint fresh = False
    # name is exactly str (a subclass is refused above): a subclass could
    # make the lookup by name find another name's Call.
    cdef bint cached = registry is None or registry is default_registry
    if cached:
        c = <Call>CALLS.get(name)
    if c is None:
        c = Call(name, registry)
        fresh = cached
    cdef tuple specs = as_buffers(results, "results")
    n = len(specs)
    # Filled in place: no list on the way to the tuple (this is the path of
    # a Python float in and out, where every allocation shows).
    cdef tuple outputs = PyTuple_New(n)
    for i in range(n):
        out = new_output(specs[i], i)
        Py_INCREF(out)
        PyTuple_SET_ITEM(outputs, i, out)
    invoke_target(c, GUARD_DEFAULT, True, inputs, outputs)
    if fresh:  # kept only once its name resolved and ran
        if len(CALLS) >= CALLS_MAX:
            CALLS.clear()
        CALLS[name] = c
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
