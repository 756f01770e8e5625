# cython: language_level=3
"""The one room of fjffi that touches raw pointers.

Everything here that holds a data pointer holds, for as long as it uses it,
a strong reference to the object that owns the memory; a kernel only
borrows pointers for the duration of one call (seed invariants 4 and 5).
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport (
    PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBUF_FORMAT,
)
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.pycapsule cimport (
    PyCapsule_CheckExact, PyCapsule_GetName, PyCapsule_GetPointer, PyCapsule_New,
)
from cpython.ref cimport Py_INCREF, Py_DECREF, PyObject
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset, memcpy, memchr

cimport cython
cimport numpy as cnp

import numpy as np

from fjffi.errors import (
    BufferMismatchError, BufferOverrunError, CallFailedError, DuplicateTargetError,
    InvalidBoolByteError, LayoutError, NullPointerError, PurityViolationError,
    TargetNotFoundError, UnrepresentableValueError, UnsupportedDtypeError,
)
from fjffi._callbacks import Callback
from fjffi._targets import Target, foreign_address

cnp.import_array()

from fjffi._abi cimport *
from fjffi._kernels cimport fjffi_builtin_kernels, fjffi_num_builtin_kernels

cdef extern from "registry.h":
    enum:
        FJFFI_GIL_RELEASE
        FJFFI_GIL_HOLD
        FJFFI_GIL_AUTO
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct registry_target:
        char *name
        size_t name_len
        uint64_t hash
        void *fn
        int32_t api_version
        int32_t gil
        int32_t thread_safe
        int32_t is_callback
        pthread_mutex_t serial
        void *record
    ctypedef struct registry:
        pass
    uint64_t registry_hash(const char *name, size_t len) noexcept nogil
    int registry_init(registry *r) noexcept nogil
    void registry_destroy(registry *r) noexcept nogil
    const registry_target *registry_get(registry *r, const char *name, size_t len,
                                        uint64_t hash) noexcept nogil
    int registry_add(registry *r, const registry_target *target) noexcept nogil
    size_t registry_records(registry *r, void **out, size_t max) noexcept nogil
    size_t registry_count(registry *r) noexcept nogil

cdef extern from "numpy/arrayobject.h":
    # Steals a reference to descr.
    object PyArray_NewFromDescr(type subtype, cnp.dtype descr, int nd, cnp.npy_intp *dims,
                                cnp.npy_intp *strides, void *data, int flags, object obj)

cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

cdef extern from *:
    """
    #include <signal.h>
    #include <unistd.h>

    /* The target this thread is running, named on stderr if it crashes. */
    static __thread const char *fjffi_running_target
        __attribute__((tls_model("initial-exec")));

    static const int fjffi_crash_signals[4] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    static struct sigaction fjffi_crash_previous[4];

    /* Async-signal-safe: write(2) only, then the signal goes on to the
     * handler that was there before (faulthandler's, or the default). */
    static void fjffi_crash_report(int sig, siginfo_t *info, void *context) {
        static const char head[] = "fjffi: fatal signal in target '";
        const char *name = fjffi_running_target;
        ssize_t ignored;
        int i = 0;
        (void)context;
        if (name != NULL) {
            ignored = write(2, head, sizeof head - 1);
            ignored = write(2, name, strlen(name));
            ignored = write(2, "'\\n", 2);
            (void)ignored;
        }
        while (i < 3 && fjffi_crash_signals[i] != sig) ++i;
        sigaction(sig, &fjffi_crash_previous[i], NULL);
        /* A fault re-executes on return and reaches the previous handler;
         * a signal sent with kill() must be raised again. */
        if (info == NULL || info->si_code <= 0) raise(sig);
    }

    static int fjffi_install_crash_report(void) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = fjffi_crash_report;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        for (int i = 0; i < 4; ++i)
            if (sigaction(fjffi_crash_signals[i], &action, &fjffi_crash_previous[i]) != 0)
                return -1;
        return 0;
    }
    """
    const char *fjffi_running_target
    int fjffi_install_crash_report() noexcept nogil

cdef extern from *:
    """
    /* npy_intp and int64_t must be one type: shapes are handed to kernels as is. */
    _Static_assert(sizeof(npy_intp) == sizeof(int64_t), "fjffi needs a 64-bit npy_intp");
    _Static_assert(sizeof(Py_ssize_t) == sizeof(int64_t), "fjffi needs a 64-bit Py_ssize_t");
    """


# --- dtypes -----------------------------------------------------------------

# One row per dtype code of fjffi.h: name, itemsize, numpy kind, PEP 3118 format.
DTYPE_NAMES = (
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
    "uint64", "uint32", "uint16", "uint8", "bool", "complex64", "complex128",
)
C_TYPES = (
    "double", "float", "uint16_t (IEEE binary16)", "uint16_t (bfloat16 bits)", "int64_t",
    "int32_t", "int16_t", "int8_t", "uint64_t", "uint32_t", "uint16_t", "uint8_t",
    "uint8_t (0 or 1)", "float[2]", "double[2]",
)
cdef Py_ssize_t ITEMSIZE[15]
ITEMSIZE[:] = [8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 8, 16]
# Alignment of the C type; a complex number aligns like its parts.
cdef Py_ssize_t ALIGNMENT[15]
ALIGNMENT[:] = [8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 4, 8]
# bfloat16 has no PEP 3118 code: a buffer-protocol view shows its raw bits.
cdef const char *FORMATS[15]
FORMATS[:] = [b"d", b"f", b"e", b"H", b"q", b"i", b"h", b"b", b"Q", b"I", b"H", b"B", b"?",
              b"Zf", b"Zd"]

# numpy type number -> dtype code, -1 where fjffi has none.  Built once from
# numpy's own dtypes, so aliases (long and longlong are both int64) agree.
cdef int TYPE_NUM_CODE[32]
TYPE_NUM_CODE[:] = [-1] * 32
for _code, _name in enumerate(DTYPE_NAMES):
    if _name != "bfloat16":
        TYPE_NUM_CODE[np.dtype(_name).num] = _code
for _char in "lqLQ":
    _dt = np.dtype(_char)
    TYPE_NUM_CODE[_dt.num] = DTYPE_NAMES.index(_dt.name)

# numpy dtype of each code, parsed once (None for bfloat16: see bfloat16_dtype).
cdef tuple NUMPY_DTYPES = tuple([None if n == "bfloat16" else np.dtype(n) for n in DTYPE_NAMES])

cdef int BF16_TYPE_NUM = -2  # set once ml_dtypes is seen
cdef object BF16_DTYPE = None


cdef object bfloat16_dtype():
    """ml_dtypes' bfloat16, or None when ml_dtypes is not installed."""
    global BF16_DTYPE, BF16_TYPE_NUM
    if BF16_DTYPE is None:
        try:
            import ml_dtypes
        except ImportError:
            return None
        BF16_DTYPE = np.dtype(ml_dtypes.bfloat16)
        BF16_TYPE_NUM = BF16_DTYPE.num
    return BF16_DTYPE


