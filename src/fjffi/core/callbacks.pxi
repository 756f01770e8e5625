# --- Python callbacks as targets ---------------------------------------------

cdef int run_callback(str name, const registry_target *t, object owner, Frame *f) except -1:
    """Run a Python callback through the same contract as a C kernel: it
    gets read-only views of the inputs, its results are checked against the
    outputs and copied in, and on any failure, BaseException included, the
    outputs are left zeroed."""
    cdef size_t i
    cdef int stats = fjffi_stats_mode
    cdef uint64_t start = fjffi_stats_now() if stats == 2 else 0
    callback = (<tuple>t.record)[1]
    views = tuple([input_view(&f.inputs[i], owner, f) for i in range(f.n_inputs)])
    zero_outputs(f)
    try:
        call_callback(name, callback, views, owner, f)
    except BaseException:
        if stats:
            count_call(t, f, True, fjffi_stats_now() - start if stats == 2 else 0)
        raise
    if stats:
        count_call(t, f, False, fjffi_stats_now() - start if stats == 2 else 0)
    return 0


cdef int call_callback(str name, object callback, tuple views, object owner,
                       Frame *f) except -1:
    cdef size_t i
    try:
        if getattr(callback.fn, "takes_outputs", False):
            # It writes the outputs itself (an isolated target).
            callback.fn(views, tuple([array_view(&f.outputs[i], owner, True)
                                      for i in range(f.n_outputs)]))
            return 0
        results = callback(views)
    except BaseException as exc:
        # The callback may have written an output through a reference of its own.
        zero_outputs(f)
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, ...
            raise
        if isinstance(exc, PurityViolationError) or (
                isinstance(exc, FfiError) and getattr(exc, "target", None) == name):
            raise  # this target's own error, said in its own words
        raise CallFailedError(name, 1, f"{type(exc).__name__}: {exc}") from exc
    try:
        check_results(name, results, f)
    except BaseException as exc:
        zero_outputs(f)
        if isinstance(exc, FfiError) or not isinstance(exc, Exception):
            raise
        # Python code of the results' own (__len__, __array__) failed.
        raise CallFailedError(name, 1, f"{type(exc).__name__}: {exc}") from exc
    return 0


cdef int check_results(str name, object results, Frame *f) except -1:
    """Copy each result into its output, once every one has been checked."""
    cdef size_t i
    cdef cnp.ndarray arr
    if len(results) != f.n_outputs:
        raise CallFailedError(name, 2, f"the callback returned {len(results)} arrays "
                              f"for {f.n_outputs} outputs")
    arrays = []
    for i in range(f.n_outputs):
        arr = np.asarray(results[i])
        expected = describe_shape(&f.outputs[i])
        if (user_descr_code(arr.descr) != f.outputs[i].dtype
                or (<object>arr).shape != expected):
            raise BufferMismatchError(
                f.n_inputs + i, f.outputs[i].nbytes, arr.nbytes,
                f"{name}: the callback returned {arr.dtype}{(<object>arr).shape} for "
                f"output {i}, declared {DTYPE_NAMES[f.outputs[i].dtype]}{expected}")
        if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISNOTSWAPPED(arr):
            arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
        arrays.append(arr)
    for i in range(f.n_outputs):
        memcpy(f.outputs[i].data, cnp.PyArray_DATA(<cnp.ndarray>arrays[i]),
               f.outputs[i].nbytes)
    return 0


cdef tuple describe_shape(const fjffi_buffer *desc):
    return tuple([desc.shape[i] for i in range(desc.ndim)])


cdef object input_view(const fjffi_buffer *desc, object owner, Frame *f):
    """A read-only ndarray of one input for a callback, which may keep it:
    over the caller's memory (owner keeps it alive), or over a copy for a
    Python scalar marshalled into the call frame, which dies with the call."""
    cdef const uint64_t *data = <const uint64_t *>desc.data
    cdef fjffi_buffer copy
    cdef Buffer buf
    if f.scalars <= data < f.scalars + 2 * f.n_inputs:
        buf = new_buffer(desc.dtype, ())
        memcpy(buf.data, desc.data, desc.nbytes)
        copy = desc[0]
        copy.data = buf.data
        return array_view(&copy, buf, False)
    return array_view(desc, owner, False)


cdef object array_view(const fjffi_buffer *desc, object owner, bint writable):
    """An ndarray over a descriptor's memory, keeping owner alive."""
    dt = code_dtype(desc.dtype)
    if isinstance(dt, str):
        raise UnsupportedDtypeError("bfloat16", "install ml_dtypes to pass bfloat16 to a callback")
    Py_INCREF(dt)
    arr = PyArray_NewFromDescr(<type>np.ndarray, <cnp.dtype>dt, desc.ndim,
                               <cnp.npy_intp *>desc.shape, NULL, desc.data,
                               cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
                               | (cnp.NPY_ARRAY_WRITEABLE if writable else 0), None)
    Py_INCREF(owner)
    cnp.PyArray_SetBaseObject(<cnp.ndarray>arr, owner)
    return arr
