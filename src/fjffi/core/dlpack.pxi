# --- DLPack: any __dlpack__ object on host memory, zero-copy ---------------------
#
# An input or output that is neither a numpy array nor a Buffer but has
# __dlpack__ is described straight from the producer's DLTensor.  Where the
# producer offers the C exchange table (__dlpack_c_exchange_api__), an input
# is described with no Python call and no allocation.  What keeps the memory
# valid (the object itself, the producer's managed tensor, or a copy) is
# held by the call until it returns.

from cpython.pycapsule cimport PyCapsule_IsValid, PyCapsule_SetName
from cpython.ref cimport PyObject

cdef extern from "dlpack.h" nogil:
    ctypedef struct DLPackVersion:
        uint32_t major
        uint32_t minor
    ctypedef struct DLDevice:
        int32_t device_type
        int32_t device_id
    ctypedef struct DLDataType:
        uint8_t code
        uint8_t bits
        uint16_t lanes
    ctypedef struct DLTensor:
        void *data
        DLDevice device
        int32_t ndim
        DLDataType dtype
        int64_t *shape
        int64_t *strides
        uint64_t byte_offset
    ctypedef struct DLManagedTensor:
        DLTensor dl_tensor
        void (*deleter)(DLManagedTensor *self)
    ctypedef struct DLManagedTensorVersioned:
        DLPackVersion version
        void (*deleter)(DLManagedTensorVersioned *self)
        uint64_t flags
        DLTensor dl_tensor
    ctypedef struct DLPackExchangeAPIHeader:
        DLPackVersion version
    ctypedef struct DLPackExchangeAPI:
        DLPackExchangeAPIHeader header
        int (*managed_tensor_from_py_object_no_sync)(
            void *py_object, DLManagedTensorVersioned **out) except -1
        int (*dltensor_from_py_object_no_sync)(void *py_object, DLTensor *out) except -1
    enum:
        FJFFI_DLPACK_MAJOR
        DLPACK_FLAG_BITMASK_READ_ONLY
        kDLCPU, kDLCUDAHost, kDLROCMHost
        kDLInt, kDLUInt, kDLFloat, kDLBfloat, kDLComplex, kDLBool

DLPACK_DEVICES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal",
                  9: "vpi", 10: "rocm", 11: "rocm_host", 12: "ext_dev", 13: "cuda_managed",
                  14: "oneapi", 15: "webgpu", 16: "hexagon", 17: "maia"}

# The exchange table of each producer type, as an int address (0: none).
cdef dict EXCHANGE_APIS = {}
# Where an empty tensor's descriptor points: the producer may give NULL.
cdef uint64_t EMPTY_DATA[2]


@cython.final
cdef class DLPackHolder:
    """Owns one managed tensor taken from a producer's capsule, and gives it
    back (its deleter) when the call no longer needs the memory."""
    cdef DLManagedTensorVersioned *versioned
    cdef DLManagedTensor *legacy

    def __dealloc__(self):
        if self.versioned != NULL and self.versioned.deleter != NULL:
            self.versioned.deleter(self.versioned)
        elif self.legacy != NULL and self.legacy.deleter != NULL:
            self.legacy.deleter(self.legacy)


cdef str where_str(object where):
    """where: a str, or (target, "input" or "output", index), formatted only
    when an error needs it."""
    if type(where) is tuple:
        return f"{where[0]}: {where[1]} {where[2]}"
    return where


cdef inline bint has_dlpack(object obj) noexcept:
    """An object for this room: numpy arrays and scalars keep numpy's own
    path (its dtypes, its error messages)."""
    if type(obj) in EXCHANGE_APIS:  # a producer seen before
        return True
    return (not cnp.PyArray_Check(obj) and hasattr(type(obj), "__dlpack__")
            and not isinstance(obj, np.generic))