cdef inline int type_num_code(int num) noexcept:
    if 0 <= num < 32:
        return TYPE_NUM_CODE[num]
    return FJFFI_BFLOAT16 if num == BF16_TYPE_NUM else -1


cdef inline int descr_code(cnp.dtype descr) noexcept:
    return type_num_code(descr.type_num)


# fjffi's own names, the common spelling, looked up before asking numpy.
cdef dict NAME_CODES = {name: code for code, name in enumerate(DTYPE_NAMES)}


cpdef int dtype_code(object dtype) except -1:
    """The fjffi.h code of a dtype given as a numpy dtype, a type or a name."""
    cdef int code
    if isinstance(dtype, np.dtype) and (<cnp.dtype>dtype).type_num < 32:
        code = descr_code(<cnp.dtype>dtype)
        if code >= 0 and cnp.PyDataType_ISNOTSWAPPED(<cnp.dtype>dtype):
            return code
    if type(dtype) is str:
        code = NAME_CODES.get(dtype, -1)
        if code >= 0:
            return code
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):  # numpy raises all three
        raise UnsupportedDtypeError(dtype, "not a dtype numpy knows") from None
    # numpy computes dt.name in Python (about 1.4 us): only a user dtype
    # (type_num >= 256) can be bfloat16.
    if (<cnp.dtype>dt).type_num >= 256 and dt.name == "bfloat16":
        bfloat16_dtype()
    code = descr_code(dt)
    if code < 0:
        raise UnsupportedDtypeError(dt)
    if not dt.isnative:
        raise UnsupportedDtypeError(dt, "not in native byte order")
    return code


cdef object code_dtype(int code):
    """The numpy dtype of a code; the name "bfloat16" when ml_dtypes is missing."""
    if code == FJFFI_BFLOAT16:
        dt = bfloat16_dtype()
        return "bfloat16" if dt is None else dt
    return NUMPY_DTYPES[code]


