# --- Buffer: a validated block of memory with a shape and a dtype -----------

cdef bint holds_objects(const char *fmt) noexcept:
    """Whether a PEP 3118 format has an 'O' item (a PyObject pointer); the
    field names of a struct format, between colons, do not count."""
    cdef bint in_name = False
    if fmt == NULL:
        return False
    while fmt[0] != 0:
        if fmt[0] == c':':
            in_name = not in_name
        elif fmt[0] == c'O' and not in_name:
            return True
        fmt += 1
    return False


cdef int checked_nbytes(tuple dims, Py_ssize_t itemsize, Py_ssize_t *out) except -1:
    """product(dims) * itemsize into out; 1 when it does not fit (dims come
    from normalize_shape: at most FJFFI_MAX_NDIM, each >= 0)."""
    cdef int64_t shape[FJFFI_MAX_NDIM]
    cdef int64_t total
    cdef int i, ndim = len(dims)
    for i in range(ndim):
        shape[i] = dims[i]
    cdef int rc = fjffi_checked_nbytes(shape, ndim, itemsize, &total)
    out[0] = total
    return rc != 0


cdef tuple normalize_shape(object shape, Py_ssize_t actual=0):
    """shape as a tuple of Python ints: an int or a sequence of integers
    (numpy integers too); bools, floats and negative sizes are refused."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"shape must be a tuple of ints, got {shape!r}")
    dims = tuple([int(d) for d in dims])
    if len(dims) > FJFFI_MAX_NDIM:
        raise ValueError(f"shape {dims} has {len(dims)} dimensions; at most {FJFFI_MAX_NDIM}")
    for d in dims:
        if d < 0:
            raise ValueError(f"shape {dims} has a negative dimension")
        if d > 0x7FFFFFFFFFFFFFFF:
            raise BufferMismatchError(None, None, actual, f"dimension {d} of shape {dims}")
    return dims


# no_gc_clear: Cython's tp_clear would drop view.obj without releasing the
# view, freeing an exporter (a bytearray) that still counts the export; the
# free-threaded build's final collection at exit runs it on a live Buffer.
@cython.final
@cython.no_gc_clear
cdef class Buffer:
    """Buffer(data, shape, dtype)