cdef const DLPackExchangeAPI *exchange_api(type kind) except? NULL:
    cdef object address = EXCHANGE_APIS.get(kind)
    cdef const DLPackExchangeAPI *api = NULL
    if address is None:
        cap = getattr(kind, "__dlpack_c_exchange_api__", None)
        if cap is not None and PyCapsule_IsValid(cap, b"dlpack_exchange_api"):
            api = <const DLPackExchangeAPI *>PyCapsule_GetPointer(cap, b"dlpack_exchange_api")
            if api.header.version.major != FJFFI_DLPACK_MAJOR:
                api = NULL
        # The producer keeps its table for the life of the process.
        address = <uintptr_t>api
        EXCHANGE_APIS[kind] = address
    return <const DLPackExchangeAPI *><uintptr_t>address


cdef str device_name(int32_t device_type, int32_t device_id):
    return f"{DLPACK_DEVICES.get(device_type, f'device type {device_type}')}:{device_id}"


cdef int dlpack_code(const DLDataType *t, object where, object kind) except -1:
    cdef int code = -1
    cdef int b = t.bits
    if t.lanes == 1:
        if t.code == kDLFloat:
            code = (FJFFI_FLOAT64 if b == 64 else FJFFI_FLOAT32 if b == 32
                    else FJFFI_FLOAT16 if b == 16 else -1)
        elif t.code == kDLBfloat and b == 16:
            code = FJFFI_BFLOAT16
        elif t.code == kDLInt:
            code = (FJFFI_INT64 if b == 64 else FJFFI_INT32 if b == 32
                    else FJFFI_INT16 if b == 16 else FJFFI_INT8 if b == 8 else -1)
        elif t.code == kDLUInt:
            code = (FJFFI_UINT64 if b == 64 else FJFFI_UINT32 if b == 32
                    else FJFFI_UINT16 if b == 16 else FJFFI_UINT8 if b == 8 else -1)
        elif t.code == kDLBool and b == 8:
            code = FJFFI_BOOL
        elif t.code == kDLComplex:
            code = FJFFI_COMPLEX128 if b == 128 else FJFFI_COMPLEX64 if b == 64 else -1
    if code < 0:
        raise UnsupportedDtypeError(
            f"DLPack (code {t.code}, bits {t.bits}, lanes {t.lanes})",
            f"{where_str(where)}: a {kind} of a dtype fjffi does not have")
    return code


cdef int dltensor_describe(const DLTensor *t, fjffi_buffer *desc, object where,
                           object kind) except -1:
    """Fill desc from t.  Returns 0, or 1 where the memory is not C-contiguous
    or is misaligned (usable only through a copy)."""
    cdef int code, k
    cdef int64_t n = 0, expected = 1
    cdef bint dense = True
    if t.device.device_type not in (kDLCPU, kDLCUDAHost, kDLROCMHost):
        raise LayoutError(f"{where_str(where)}: the {kind} is on device "
                          f"{device_name(t.device.device_type, t.device.device_id)}; fjffi "
                          "runs kernels on host memory only: copy it to the CPU first")
    code = dlpack_code(&t.dtype, where, kind)
    if t.ndim < 0 or t.ndim > FJFFI_MAX_NDIM:
        raise LayoutError(f"{where_str(where)}: the {kind} has {t.ndim} dimensions")
    for k in range(t.ndim):
        if t.shape[k] < 0:
            raise LayoutError(f"{where_str(where)}: the {kind} has a negative dimension "
                              f"{t.shape[k]}")
    if fjffi_checked_nbytes(t.shape, t.ndim, itemsize_of(code), &n) != 0:
        raise BufferMismatchError(None, None, 0, f"{where_str(where)}: the {kind}'s byte size")
    if t.strides != NULL and n > 0:
        for k in range(t.ndim - 1, -1, -1):
            if t.shape[k] != 1 and t.strides[k] != expected:
                dense = False
                break
            expected *= t.shape[k]
    desc.data = <char *>t.data + t.byte_offset
    if n == 0:
        desc.data = EMPTY_DATA
    desc.nbytes = n
    desc.dtype = code
    desc.ndim = t.ndim
    desc.shape = t.shape if t.ndim > 0 else NO_SHAPE
    if not dense or <uintptr_t>desc.data % fjffi_dtype_info_of(code).alignment:
        return 1
    return 0


