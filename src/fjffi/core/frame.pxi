# --- the frame of a call: descriptors and their checks ---------------------
#
# What Call.invoke, fjffi.call and the C API's invoke share: the frame of
# descriptors a kernel gets, how a buffer is described, the built-in
# kernels' contracts and the scrub.

cdef enum:
    # Buffers per side held on the stack; more than this go to the heap.
    STACK_BUFFERS = 8


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


cdef inline bint frame_on_stack(Frame *f, size_t n_inputs, size_t n_outputs) noexcept:
    """Set f up on its own stack arrays when n_inputs and n_outputs fit
    there; false, leaving f to frame_init, when they do not."""
    if n_inputs > STACK_BUFFERS or n_inputs + n_outputs > 2 * STACK_BUFFERS:
        return False
    f.heap = NULL
    f.n_inputs = n_inputs
    f.n_outputs = n_outputs
    f.inputs = f.stack
    f.pointers = f.pointer_stack
    f.scalars = f.scalar_stack
    f.outputs = f.stack + n_inputs
    return True


cdef int frame_init(Frame *f, size_t n_inputs, size_t n_outputs) except -1:
    """The frame for n_inputs and n_outputs: on the stack when they fit,
    else on the heap (the caller frees f.heap)."""
    if frame_on_stack(f, n_inputs, n_outputs):
        return 0
    cdef size_t n = n_inputs + n_outputs
    f.n_inputs = n_inputs
    f.n_outputs = n_outputs
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
    cdef int code, flags, k
    cdef size_t nbytes
    if type(obj) is Buffer:
        buf = <Buffer>obj
        if not fjffi_seen_int(&buf.ready):
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
        desc.dtype = code
        desc.ndim = cnp.PyArray_NDIM(arr)
        desc.shape = <const int64_t *>cnp.PyArray_DIMS(arr)
        # PyArray_NBYTES, without its call into numpy: an array's size in
        # bytes always fits, so the product cannot overflow.
        nbytes = cnp.PyArray_ITEMSIZE(arr)
        for k in range(desc.ndim):
            nbytes *= desc.shape[k]
        desc.nbytes = nbytes
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


cdef inline bint contract_holds(const fjffi_raw_contract *c, Frame *f) noexcept nogil:
    """Whether a built-in raw kernel's contract holds for the frame: the
    check on every call; refuse_contract says what is wrong when not."""
    cdef size_t i
    cdef const fjffi_buffer *b
    if f.n_inputs != c.n_inputs or f.n_outputs != c.n_outputs:
        return True  # the kernel checks its counts itself
    for i in range(f.n_inputs + f.n_outputs):
        b = &f.inputs[i]  # outputs follow inputs
        if ((c.dtype >= 0 and b.dtype != c.dtype) or b.nbytes < c.min_nbytes
                or b.nbytes > c.max_nbytes):
            return False
    return True


cdef int refuse_contract(str name, const fjffi_raw_contract *c, Frame *f) except -1:
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


cdef inline tuple as_buffers(object seq, str which):
    # A tuple holds its items for the whole call; a list could be
    # emptied by another thread while the kernel runs without the GIL.
    if type(seq) is tuple:
        return <tuple>seq
    if type(seq) is list:
        return tuple(<list>seq)
    raise TypeError(f"{which} must be a tuple or a list of buffers, not {type(seq).__name__}")


cdef int check_input_bools(str name, Frame *f, size_t i) except -1:
    cdef Py_ssize_t bad = fjffi_first_bad_bool(<uint8_t *>f.inputs[i].data, f.inputs[i].nbytes)
    if bad >= 0:
        raise InvalidBoolByteError(i, bad, (<uint8_t *>f.inputs[i].data)[bad],
                                   f"{name}: input {i}")
    return 0


cdef int raise_overlap(str name, size_t i, size_t j, bint with_input) except -1:
    if with_input:
        raise LayoutError(f"{name}: output {i} overlaps input {j}; outputs "
                          "are zeroed before the call, so they must not alias")
    raise LayoutError(f"{name}: output {i} overlaps output {j}")