--

    A validated, C-contiguous, aligned block of memory with a shape and dtype.

    ``Buffer(data, shape, dtype)`` wraps any C-contiguous buffer-protocol
    object without copying; its length must equal product(shape) * itemsize.
    ``Buffer.zeros(shape, dtype)`` allocates.  A Buffer exports the buffer
    protocol, so ``np.asarray(buf)`` is a zero-copy view (bfloat16 shows its
    raw bits as uint16).  copy, deepcopy and pickle copy the bytes.

    Thread safety: a Buffer is immutable after construction (its memory is
    not: writes from several threads race as they would on any array).
    """

    cdef object owner          # keeps the memory alive
    cdef Py_buffer view
    cdef bint has_view
    cdef int ready             # set once, by setup(); never cleared
    cdef int claimed           # set by the one __init__ that may fill the fields
    cdef void *alloc           # memory this Buffer allocated itself
    cdef char *data
    cdef Py_ssize_t nbytes_
    cdef int code
    cdef int ndim_
    cdef bint readonly
    cdef Py_ssize_t *dims      # ndim shape entries, then ndim strides
    cdef Py_ssize_t inline_dims[16]  # dims for up to 8 dimensions, no malloc

    def __cinit__(self):
        self.has_view = False
        self.ready = False
        self.alloc = NULL
        self.dims = NULL

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
        free(self.alloc)
        if self.dims != self.inline_dims:
            PyMem_Free(self.dims)

    def __init__(self, data, shape, dtype):
        cdef int code
        cdef tuple dims
        cdef Py_ssize_t expected
        # A second __init__ would release the memory under live views.
        # Claimed atomically: two first __init__s at once (possible without
        # a GIL) would both fill self.view.
        if fjffi_seen_int(&self.ready) or not fjffi_claim(&self.claimed):
            raise TypeError("fjffi.Buffer.__init__ may be called only once")
        code = dtype_code(dtype)
        get_buffer(data, &self.view, &self.readonly)
        self.has_view = True
        if holds_objects(self.view.format):
            # Its bytes are PyObject pointers: a kernel writing them would
            # corrupt the interpreter, one reading them would leak addresses.
            raise UnsupportedDtypeError(self.view.format.decode("ascii", "replace"),
                                        "Buffer data holds Python objects")
        dims = normalize_shape(shape, self.view.len)
        if checked_nbytes(dims, itemsize_of(code), &expected):
            raise BufferMismatchError(None, None, self.view.len,
                                      f"product of shape {dims} * itemsize {itemsize_of(code)}")
        if self.view.len != expected:
            raise BufferMismatchError(None, expected, self.view.len,
                                      f"shape {dims} of {DTYPE_NAMES[code]}")
        # An empty buffer is never read, so its address need not be aligned
        # (an empty bytearray's may be odd).
        if expected > 0 and (<uintptr_t>self.view.buf) % fjffi_dtype_info_of(code).alignment:
            raise LayoutError(f"Buffer data is not aligned to its {DTYPE_NAMES[code]} elements; "
                              "fjffi.to_buffer copies into aligned memory")
        if code == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<uint8_t *>self.view.buf, expected)
            if bad >= 0:
                raise InvalidBoolByteError(None, bad, (<uint8_t *>self.view.buf)[bad])
        self.setup(data, <char *>self.view.buf, expected, code, dims)

    cdef int setup(self, object owner, char *data, Py_ssize_t nbytes, int code,
                   tuple dims) except -1:
        cdef Py_ssize_t ndim = len(dims)
        cdef Py_ssize_t i, stride = itemsize_of(code)
        if ndim <= 8:
            self.dims = self.inline_dims
        else:
            self.dims = <Py_ssize_t *>PyMem_Malloc(2 * ndim * sizeof(Py_ssize_t))
            if self.dims == NULL:
                raise MemoryError()
        for i in range(ndim):
            self.dims[i] = dims[i]
        for i in range(ndim - 1, -1, -1):
            self.dims[ndim + i] = stride
            stride *= self.dims[i]
        self.owner = owner
        self.data = data
        self.nbytes_ = nbytes
        self.code = code
        self.ndim_ = <int>ndim
        fjffi_publish_int(&self.ready, 1)  # last: a thread that sees ready sees the rest
        return 0

    cdef inline int check_ready(self) except -1:
        if not fjffi_seen_int(&self.ready):
            raise TypeError("this fjffi.Buffer was never initialised (made with "
                            "Buffer.__new__ and no __init__)")
        return 0

    @staticmethod
    def zeros(shape, dtype):
        """A new writable Buffer of zeros."""
        return new_buffer(dtype_code(dtype), normalize_shape(shape))

    @property
    def shape(self):
        self.check_ready()
        return tuple([self.dims[i] for i in range(self.ndim_)])

    @property
    def ndim(self):
        self.check_ready()
        return self.ndim_

    @property
    def dtype(self):
        """A numpy dtype (for bfloat16 without ml_dtypes, the name "bfloat16")."""
        self.check_ready()
        return code_dtype(self.code)

    @property
    def nbytes(self):
        self.check_ready()
        return self.nbytes_

    @property
    def readonly(self):
        self.check_ready()
        return bool(self.readonly)

    def tobytes(self):
        self.check_ready()
        return PyBytes_FromStringAndSize(self.data, self.nbytes_)

    def __repr__(self):
        if not fjffi_seen_int(&self.ready):
            return "fjffi.Buffer(<never initialised>)"
        return (f"fjffi.Buffer(shape={self.shape}, dtype={DTYPE_NAMES[self.code]}, "
                f"nbytes={self.nbytes_}{', readonly' if self.readonly else ''})")

    def __reduce__(self):
        self.check_ready()
        return (rebuild_buffer, (self.tobytes(), self.shape, DTYPE_NAMES[self.code],
                                 bool(self.readonly)))

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.check_ready()
        if (flags & PyBUF_WRITABLE) and self.readonly:
            raise BufferError("this fjffi.Buffer is read-only")
        view.buf = self.data
        view.obj = self
        view.len = self.nbytes_
        view.readonly = self.readonly
        view.itemsize = itemsize_of(self.code)
        view.format = (<char *>fjffi_dtype_info_of(self.code).format
                       if flags & PyBUF_FORMAT else NULL)
        view.ndim = self.ndim_
        view.shape = self.dims
        view.strides = self.dims + self.ndim_
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


def rebuild_buffer(bytes data, shape, str dtype, bint readonly):
    """Buffer.__reduce__'s constructor: a new Buffer holding a copy of data."""
    cdef Buffer buf = new_buffer(dtype_code(dtype), normalize_shape(shape))
    if len(data) != buf.nbytes_:
        raise BufferMismatchError(None, buf.nbytes_, len(data), "pickled fjffi.Buffer")
    memcpy(buf.data, <const char *>data, buf.nbytes_)
    buf.readonly = readonly
    return buf