cdef Buffer dltensor_copy(const DLTensor *t, int code, object owner):
    """A C-contiguous, aligned copy of a strided or misaligned DLTensor."""
    cdef int k
    cdef Py_ssize_t item = itemsize_of(code)
    cdef cnp.npy_intp dims[FJFFI_MAX_NDIM]
    cdef cnp.npy_intp strides[FJFFI_MAX_NDIM]
    cdef Py_ssize_t expected = item
    for k in range(t.ndim - 1, -1, -1):
        dims[k] = t.shape[k]
        strides[k] = t.strides[k] * item if t.strides != NULL else expected
        expected *= t.shape[k]
    # bfloat16 moves as its raw 16 bits: a copy changes no value.
    dt = np.dtype(np.uint16) if code == FJFFI_BFLOAT16 else code_dtype(code)
    Py_INCREF(dt)  # PyArray_NewFromDescr steals a reference to the descr
    view = PyArray_NewFromDescr(<type>np.ndarray, <cnp.dtype>dt, t.ndim, dims, strides,
                                <char *>t.data + t.byte_offset, 0, None)
    Py_INCREF(owner)  # PyArray_SetBaseObject steals a reference to the base
    cnp.PyArray_SetBaseObject(<cnp.ndarray>view, owner)
    return wrap_array(np.array(view, order="C", copy=True), code)


cdef object describe_dlpack(object obj, fjffi_buffer *desc, bint output, object where,
                           bint pin):
    """Describe obj, which has __dlpack__, into desc, zero-copy where the
    memory allows.  Returns what keeps desc's memory valid for the call;
    every refusal is an FfiError.

    None: the producer's exchange table described an input without
    allocating; the memory is then valid only while no other Python code
    runs (obj's owner could resize it), so a caller that lets other threads
    run before the kernel returns passes pin=True."""
    cdef const DLPackExchangeAPI *api = exchange_api(type(obj))
    cdef DLTensor t
    cdef DLPackHolder holder
    cdef DLManagedTensorVersioned *mt = NULL
    cdef uint64_t flags = 0
    cdef bint versioned = True
    cdef int state
    if api != NULL and not pin and api.dltensor_from_py_object_no_sync != NULL:
        kind = type(obj).__name__
        try:
            api.dltensor_from_py_object_no_sync(<void *>obj, &t)
        except Exception as exc:
            raise LayoutError(f"{where_str(where)}: the {kind} cannot be exported through DLPack "
                              f"({type(exc).__name__}: {exc})") from exc
        state = dltensor_describe(&t, desc, where, kind)
        if state == 0:
            return None  # valid while obj is alive, and the call holds obj
        buf = dltensor_copy(&t, desc.dtype, obj)
        describe_buffer(buf, desc)
        return buf
    kind = type(obj).__name__
    holder = DLPackHolder.__new__(DLPackHolder)
    if api != NULL:
        try:
            api.managed_tensor_from_py_object_no_sync(<void *>obj, &mt)
        except Exception as exc:
            raise LayoutError(f"{where_str(where)}: the {kind} cannot be exported through DLPack "
                              f"({type(exc).__name__}: {exc})") from exc
        holder.versioned = mt
    else:
        cap = export_dlpack(obj, output, where, kind)
        if PyCapsule_IsValid(cap, b"dltensor_versioned"):
            holder.versioned = <DLManagedTensorVersioned *>PyCapsule_GetPointer(
                cap, b"dltensor_versioned")
            PyCapsule_SetName(cap, b"used_dltensor_versioned")  # ours to delete now
        elif PyCapsule_IsValid(cap, b"dltensor"):
            holder.legacy = <DLManagedTensor *>PyCapsule_GetPointer(cap, b"dltensor")
            PyCapsule_SetName(cap, b"used_dltensor")
            versioned = False
        else:
            raise LayoutError(f"{where_str(where)}: the {kind}'s __dlpack__ returned no "
                              "DLPack capsule")
    if versioned:
        if holder.versioned == NULL:
            raise LayoutError(f"{where_str(where)}: the {kind}'s DLPack export gave no tensor")
        if holder.versioned.version.major != FJFFI_DLPACK_MAJOR:
            raise LayoutError(f"{where_str(where)}: the {kind} exports DLPack "
                              f"{holder.versioned.version.major}.x; fjffi reads 1.x")
        flags = holder.versioned.flags
        t = holder.versioned.dl_tensor
    else:
        t = holder.legacy.dl_tensor
    state = dltensor_describe(&t, desc, where, kind)
    if output:
        if not versioned:
            problem = ("its producer exports only unversioned DLPack, which cannot say "
                       "whether the memory may be written")
        elif flags & DLPACK_FLAG_BITMASK_READ_ONLY:
            problem = "it is read-only (DLPack read-only flag)"
        elif state != 0:
            problem = "it is not C-contiguous or is misaligned"
        else:
            return holder
        raise LayoutError(f"{where_str(where)} cannot be written in place: {problem}")
    if state == 0:
        return holder
    buf = dltensor_copy(&t, desc.dtype, holder)
    describe_buffer(buf, desc)
    return buf


