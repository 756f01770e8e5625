# --- marshal: Python values to Buffers and back, bit-exactly -----------------

cdef int64_t NO_SHAPE[1]


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
    desc.nbytes = itemsize_of(desc.dtype)
    desc.ndim = 0
    desc.shape = NO_SHAPE
    return 0


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
    cdef Buffer buf
    if type(value) is Buffer:
        (<Buffer>value).check_ready()
        return value
    if describe_scalar(value, &desc, slot) == 0:
        buf = new_buffer(desc.dtype, ())
        memcpy(buf.data, slot, desc.nbytes)
        return buf
    return array_to_buffer(value, index)


cdef Buffer array_to_buffer(object value, object index):
    cdef cnp.ndarray arr
    where = "" if index is None else f"buffer {index}"
    if cnp.PyArray_Check(value):
        arr = <cnp.ndarray>value
    elif isinstance(value, (str, bytes)):
        raise UnsupportedDtypeError(type(value).__name__,
                                    "wrap raw bytes with fjffi.Buffer(data, shape, dtype)")
    elif has_dlpack(value):
        return dlpack_to_buffer(value, where)
    else:
        arr = foreign_to_array(value, where)
    cdef cnp.dtype descr = arr.descr
    cdef int code = user_descr_code(descr)
    if code < 0:
        raise UnsupportedDtypeError(descr, where)
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not (flags & cnp.NPY_ARRAY_C_CONTIGUOUS and flags & cnp.NPY_ARRAY_ALIGNED
            and cnp.PyArray_ISNOTSWAPPED(arr)):
        # A copy in native order changes no value: a byte swap moves bytes,
        # it never goes through arithmetic, so NaN payloads survive.
        # np.array, not np.ascontiguousarray: that one keeps a misaligned
        # array as it is and turns a 0-d array into shape (1,).
        arr = np.array(arr, dtype=descr.newbyteorder("="), order="C", copy=True)
    if code == FJFFI_BOOL:
        bad = fjffi_first_bad_bool(<uint8_t *>cnp.PyArray_DATA(arr), cnp.PyArray_NBYTES(arr))
        if bad >= 0:
            raise InvalidBoolByteError(index, bad, (<uint8_t *>cnp.PyArray_DATA(arr))[bad],
                                       "input")
    return wrap_array(arr, code)


cdef cnp.ndarray foreign_to_array(object value, str where):
    """np.asarray(value), with every refusal an fjffi error that says what
    was given: the producer's own exception never leaks out."""
    kind = type(value).__name__
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise UnsupportedDtypeError(
            kind, f"{where + ': ' if where else ''}numpy cannot view a {kind} "
            f"({type(exc).__name__}: {exc}); pass a numpy array or an fjffi.Buffer") from exc
    if (<cnp.ndarray>arr).descr.type_num == cnp.NPY_OBJECT:
        raise UnsupportedDtypeError(
            kind, f"{where + ': ' if where else ''}a {kind} is not an array of numbers "
            "(numpy sees Python objects); pass a numpy array or an fjffi.Buffer")
    return arr


def from_buffer(Buffer buf not None):
    """A numpy array over the Buffer's memory (0-d for shape ()), no copy.

    A bool Buffer whose bytes were changed to anything but 0 or 1 after it
    was built is refused with InvalidBoolByteError.
    """
    buf.check_ready()
    cdef object dt = code_dtype(buf.code)
    if isinstance(dt, str):
        raise UnsupportedDtypeError("bfloat16",
                                    "install ml_dtypes to see bfloat16 as numpy; "
                                    "Buffer.tobytes() gives the raw bits")
    if buf.code == FJFFI_BOOL:
        bad = fjffi_first_bad_bool(<uint8_t *>buf.data, buf.nbytes_)
        if bad >= 0:
            raise InvalidBoolByteError(None, bad, (<uint8_t *>buf.data)[bad])
    Py_INCREF(dt)  # PyArray_NewFromDescr steals a reference to the descr
    cdef int flags = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    if not buf.readonly:
        flags |= cnp.NPY_ARRAY_WRITEABLE
    arr = PyArray_NewFromDescr(<type>np.ndarray, <cnp.dtype>dt, buf.ndim_,
                               <cnp.npy_intp *>buf.dims, NULL, buf.data, flags, None)
    Py_INCREF(buf)  # PyArray_SetBaseObject steals a reference to the base
    cnp.PyArray_SetBaseObject(<cnp.ndarray>arr, buf)
    return arr