cdef int get_buffer(object data, Py_buffer *view, bint *readonly) except -1:
    """A C-contiguous buffer-protocol view of data, writable if it can be."""
    # PyObject_GetBuffer raises (it is declared except -1): a read-only
    # source fails the writable request with BufferError (bytes,
    # memoryview) or ValueError (numpy).
    try:
        PyObject_GetBuffer(data, view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT)
        readonly[0] = False
        return 0
    except (BufferError, ValueError, TypeError):
        pass
    try:
        PyObject_GetBuffer(data, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
        readonly[0] = True
        return 0
    except (BufferError, ValueError, TypeError) as exc:
        problem = exc
    if cnp.PyArray_Check(data):
        arr = <cnp.ndarray>data
        if user_descr_code(arr.descr) < 0 or not cnp.PyArray_ISNOTSWAPPED(arr):
            raise UnsupportedDtypeError(arr.dtype, "fjffi.Buffer data") from None
        if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
            raise LayoutError("Buffer data must be C-contiguous; "
                              "fjffi.to_buffer copies any array") from None
    if isinstance(problem, TypeError):
        raise TypeError(f"fjffi.Buffer needs an object with the buffer protocol, not "
                        f"{type(data).__name__}") from None
    raise LayoutError(f"Buffer data must be a C-contiguous buffer ({problem}); "
                      "fjffi.to_buffer copies any array") from None


cdef Buffer wrap_array(cnp.ndarray arr, int code):
    """A Buffer over a C-contiguous, aligned, native array, sharing its memory."""
    cdef Buffer buf = Buffer.__new__(Buffer)
    buf.readonly = not cnp.PyArray_ISWRITEABLE(arr)
    buf.setup(arr, <char *>cnp.PyArray_DATA(arr), cnp.PyArray_NBYTES(arr), code,
              (<object>arr).shape)
    return buf


cdef Buffer new_buffer(int code, tuple dims):
    """A new writable, zeroed Buffer of a validated shape."""
    cdef Py_ssize_t nbytes
    if checked_nbytes(dims, itemsize_of(code), &nbytes):
        raise BufferMismatchError(None, None, 0,
                                  f"product of shape {dims} * itemsize {itemsize_of(code)}")
    cdef Buffer buf = Buffer.__new__(Buffer)
    # calloc: zero pages come lazily for big buffers, and glibc aligns to 16.
    buf.alloc = calloc(max(nbytes, 1), 1)
    if buf.alloc == NULL:
        raise MemoryError(f"cannot allocate {nbytes} bytes")
    buf.readonly = False
    buf.setup(None, <char *>buf.alloc, nbytes, code, dims)
    return buf
