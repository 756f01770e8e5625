# --- dtypes: fjffi.h's table seen from Python --------------------------------
#
# fjffi_dtype_info_of (fjffi.h) is the one table of dtype names, sizes,
# alignments and formats; everything here is read from it at import.

DTYPE_NAMES = tuple([fjffi_dtype_info_of(c).name.decode() for c in range(FJFFI_NUM_DTYPES)])
C_TYPES = tuple([fjffi_dtype_info_of(c).c_type.decode() for c in range(FJFFI_NUM_DTYPES)])

# numpy type number -> dtype code, -1 where fjffi has none; filled by
# init_dtypes from numpy's own dtypes, so aliases (long and longlong are both
# int64) agree.  bfloat16 is a user dtype with a type number of its own.
cdef int TYPE_NUM_CODE[32]
cdef tuple NUMPY_DTYPES = None   # numpy dtype per code, None for bfloat16
cdef dict NAME_CODES = None      # fjffi's own names, looked up before numpy
cdef int BF16_TYPE_NUM = -2      # set once ml_dtypes is seen
cdef object BF16_DTYPE = None


cdef int init_dtypes() except -1:
    global NUMPY_DTYPES, NAME_CODES
    cdef int code
    for code in range(32):
        TYPE_NUM_CODE[code] = -1
    for code, name in enumerate(DTYPE_NAMES):
        if name != "bfloat16":
            TYPE_NUM_CODE[np.dtype(name).num] = code
    for char in "lqLQ":
        dt = np.dtype(char)
        TYPE_NUM_CODE[dt.num] = DTYPE_NAMES.index(dt.name)
    NUMPY_DTYPES = tuple([None if n == "bfloat16" else np.dtype(n) for n in DTYPE_NAMES])
    NAME_CODES = {name: code for code, name in enumerate(DTYPE_NAMES)}
    return 0


cdef inline Py_ssize_t itemsize_of(int code) noexcept nogil:
    return fjffi_dtype_info_of(code).itemsize


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


cdef int user_descr_code(cnp.dtype descr) except -2:
    """descr_code for a dtype that may be a user dtype seen for the first
    time: bfloat16 gets its type number recorded here."""
    # numpy computes dt.name in Python (about 1.4 us): only a user dtype
    # (type_num >= 256) can be bfloat16.
    if descr.type_num >= 256 and BF16_TYPE_NUM < 0 and descr.name == "bfloat16":
        bfloat16_dtype()
    return descr_code(descr)


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
    if dtype is None:  # numpy would read None as float64
        raise UnsupportedDtypeError(None, "a dtype must be given")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):  # numpy raises all three
        raise UnsupportedDtypeError(dtype, "not a dtype numpy knows") from None
    code = user_descr_code(dt)
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