cdef int check_dlpack_device(object obj, object where, str kind) except -1:
    """Refuse device memory before asking the producer to export it."""
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None:
        return 0
    try:
        device_type, device_id = dev()
        device_type, device_id = int(device_type), int(device_id)
    except Exception as exc:
        raise LayoutError(f"{where_str(where)}: the {kind}'s __dlpack_device__ failed "
                          f"({type(exc).__name__}: {exc})") from exc
    if device_type not in (kDLCPU, kDLCUDAHost, kDLROCMHost):
        raise LayoutError(f"{where_str(where)}: the {kind} is on device "
                          f"{device_name(device_type, device_id)}; fjffi runs kernels on "
                          "host memory only: copy it to the CPU first")
    return 0


cdef object export_dlpack(object obj, bint output, object where, str kind):
    """obj.__dlpack__(): for an output, versioned DLPack (which says whether
    the memory is read-only) and no copy; older producers take no keywords.
    An input needs neither, and some producers are slower with them.  The
    device is read from the tensor, not asked first (__dlpack_device__ costs
    as much as the export on some producers)."""
    try:
        if not output:
            return obj.__dlpack__()
        try:
            return obj.__dlpack__(max_version=(1, 0), copy=False)
        except TypeError:
            return obj.__dlpack__()
    except Exception as exc:
        # Device memory is refused naming the device, whatever the producer said.
        check_dlpack_device(obj, where, kind)
        raise LayoutError(f"{where_str(where)}: the {kind} cannot be exported through DLPack "
                          f"({type(exc).__name__}: {exc})") from exc


cdef Buffer dlpack_to_buffer(object obj, object where):
    """to_buffer of a __dlpack__ object: a Buffer over its memory, or over a
    contiguous copy."""
    cdef fjffi_buffer desc
    owner = describe_dlpack(obj, &desc, False, where or "input", True)
    if owner is None:
        owner = obj
    elif type(owner) is Buffer:
        return owner
    cdef Buffer buf = Buffer.__new__(Buffer)
    buf.readonly = True  # an input: fjffi never writes through it
    buf.setup(owner, <char *>desc.data, desc.nbytes, desc.dtype,
              tuple([desc.shape[k] for k in range(desc.ndim)]))
    return buf
