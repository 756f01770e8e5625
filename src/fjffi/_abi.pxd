# The C ABI of fjffi.h, declared once for Cython: fjffi._core cimports it,
# and `cimport fjffi` re-exports it.  Must match fjffi/include/fjffi.h.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t

cdef extern from "fjffi.h":
    enum:
        FJFFI_ABI_RAW
        FJFFI_ABI_TYPED
        FJFFI_MAX_NDIM
        FJFFI_MESSAGE_SIZE
        FJFFI_C_API_VERSION
        FJFFI_GIL_RELEASE
        FJFFI_GIL_HOLD
        FJFFI_GIL_AUTO
    ctypedef enum fjffi_dtype:
        FJFFI_FLOAT64
        FJFFI_FLOAT32
        FJFFI_FLOAT16
        FJFFI_BFLOAT16
        FJFFI_INT64
        FJFFI_INT32
        FJFFI_INT16
        FJFFI_INT8
        FJFFI_UINT64
        FJFFI_UINT32
        FJFFI_UINT16
        FJFFI_UINT8
        FJFFI_BOOL
        FJFFI_COMPLEX64
        FJFFI_COMPLEX128
        FJFFI_NUM_DTYPES
    ctypedef struct fjffi_dtype_info:
        const char *name
        uint8_t itemsize
        uint8_t alignment
        const char *format
        const char *c_type
    const fjffi_dtype_info *fjffi_dtype_info_of(int32_t dtype) noexcept nogil
    ctypedef struct fjffi_buffer:
        void *data
        size_t nbytes
        int32_t dtype
        int32_t ndim
        const int64_t *shape
    ctypedef struct fjffi_context:
        char message[FJFFI_MESSAGE_SIZE]
    ctypedef int32_t (*fjffi_raw_fn)(const uint8_t *const *inputs, size_t n_inputs,
                                     uint8_t *const *outputs, size_t n_outputs) noexcept nogil
    ctypedef int32_t (*fjffi_typed_fn)(const fjffi_buffer *inputs, size_t n_inputs,
                                       const fjffi_buffer *outputs, size_t n_outputs,
                                       fjffi_context *ctx) noexcept nogil
    int32_t fjffi_fail(fjffi_context *ctx, int32_t code, const char *message) noexcept nogil
    size_t fjffi_itemsize(int32_t dtype) noexcept nogil
    size_t fjffi_numel(const fjffi_buffer *b) noexcept nogil

    const char *FJFFI_C_API_CAPSULE
    ctypedef struct fjffi_c_api:
        uint32_t version
        uint32_t size
        int (*register_function)(void *registry, const char *name, void *fn,
                                 int32_t api_version, const char *gil,
                                 int32_t thread_safe) except -1
        int32_t (*invoke)(void *registry, const char *name, size_t name_len,
                          const fjffi_buffer *inputs, size_t n_inputs,
                          const fjffi_buffer *outputs, size_t n_outputs, int32_t *code,
                          char *message, size_t message_size) noexcept nogil
    enum:
        FJFFI_INVOKE_REFUSED
        FJFFI_INVOKE_FAILED
