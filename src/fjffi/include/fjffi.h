/*
 * fjffi.h -- the public C ABI of fjffi.
 *
 * A kernel is a plain C function that fjffi calls with borrowed buffers.
 * fjffi owns every buffer: a kernel must not free, resize or keep any
 * pointer past its return, and must not write past an output's nbytes.
 * It returns 0 on success and any other value on failure; fjffi then zeroes
 * every output and raises fjffi.CallFailedError carrying that code.
 *
 * This header must match the declarations in fjffi/__init__.pxd.
 */
#ifndef FJFFI_H
#define FJFFI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FJFFI_ABI_RAW 0   /* api_version=0 */
#define FJFFI_ABI_TYPED 1 /* api_version=1 */

/* Largest number of dimensions a buffer may have (numpy's own limit). */
#define FJFFI_MAX_NDIM 64

/*
 * Dtype codes.  Each code is exactly one C type (the element of a buffer):
 *
 *   code  name        C type                    bytes
 *   0     float64     double                    8
 *   1     float32     float                     4
 *   2     float16     uint16_t (IEEE binary16)  2
 *   3     bfloat16    uint16_t (bfloat16 bits)  2
 *   4     int64       int64_t                   8
 *   5     int32       int32_t                   4
 *   6     int16       int16_t                   2
 *   7     int8        int8_t                    1
 *   8     uint64      uint64_t                  8
 *   9     uint32      uint32_t                  4
 *   10    uint16      uint16_t                  2
 *   11    uint8       uint8_t                   1
 *   12    bool        uint8_t, 0 or 1 only      1
 *   13    complex64   float[2] (re, im)         8
 *   14    complex128  double[2] (re, im)        16
 */
typedef enum fjffi_dtype {
    FJFFI_FLOAT64 = 0,
    FJFFI_FLOAT32 = 1,
    FJFFI_FLOAT16 = 2,
    FJFFI_BFLOAT16 = 3,
    FJFFI_INT64 = 4,
    FJFFI_INT32 = 5,
    FJFFI_INT16 = 6,
    FJFFI_INT8 = 7,
    FJFFI_UINT64 = 8,
    FJFFI_UINT32 = 9,
    FJFFI_UINT16 = 10,
    FJFFI_UINT8 = 11,
    FJFFI_BOOL = 12,
    FJFFI_COMPLEX64 = 13,
    FJFFI_COMPLEX128 = 14,
    FJFFI_NUM_DTYPES = 15
} fjffi_dtype;

/*
 * api_version=0, the raw ABI: one pointer per buffer, nothing else.  The
 * kernel must know the sizes it was registered for.
 */
typedef int32_t (*fjffi_raw_fn)(const uint8_t *const *inputs, size_t n_inputs,
                                uint8_t *const *outputs, size_t n_outputs);

/* api_version=1, the typed ABI: one descriptor per buffer. */
typedef struct fjffi_buffer {
    void *data;           /* const for inputs: never write through it */
    size_t nbytes;        /* == product(shape) * itemsize(dtype) */
    int32_t dtype;        /* an fjffi_dtype code */
    int32_t ndim;         /* 0 for a scalar */
    const int64_t *shape; /* ndim entries, each >= 0 */
} fjffi_buffer;

/* Room for the kernel's error message, including the terminating NUL. */
#define FJFFI_MESSAGE_SIZE 256

typedef struct fjffi_context {
    char message[FJFFI_MESSAGE_SIZE];
} fjffi_context;

typedef int32_t (*fjffi_typed_fn)(const fjffi_buffer *inputs, size_t n_inputs,
                                  const fjffi_buffer *outputs, size_t n_outputs,
                                  fjffi_context *ctx);

/*
 * Set the message that fjffi.CallFailedError.message carries when the
 * kernel then returns non-zero.  Longer messages are cut at
 * FJFFI_MESSAGE_SIZE - 1 bytes.  Returns code, so a kernel can write
 * `return fjffi_fail(ctx, 3, "bad shape");`.
 */
static inline int32_t fjffi_fail(fjffi_context *ctx, int32_t code, const char *message) {
    if (ctx != NULL && message != NULL) {
        size_t n = strlen(message);
        if (n >= FJFFI_MESSAGE_SIZE) n = FJFFI_MESSAGE_SIZE - 1;
        memcpy(ctx->message, message, n);
        ctx->message[n] = '\0';
    }
    return code;
}

/* Size in bytes of one element of a dtype code; 0 for an unknown code. */
static inline size_t fjffi_itemsize(int32_t dtype) {
    static const unsigned char sizes[FJFFI_NUM_DTYPES] = {8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 8, 16};
    return (dtype >= 0 && dtype < FJFFI_NUM_DTYPES) ? sizes[dtype] : 0;
}

/* Number of elements of a typed buffer (its shape's product). */
static inline size_t fjffi_numel(const fjffi_buffer *b) {
    size_t n = 1;
    for (int32_t i = 0; i < b->ndim; ++i) n *= (size_t)b->shape[i];
    return n;
}

/*
 * Registering a kernel from another C extension, with no Python object in
 * between: fjffi._core exports this table as a PyCapsule named
 * FJFFI_C_API_CAPSULE (the numpy.random pattern).
 *
 *     const fjffi_c_api *api = PyCapsule_Import(FJFFI_C_API_CAPSULE, 0);
 *     if (api == NULL || api->version < 1) return NULL;
 *     if (api->register_function(NULL, "my_kernel", (void *)my_kernel,
 *                                FJFFI_ABI_TYPED, "auto", 1) != 0) return NULL;
 *
 * Cython modules get the same through `from fjffi cimport register_function`.
 */
#define FJFFI_C_API_CAPSULE "fjffi._core._C_API"
#define FJFFI_C_API_VERSION 1

typedef struct fjffi_c_api {
    uint32_t version; /* FJFFI_C_API_VERSION or later */
    /*
     * Register fn under name in registry (a fjffi.Registry object, or NULL
     * for fjffi.default_registry).  gil is "release", "hold" or "auto".
     * Needs the GIL.  Returns 0, or -1 with a Python exception set
     * (fjffi.DuplicateTargetError, fjffi.NullPointerError, ...).
     */
    int (*register_function)(void *registry, const char *name, void *fn, int32_t api_version,
                             const char *gil, int32_t thread_safe);
} fjffi_c_api;

#ifdef __cplusplus
}
#endif
#endif /* FJFFI_H */