cdef Py_ssize_t first_bad_bool(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """Index of the first byte other than 0 or 1, or -1."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    # Eight bytes at a time: a byte is canonical iff its seven high bits are 0.
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        if word & 0xFEFEFEFEFEFEFEFEULL:
            break
        i += 8
    while i < n:
        if p[i] > 1:
            return i
        i += 1
    return -1


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


cdef int checked_nbytes(tuple shape, Py_ssize_t itemsize, Py_ssize_t *out) except -1:
    """product(shape) * itemsize, or 1 when it does not fit a Py_ssize_t."""
    cdef Py_ssize_t total = itemsize
    cdef Py_ssize_t d
    cdef bint overflow = False
    for dim in shape:
        d = dim
        if d == 0:
            total = 0
            overflow = False
            break
        if not overflow and __builtin_mul_overflow(total, d, &total):
            overflow = True
    out[0] = total
    return 1 if overflow else 0


cdef extern from *:
    bint __builtin_mul_overflow(Py_ssize_t a, Py_ssize_t b, Py_ssize_t *out) noexcept nogil


cdef tuple normalize_shape(object shape, Py_ssize_t actual=0):
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple([int(d.__index__()) for d in shape])
    except (TypeError, AttributeError):
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    if len(dims) > FJFFI_MAX_NDIM:
        raise ValueError(f"shape {dims} has {len(dims)} dimensions; at most {FJFFI_MAX_NDIM}")
    for d in dims:
        if d < 0:
            raise ValueError(f"shape {dims} has a negative dimension")
        if d > 0x7FFFFFFFFFFFFFFF:
            raise BufferMismatchError(None, None, actual, f"dimension {d} of shape {dims}")
    return dims


# --- Buffer -----------------------------------------------------------------

@cython.final
cdef class Buffer:
    """A validated, C-contiguous, aligned block of memory with a shape and dtype.

    ``Buffer(data, shape, dtype)`` wraps any C-contiguous buffer-protocol
    object without copying; its length must equal product(shape) * itemsize.
    ``Buffer.zeros(shape, dtype)`` allocates.  A Buffer exports the buffer
    protocol, so ``np.asarray(buf)`` is a zero-copy view (bfloat16 shows its
    raw bits as uint16).
    """

    cdef object owner          # keeps the memory alive
    cdef Py_buffer view
    cdef bint has_view
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
        self.alloc = NULL
        self.dims = NULL

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
        free(self.alloc)
        if self.dims != self.inline_dims:
            PyMem_Free(self.dims)

    def __init__(self, data, shape, dtype):
        cdef int code = dtype_code(dtype)
        cdef tuple dims
        cdef Py_ssize_t expected
        if self.has_view:
            raise TypeError("Buffer.__init__ may be called only once")
        # PyObject_GetBuffer raises (it is declared except -1): a read-only
        # or non-contiguous source fails the writable request with
        # BufferError (bytes, memoryview) or ValueError (numpy).
        try:
            PyObject_GetBuffer(data, &self.view,
                               PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT)
            self.readonly = False
        except (BufferError, ValueError):
            try:
                PyObject_GetBuffer(data, &self.view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
            except (BufferError, ValueError):
                raise LayoutError("Buffer data must be C-contiguous; "
                                  "fjffi.to_buffer copies any array") from None
            self.readonly = True
        self.has_view = True
        if holds_objects(self.view.format):
            # Its bytes are PyObject pointers: a kernel writing them would
            # corrupt the interpreter, one reading them would leak addresses.
            raise UnsupportedDtypeError(self.view.format.decode("ascii", "replace"),
                                        "Buffer data holds Python objects")
        dims = normalize_shape(shape, self.view.len)
        overflow = checked_nbytes(dims, ITEMSIZE[code], &expected)
        if overflow:
            raise BufferMismatchError(None, None, self.view.len,
                                      f"product of shape {dims} * itemsize {ITEMSIZE[code]}")
        if self.view.len != expected:
            raise BufferMismatchError(None, expected, self.view.len,
                                      f"shape {dims} of {DTYPE_NAMES[code]}")
        if (<uintptr_t>self.view.buf) % ALIGNMENT[code] != 0:
            raise LayoutError(f"Buffer data is not aligned to its {DTYPE_NAMES[code]} elements; "
                              "fjffi.to_buffer copies into aligned memory")
        self.setup(data, <char *>self.view.buf, expected, code, dims)
        if code == FJFFI_BOOL:
            bad = first_bad_bool(<uint8_t *>self.data, expected)
            if bad >= 0:
                raise InvalidBoolByteError(None, bad, (<uint8_t *>self.data)[bad])

    cdef int setup(self, object owner, char *data, Py_ssize_t nbytes, int code,
                   tuple dims) except -1:
        cdef Py_ssize_t ndim = len(dims)
        cdef Py_ssize_t i, stride = ITEMSIZE[code]
        self.owner = owner
        self.data = data
        self.nbytes_ = nbytes
        self.code = code
        self.ndim_ = <int>ndim
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
        return 0

    @staticmethod
    def zeros(shape, dtype):
        """A new writable Buffer of zeros."""
        return new_buffer(dtype_code(dtype), normalize_shape(shape))

    @property
    def shape(self):
        return tuple([self.dims[i] for i in range(self.ndim_)])

    @property
    def ndim(self):
        return self.ndim_

    @property
    def dtype(self):
        """A numpy dtype (for bfloat16 without ml_dtypes, the name "bfloat16")."""
        return code_dtype(self.code)

    @property
    def nbytes(self):
        return self.nbytes_

    @property
    def readonly(self):
        return bool(self.readonly)

    def tobytes(self):
        return PyBytes_FromStringAndSize(self.data, self.nbytes_)

    def __repr__(self):
        return (f"fjffi.Buffer(shape={self.shape}, dtype={DTYPE_NAMES[self.code]}, "
                f"nbytes={self.nbytes_}{', readonly' if self.readonly else ''})")

    def __getbuffer__(self, Py_buffer *view, int flags):
        if (flags & PyBUF_WRITABLE) and self.readonly:
            raise BufferError("this fjffi.Buffer is read-only")
        view.buf = self.data
        view.obj = self
        view.len = self.nbytes_
        view.readonly = self.readonly
        view.itemsize = ITEMSIZE[self.code]
        view.format = <char *>FORMATS[self.code] if flags & PyBUF_FORMAT else NULL
        view.ndim = self.ndim_
        view.shape = self.dims
        view.strides = self.dims + self.ndim_
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


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
    if checked_nbytes(dims, ITEMSIZE[code], &nbytes):
        raise BufferMismatchError(None, None, 0,
                                  f"product of shape {dims} * itemsize {ITEMSIZE[code]}")
    cdef Buffer buf = Buffer.__new__(Buffer)
    # calloc: zero pages come lazily for big buffers, and glibc aligns to 16.
    buf.alloc = calloc(max(nbytes, 1), 1)
    if buf.alloc == NULL:
        raise MemoryError(f"cannot allocate {nbytes} bytes")
    buf.readonly = False
    buf.setup(None, <char *>buf.alloc, nbytes, code, dims)
    return buf


cdef Buffer scalar_buffer(int code, const void *value):
    cdef Buffer buf = new_buffer(code, ())
    memcpy(buf.data, value, ITEMSIZE[code])
    return buf


def to_buffer(value):
    """Marshal a value to a Buffer, bit-exactly.

    Python float -> float64, int -> int64, bool -> bool, complex -> complex128;
    numpy scalars and arrays keep their dtype and shape; any other buffer
    goes through numpy.  A C-contiguous, aligned, native-order array is
    wrapped without copying; anything else is copied.
    """
    return marshal(value, None)


cdef Buffer marshal(object value, object index):
    """to_buffer; index names the input in error messages (None: no call)."""
    cdef fjffi_buffer desc
    cdef uint64_t slot[2]
    if type(value) is Buffer:
        return value
    if describe_scalar(value, &desc, slot) == 0:
        return scalar_buffer(desc.dtype, slot)
    return array_to_buffer(value, index)


cdef Buffer array_to_buffer(object value, object index):
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(value):
        arr = <cnp.ndarray>value
    elif isinstance(value, (str, bytes)):
        raise UnsupportedDtypeError(type(value).__name__,
                                    "wrap raw bytes with fjffi.Buffer(data, shape, dtype)")
    else:
        arr = np.asarray(value)
    cdef cnp.dtype descr = arr.descr
    if descr.type_num >= 256 and descr.name == "bfloat16":
        bfloat16_dtype()
    cdef int code = descr_code(descr)
    if code < 0:
        raise UnsupportedDtypeError(descr, "" if index is None else f"buffer {index}")
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not (flags & cnp.NPY_ARRAY_C_CONTIGUOUS and flags & cnp.NPY_ARRAY_ALIGNED
            and cnp.PyArray_ISNOTSWAPPED(arr)):
        # A copy in native order changes no value: a byte swap moves bytes,
        # it never goes through arithmetic, so NaN payloads survive.
        # np.array, not np.ascontiguousarray: that one keeps a misaligned
        # array as it is and turns a 0-d array into shape (1,).
        arr = np.array(arr, dtype=descr.newbyteorder("="), order="C", copy=True)
    if code == FJFFI_BOOL:
        bad = first_bad_bool(<uint8_t *>cnp.PyArray_DATA(arr), cnp.PyArray_NBYTES(arr))
        if bad >= 0:
            raise InvalidBoolByteError(index, bad, (<uint8_t *>cnp.PyArray_DATA(arr))[bad],
                                       "input")
    return wrap_array(arr, code)


def from_buffer(Buffer buf not None):
    """A numpy array over the Buffer's memory (0-d for shape ()), no copy."""
    cdef object dt = code_dtype(buf.code)
    if isinstance(dt, str):
        raise UnsupportedDtypeError("bfloat16",
                                    "install ml_dtypes to see bfloat16 as numpy; "
                                    "Buffer.tobytes() gives the raw bits")
    Py_INCREF(dt)  # PyArray_NewFromDescr steals a reference to the descr
    cdef int flags = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    if not buf.readonly:
        flags |= cnp.NPY_ARRAY_WRITEABLE
    arr = PyArray_NewFromDescr(<type>np.ndarray, <cnp.dtype>dt, buf.ndim_, <cnp.npy_intp *>buf.dims,
                                   NULL, buf.data, flags, None)
    Py_INCREF(buf)  # PyArray_SetBaseObject steals a reference to the base
    cnp.PyArray_SetBaseObject(<cnp.ndarray>arr, buf)
    return arr


# --- registry ---------------------------------------------------------------

GIL_POLICIES = ("release", "hold", "auto")

# Under "auto", a call that moves at least this many bytes (inputs plus
# outputs) releases the GIL.  Below it, the release and reacquire cost more
# than the kernel (measured: see "The GIL" in the README).
cdef Py_ssize_t AUTO_RELEASE_BYTES = 262144

cdef inline int check_name(object name, const char **data, Py_ssize_t *size) except -1:
    if type(name) is not str:
        raise TypeError(f"a target name must be a str, not {type(name).__name__}")
    data[0] = PyUnicode_AsUTF8AndSize(name, size)
    if size[0] == 0:
        raise ValueError("a target name must not be empty")
    if memchr(data[0], 0, size[0]) != NULL:
        raise ValueError(f"a target name must not contain a NUL character: {name!r}")
    return 0


cdef inline registry *reg_of(Registry r) noexcept nogil:
    return <registry *>r.reg


cdef class Registry:
    """A registry of targets by name: a C hash table behind a pthread rwlock.

    Lookups take the read lock and need no GIL, so calls from many threads
    resolve their targets in parallel; registration takes the write lock.
    A name is registered once and never removed, and the registry keeps a
    reference to whatever owns each target's code for its whole lifetime
    (seed threat T2).
    """

    def __cinit__(self):
        cdef registry *r = <registry *>calloc(1, sizeof(registry))
        if r == NULL or registry_init(r) != 0:
            free(r)
            raise MemoryError("cannot allocate a registry")
        self.reg = <opaque_registry *>r

    def __dealloc__(self):
        if self.reg == NULL:
            return
        cdef size_t n = registry_count(reg_of(self))
        cdef void **records = <void **>PyMem_Malloc(max(n, 1) * sizeof(void *))
        if records != NULL:
            n = registry_records(reg_of(self), records, n)
            for i in range(n):
                Py_DECREF(<object>records[i])
            PyMem_Free(records)
        registry_destroy(reg_of(self))
        free(self.reg)

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
        """Add a target; the registry takes a reference to record."""
        cdef const char *data
        cdef Py_ssize_t size
        cdef registry_target t
        cdef int rc
        check_name(name, &data, &size)
        if api_version not in (0, 1):
            raise ValueError(f"api_version must be 0 (raw) or 1 (typed), not {api_version!r}")
        if gil not in GIL_POLICIES:
            raise ValueError(f"gil must be one of {GIL_POLICIES}, not {gil!r}")
        if fn == NULL and not is_callback:
            raise NullPointerError(name)
        t.name = <char *>data
        t.name_len = size
        t.hash = registry_hash(data, size)
        t.fn = fn
        t.api_version = api_version
        t.gil = GIL_POLICIES.index(gil)
        t.thread_safe = thread_safe
        t.is_callback = is_callback
        t.record = <void *>record
        with nogil:
            rc = registry_add(reg_of(self), &t)
        if rc == 1:
            raise DuplicateTargetError(name)
        if rc != 0:
            raise MemoryError(f"cannot register {name!r}")
        Py_INCREF(record)
        return 0

    def register(self, name, target, *, int api_version=0, str gil="auto",
                 bint thread_safe=True, keep_alive=None):
        """Register a C function under name; returns its Target record.

        target is a PyCapsule holding the function pointer, a ctypes or cffi
        function pointer, or an object exposing one (``.ctypes``).  A bare
        integer address is refused.  api_version 0 is the raw ABI, 1 the
        typed ABI of fjffi.h.  gil is "release", "hold" or "auto".  With
        thread_safe=False, calls to this target run one at a time.
        keep_alive: any object for the registry to hold while the target is
        registered, such as the lib of an ffi.dlopen function (a cffi cdata
        does not keep its library loaded).
        """
        cdef void *fn
        cdef const char *data
        cdef Py_ssize_t size
        check_name(name, &data, &size)
        if PyCapsule_CheckExact(target):
            fn = PyCapsule_GetPointer(target, PyCapsule_GetName(target))
            kind, owner = "foreign", target
        else:
            address, kind, owner = foreign_address(name, target, api_version)
            fn = <void *><uintptr_t>address
        record = Target(name=name, kind=kind, api_version=api_version, gil=gil,
                        thread_safe=bool(thread_safe), owner=owner, keep_alive=keep_alive)
        self.add(name, fn, api_version, gil, thread_safe, False, record)
        return record

    def register_callback(self, name, fn, *, str flavor="pure", purity=None):
        """Register a Python callable under name; returns its Target record.

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
        """Register every built-in kernel (fjffi.default_registry has them)."""
        for i in range(fjffi_num_builtin_kernels):
            entry = &fjffi_builtin_kernels[i]
            name = entry.name.decode()
            record = Target(name=name, kind="builtin", api_version=entry.api_version,
                            gil="auto", thread_safe=True, owner=None, doc=entry.doc.decode())
            self.add(name, entry.fn, entry.api_version, "auto", True, False, record)

    def get(self, name):
        """The Target record registered under name (TargetNotFoundError if none)."""
        return <object>(<const registry_target *>self.lookup(name)).record

    def names(self):
        """The registered names, sorted."""
        return sorted([t.name for t in self.records()])

    cdef list records(self):
        cdef size_t n = registry_count(reg_of(self)) + 16
        cdef void **records = <void **>PyMem_Malloc(n * sizeof(void *))
        if records == NULL:
            raise MemoryError()
        try:
            n = registry_records(reg_of(self), records, n)
            return [<object>records[i] for i in range(n)]
        finally:
            PyMem_Free(records)

    def __len__(self):
        return registry_count(reg_of(self))

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


cdef fjffi_c_api C_API
C_API.version = FJFFI_C_API_VERSION
C_API.register_function = c_api_register
_C_API = PyCapsule_New(&C_API, FJFFI_C_API_CAPSULE, NULL)


# A kernel that crashes takes the process down (seed threat T7): say which.
if fjffi_install_crash_report() != 0:
    raise OSError("fjffi: cannot install the crash report signal handlers")

default_registry = Registry()
default_registry.register_builtins()


# --- the call ---------------------------------------------------------------

# Buffers per side held on the stack; more than this go to the heap.
DEF STACK_BUFFERS = 8
# Guard mode: bytes after each output, and the value they are filled with.
DEF GUARD_BYTES = 64
DEF GUARD_FILL = 0xFD


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


cdef int64_t NO_SHAPE[1]
NO_SHAPE[0] = 0


cdef inline int describe_scalar(object obj, fjffi_buffer *desc, uint64_t *slot) except -2:
    """Marshal a Python float, int, bool or complex into slot (16 bytes)
    without allocating: the one place that maps Python scalars to dtypes.
    Returns -1 for any other object."""
    cdef long long ll
    cdef int overflow = 0
    cdef type kind = type(obj)
    if kind is float:
        (<double *>slot)[0] = obj
        desc.dtype = FJFFI_FLOAT64
    elif kind is int:
        ll = PyLong_AsLongLongAndOverflow(obj, &overflow)
        if overflow:
            raise UnrepresentableValueError("int64", obj)
        (<int64_t *>slot)[0] = ll
        desc.dtype = FJFFI_INT64
    elif kind is bool:
        (<uint8_t *>slot)[0] = obj is True
        desc.dtype = FJFFI_BOOL
    elif kind is complex:
        (<double *>slot)[0] = obj.real
        (<double *>slot)[1] = obj.imag
        desc.dtype = FJFFI_COMPLEX128
    else:
        return -1
    desc.data = slot
    desc.nbytes = ITEMSIZE[desc.dtype]
    desc.ndim = 0
    desc.shape = NO_SHAPE
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


cdef str layout_problem(object obj):
    """Why obj cannot be an output, in words."""
    if type(obj) is Buffer:
        return "it is a read-only Buffer"
    if not cnp.PyArray_Check(obj):
        return f"it is a {type(obj).__name__}, not a numpy array or fjffi.Buffer"
    cdef cnp.ndarray arr = <cnp.ndarray>obj
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not flags & cnp.NPY_ARRAY_WRITEABLE:
        return "it is read-only"
    if not flags & cnp.NPY_ARRAY_C_CONTIGUOUS:
        return "it is not C-contiguous"
    if not flags & cnp.NPY_ARRAY_ALIGNED:
        return "it is misaligned"
    return "it is not in native byte order"


cdef inline bint overlaps(const fjffi_buffer *a, const fjffi_buffer *b) noexcept nogil:
    cdef uintptr_t a0 = <uintptr_t>a.data, b0 = <uintptr_t>b.data
    return (a.nbytes > 0 and b.nbytes > 0
            and a0 < b0 + b.nbytes and b0 < a0 + a.nbytes)


cdef inline void zero_outputs(Frame *f) noexcept nogil:
    for i in range(f.n_outputs):
        memset(f.outputs[i].data, 0, f.outputs[i].nbytes)


cdef inline int32_t run_kernel(const registry_target *t, Frame *f,
                               fjffi_context *ctx) noexcept nogil:
    """Call the kernel; allocates nothing, so it cannot fail on its own."""
    cdef int32_t rc
    cdef size_t i
    global fjffi_running_target
    cdef const char *outer = fjffi_running_target
    if not t.thread_safe:
        pthread_mutex_lock(&(<registry_target *>t).serial)
    fjffi_running_target = t.name
    if t.api_version == FJFFI_ABI_TYPED:
        rc = (<fjffi_typed_fn>t.fn)(f.inputs, f.n_inputs, f.outputs, f.n_outputs, ctx)
    else:
        for i in range(f.n_inputs + f.n_outputs):
            f.pointers[i] = f.inputs[i].data  # outputs follow inputs in both arrays
        rc = (<fjffi_raw_fn>t.fn)(<const uint8_t **>f.pointers, f.n_inputs,
                                  <uint8_t **>(f.pointers + f.n_inputs), f.n_outputs)
    fjffi_running_target = outer
    if not t.thread_safe:
        pthread_mutex_unlock(&(<registry_target *>t).serial)
    return rc


cdef extern from "<stdlib.h>" nogil:
    char *getenv(const char *name)


cdef bint guard_from_environment() noexcept:
    """FJFFI_GUARD set to anything but "" or "0".  getenv sees what
    os.environ sets (it calls putenv) and costs no Python objects."""
    cdef const char *value = getenv("FJFFI_GUARD")
    return value != NULL and value[0] != 0 and not (value[0] == c'0' and value[1] == 0)


cdef class Call:
    """A call to a named target: ``Call(name).invoke(inputs, outputs)``.

    The target is resolved through the registry on every invoke (seed
    invariant 1), so a Call is cheap to keep and never holds a stale target.
    """

    cdef readonly str name
    cdef readonly Registry registry
    cdef readonly bint guard
    cdef const char *cname
    cdef Py_ssize_t clen
    cdef uint64_t hash

    def __init__(self, str name not None, Registry registry=None, *, guard=None):
        """guard=True (or FJFFI_GUARD=1 in the environment when guard is None)
        runs the kernel on outputs followed by guard bytes, and raises
        BufferOverrunError when a kernel writes past an output's end."""
        check_name(name, &self.cname, &self.clen)
        self.name = name  # holds the str whose UTF-8 cname points into
        self.hash = registry_hash(self.cname, self.clen)
        self.registry = default_registry if registry is None else registry
        self.guard = guard_from_environment() if guard is None else guard

    def __repr__(self):
        return f"fjffi.Call({self.name!r})"

    def invoke(self, inputs, outputs, /):
        """Validate every buffer, zero the outputs, run the target.

        inputs: Buffers, arrays or anything to_buffer takes.  outputs:
        writable, C-contiguous, aligned, native-order numpy arrays or
        Buffers, written in place.  On any failure the outputs are left
        zeroed (or untouched, if validation failed first).
        """
        invoke_target(self.name, self.registry, self.cname, self.clen, self.hash, self.guard,
                      inputs, outputs)


cdef int invoke_target(str name, Registry registry, const char *cname, Py_ssize_t clen,
                       uint64_t hash, bint guard, object inputs, object outputs) except -1:
    cdef const registry_target *t = registry_get(reg_of(registry), cname, clen, hash)
    if t == NULL:
        raise TargetNotFoundError(name, registry.names())
    # A tuple holds its items for the whole call; a list could be
    # emptied by another thread while the kernel runs without the GIL.
    if type(inputs) is not tuple:
        inputs = tuple(inputs)
    if type(outputs) is not tuple:
        outputs = tuple(outputs)
    cdef Frame f
    frame_init(&f, len(<tuple>inputs), len(<tuple>outputs))
    try:
        run(name, guard, t, <tuple>inputs, <tuple>outputs, &f)
    finally:
        PyMem_Free(f.heap)
    return 0


cdef int run(str name, bint guard, const registry_target *t, tuple inputs, tuple outputs,
             Frame *f) except -1:
    """Steps 2 to 6 of the call: validate, zero, run, check; see the README."""
    cdef size_t i, j
    cdef int state
    cdef Py_ssize_t bad
    cdef fjffi_context ctx
    cdef int32_t rc
    cdef size_t moved = 0
    cdef list converted = None

    for i in range(f.n_inputs):
        obj = inputs[i]
        if (describe_buffer(obj, &f.inputs[i]) < 0
                and describe_scalar(obj, &f.inputs[i], f.scalars + 2 * i) < 0):
            # Slow path: copy into a native, contiguous Buffer, kept alive
            # by `converted` until the call returns.
            obj = marshal(obj, i)
            if converted is None:
                converted = []
            converted.append(obj)
            describe_buffer(obj, &f.inputs[i])
        if f.inputs[i].dtype == FJFFI_BOOL:
            bad = first_bad_bool(<uint8_t *>f.inputs[i].data, f.inputs[i].nbytes)
            if bad >= 0:
                raise InvalidBoolByteError(i, bad, (<uint8_t *>f.inputs[i].data)[bad],
                                           f"{name}: input {i}")
        moved += f.inputs[i].nbytes
    for i in range(f.n_outputs):
        obj = outputs[i]
        state = describe_buffer(obj, &f.outputs[i])
        if state != 0:
            if state < 0 and cnp.PyArray_Check(obj) and descr_code(
                    (<cnp.ndarray>obj).descr) < 0:
                raise UnsupportedDtypeError(obj.dtype, f"output {i}")
            raise LayoutError(f"{name}: output {i} cannot be written in place: "
                              f"{layout_problem(obj)}")
        for j in range(f.n_inputs):
            if overlaps(&f.outputs[i], &f.inputs[j]):
                raise LayoutError(f"{name}: output {i} overlaps input {j}; outputs "
                                  "are zeroed before the call, so they must not alias")
        for j in range(i):
            if overlaps(&f.outputs[i], &f.outputs[j]):
                raise LayoutError(f"{name}: output {i} overlaps output {j}")
        moved += f.outputs[i].nbytes

    if t.is_callback:
        run_callback(name, t, inputs if converted is None else (inputs, converted), f)
    else:
        ctx.message[0] = 0
        if guard:
            rc = run_guarded(name, t, f, &ctx)
        else:
            if t.gil == FJFFI_GIL_RELEASE or (t.gil == FJFFI_GIL_AUTO
                                              and moved >= AUTO_RELEASE_BYTES):
                with nogil:
                    zero_outputs(f)  # a large scrub need not hold the GIL either
                    rc = run_kernel(t, f, &ctx)
            else:
                zero_outputs(f)
                rc = run_kernel(t, f, &ctx)
        if rc != 0:
            zero_outputs(f)
            ctx.message[FJFFI_MESSAGE_SIZE - 1] = 0
            raise CallFailedError(name, rc, ctx.message.decode("utf-8", "replace"))
    for i in range(f.n_outputs):
        if f.outputs[i].dtype == FJFFI_BOOL:
            bad = first_bad_bool(<uint8_t *>f.outputs[i].data, f.outputs[i].nbytes)
            if bad >= 0:
                value = (<uint8_t *>f.outputs[i].data)[bad]
                zero_outputs(f)
                raise InvalidBoolByteError(f.n_inputs + i, bad, value,
                                           f"{name}: output {i}")
    return 0


cdef int32_t run_guarded(str name, const registry_target *t, Frame *f,
                         fjffi_context *ctx) except? -1:
    """Run the kernel on shadow outputs with guard bytes after their end.

    A kernel that writes past an output's declared size damages a guard
    byte: the outputs are then zeroed and BufferOverrunError raised.
    """
    cdef size_t i, k
    cdef int32_t rc
    cdef uint8_t *shadow
    cdef void **real = <void **>calloc(f.n_outputs + 1, sizeof(void *))
    if real == NULL:
        raise MemoryError()
    try:
        for i in range(f.n_outputs):
            real[i] = f.outputs[i].data
            memset(real[i], 0, f.outputs[i].nbytes)
            shadow = <uint8_t *>calloc(f.outputs[i].nbytes + GUARD_BYTES, 1)
            if shadow == NULL:
                raise MemoryError()
            memset(shadow + f.outputs[i].nbytes, GUARD_FILL, GUARD_BYTES)
            f.outputs[i].data = shadow
        with nogil:
            rc = run_kernel(t, f, ctx)
        for i in range(f.n_outputs):
            shadow = <uint8_t *>f.outputs[i].data
            for k in range(GUARD_BYTES):
                if shadow[f.outputs[i].nbytes + k] != GUARD_FILL:
                    raise BufferOverrunError(name, i, k)
        for i in range(f.n_outputs):
            memcpy(real[i], f.outputs[i].data, f.outputs[i].nbytes)
        return rc
    finally:
        for i in range(f.n_outputs):
            if real[i] != NULL:
                if f.outputs[i].data != real[i]:
                    free(f.outputs[i].data)
                f.outputs[i].data = real[i]
        free(real)


cdef int run_callback(str name, const registry_target *t, object owner, Frame *f) except -1:
    """Run a Python callback through the same contract as a C kernel."""
    cdef size_t i
    cdef cnp.ndarray arr
    callback = (<object>t.record).owner
    views = tuple([readonly_view(&f.inputs[i], owner) for i in range(f.n_inputs)])
    zero_outputs(f)
    try:
        if getattr(callback.fn, "takes_outputs", False):
            # It writes the outputs itself (an isolated target).
            callback.fn(views, tuple([readonly_view(&f.outputs[i], owner, True)
                                      for i in range(f.n_outputs)]))
            return 0
        results = callback(views)
    except (CallFailedError, PurityViolationError):
        zero_outputs(f)
        raise
    except Exception as exc:
        zero_outputs(f)
        raise CallFailedError(name, 1, f"{type(exc).__name__}: {exc}") from exc
    if len(results) != f.n_outputs:
        raise CallFailedError(name, 2, f"the callback returned {len(results)} arrays "
                              f"for {f.n_outputs} outputs")
    for i in range(f.n_outputs):
        arr = np.asarray(results[i])
        expected = describe_shape(&f.outputs[i])
        if (descr_code(arr.descr) != f.outputs[i].dtype
                or (<object>arr).shape != expected):
            zero_outputs(f)
            raise BufferMismatchError(
                f.n_inputs + i, f.outputs[i].nbytes, arr.nbytes,
                f"{name}: the callback returned {arr.dtype}{(<object>arr).shape} for "
                f"output {i}, declared {DTYPE_NAMES[f.outputs[i].dtype]}{expected}")
        if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISNOTSWAPPED(arr):
            arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
        memcpy(f.outputs[i].data, cnp.PyArray_DATA(arr), f.outputs[i].nbytes)
    return 0


cdef tuple describe_shape(const fjffi_buffer *desc):
    return tuple([desc.shape[i] for i in range(desc.ndim)])


cdef object readonly_view(const fjffi_buffer *desc, object owner, bint writable=False):
    """A read-only (or writable) ndarray over a descriptor's memory, keeping owner alive."""
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


def call(str name not None, inputs, results, Registry registry=None):
    """Marshal inputs, allocate outputs like results, invoke, return the outputs.

    results: objects with ``.shape`` and ``.dtype`` (arrays, or any spec).
    Returns a tuple of numpy arrays.
    """
    cdef const char *cname
    cdef Py_ssize_t clen, i, n
    check_name(name, &cname, &clen)
    if type(results) is not tuple:
        results = tuple(results)
    n = len(<tuple>results)
    # Filled in place: no list on the way to the tuple (this is the path of
    # a Python float in and out, where every allocation shows).
    cdef tuple outputs = PyTuple_New(n)
    for i in range(n):
        out = new_output((<tuple>results)[i])
        Py_INCREF(out)
        PyTuple_SET_ITEM(outputs, i, out)
    invoke_target(name, default_registry if registry is None else registry, cname, clen,
                  registry_hash(cname, clen), guard_from_environment(), inputs, outputs)
    return outputs


cdef object new_output(object spec):
    """An uninitialised array shaped like spec (invoke zeroes it first)."""
    cdef cnp.ndarray arr
    cdef cnp.dtype descr
    if cnp.PyArray_Check(spec):
        arr = <cnp.ndarray>spec
        descr = arr.descr
        if descr_code(descr) < 0:
            raise UnsupportedDtypeError(descr, "result")
        if not cnp.PyDataType_ISNOTSWAPPED(descr):
            descr = descr.newbyteorder("=")  # outputs are always native
        Py_INCREF(descr)
        return PyArray_NewFromDescr(<type>np.ndarray, descr, cnp.PyArray_NDIM(arr),
                                    cnp.PyArray_DIMS(arr), NULL, NULL, 0, None)
    dt = code_dtype(dtype_code(spec.dtype))
    if isinstance(dt, str):
        raise UnsupportedDtypeError("bfloat16", "install ml_dtypes for bfloat16 results")
    return np.empty(normalize_shape(spec.shape), dt)
