/*
 * fjffi.h -- the public C ABI of fjffi.
 *
 * A kernel is a plain C function that fjffi calls with borrowed buffers.
 * fjffi owns every buffer: a kernel must not free, resize or keep any
 * pointer past its return, and must not write past an output's nbytes.
 * It returns 0 on success and any other value on failure; fjffi then zeroes
 * every output and raises fjffi.CallFailedError carrying that code.
 *
 * Cython declares this header in fjffi/_abi.pxd (re-exported by
 * `cimport fjffi`): the two must match.
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

/* Dtype codes: each code is exactly one C type, the element of a buffer. */
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

/* What fjffi knows of one dtype code. */
typedef struct fjffi_dtype_info {
    const char *name;   /* numpy's name: "float64" */
    uint8_t itemsize;   /* bytes per element */
    uint8_t alignment;  /* of the C type; a complex number aligns like its parts */
    const char *format; /* PEP 3118 format; bfloat16 shows its raw bits ("H") */
    const char *c_type; /* the C type of one element */
} fjffi_dtype_info;

/*
 * The dtype table, the one copy of it: fjffi's Python layer, its kernels
 * and its error messages all read this.  NULL for an unknown code.
 */
static inline const fjffi_dtype_info *fjffi_dtype_info_of(int32_t dtype) {
    static const fjffi_dtype_info table[FJFFI_NUM_DTYPES] = {
        [FJFFI_FLOAT64] = {"float64", 8, 8, "d", "double"},
        [FJFFI_FLOAT32] = {"float32", 4, 4, "f", "float"},
        [FJFFI_FLOAT16] = {"float16", 2, 2, "e", "uint16_t (IEEE binary16 bits)"},
        [FJFFI_BFLOAT16] = {"bfloat16", 2, 2, "H", "uint16_t (bfloat16 bits)"},
        [FJFFI_INT64] = {"int64", 8, 8, "q", "int64_t"},
        [FJFFI_INT32] = {"int32", 4, 4, "i", "int32_t"},
        [FJFFI_INT16] = {"int16", 2, 2, "h", "int16_t"},
        [FJFFI_INT8] = {"int8", 1, 1, "b", "int8_t"},
        [FJFFI_UINT64] = {"uint64", 8, 8, "Q", "uint64_t"},
        [FJFFI_UINT32] = {"uint32", 4, 4, "I", "uint32_t"},
        [FJFFI_UINT16] = {"uint16", 2, 2, "H", "uint16_t"},
        [FJFFI_UINT8] = {"uint8", 1, 1, "B", "uint8_t"},
        [FJFFI_BOOL] = {"bool", 1, 1, "?", "uint8_t (0 or 1 only)"},
        [FJFFI_COMPLEX64] = {"complex64", 8, 4, "Zf", "float[2] (re, im)"},
        [FJFFI_COMPLEX128] = {"complex128", 16, 8, "Zd", "double[2] (re, im)"},
    };
    return (dtype >= 0 && dtype < FJFFI_NUM_DTYPES) ? &table[dtype] : NULL;
}

/*
 * GIL policy of a target (register's gil=): "release" runs the kernel
 * without the GIL, "hold" with it, "auto" releases it once a call moves
 * enough bytes for the release to pay.
 */
enum { FJFFI_GIL_RELEASE = 0, FJFFI_GIL_HOLD = 1, FJFFI_GIL_AUTO = 2 };

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
    const fjffi_dtype_info *info = fjffi_dtype_info_of(dtype);
    return info == NULL ? 0 : info->itemsize;
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
 * FJFFI_C_API_CAPSULE (the numpy.random pattern).  With Python.h included
 * first, fjffi_import_c_api() below imports and checks it:
 *
 *     const fjffi_c_api *api = fjffi_import_c_api();
 *     if (api == NULL) return NULL;
 *     if (api->register_function(NULL, "my_kernel", (void *)my_kernel,
 *                                FJFFI_ABI_TYPED, "auto", 1) != 0) return NULL;
 *
 * Cython modules get the same through `from fjffi cimport register_function`.
 *
 * The table only grows: a new version appends members at the end and never
 * moves, removes or changes one.  `size` is sizeof(fjffi_c_api) of the
 * fjffi that made it, so a consumer built against a newer header can tell
 * which members exist before it reads them.
 */
#define FJFFI_C_API_CAPSULE "fjffi._core._C_API"
#define FJFFI_C_API_VERSION 2

typedef struct fjffi_c_api {
    uint32_t version; /* FJFFI_C_API_VERSION of the fjffi that made the table */
    uint32_t size;    /* sizeof(fjffi_c_api) of that fjffi; since version 2 */
    /*
     * Register fn under name in registry (a fjffi.Registry object, or NULL
     * for fjffi.default_registry).  gil is "release", "hold" or "auto".
     * Needs the GIL.  Returns 0, or -1 with a Python exception set
     * (fjffi.DuplicateTargetError, fjffi.NullPointerError, ...).
     */
    int (*register_function)(void *registry, const char *name, void *fn, int32_t api_version,
                             const char *gil, int32_t thread_safe);
    /*
     * Since version 2.  Call the target registered under name (name_len
     * bytes of UTF-8) in registry (NULL: fjffi.default_registry) on typed
     * descriptors, with the contract of fjffi.Call.invoke: every
     * descriptor checked (known dtype, nbytes == product(shape) * itemsize,
     * alignment), no output overlapping another buffer, outputs zeroed
     * before the call and again after any failure, thread_safe=False
     * targets serialised, bool outputs checked.  For a raw-ABI target the
     * kernel gets the descriptors' data pointers.
     *
     * Needs no GIL, and does not take it: a target registered with
     * gil="hold" and a Python callback are refused (they need the GIL).
     * The caller keeps registry alive.
     *
     * Returns 0 on success.  FJFFI_INVOKE_REFUSED: fjffi refused the call
     * (unknown name, bad descriptor, a target that needs the GIL) and ran
     * nothing.  FJFFI_INVOKE_FAILED: the kernel returned non-zero, its code
     * in *code.  Either way a NUL-terminated message is in
     * message[message_size] (the kernel's own, or fjffi's).
     */
    int32_t (*invoke)(void *registry, const char *name, size_t name_len,
                      const fjffi_buffer *inputs, size_t n_inputs, const fjffi_buffer *outputs,
                      size_t n_outputs, int32_t *code, char *message, size_t message_size);
} fjffi_c_api;

enum { FJFFI_INVOKE_REFUSED = -1, FJFFI_INVOKE_FAILED = 1 };

#ifdef Py_PYTHON_H
/*
 * Import fjffi's C API and check that it is at least the version this file
 * was compiled against.  Returns the table, or NULL with ImportError set.
 * Needs the GIL.
 */
static inline const fjffi_c_api *fjffi_import_c_api(void) {
    const fjffi_c_api *api = (const fjffi_c_api *)PyCapsule_Import(FJFFI_C_API_CAPSULE, 0);
    if (api == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError)) return NULL;
        PyErr_SetString(PyExc_ImportError, "fjffi._core failed to import: is fjffi installed?");
        return NULL;
    }
    if (api->version < FJFFI_C_API_VERSION || api->size < sizeof(fjffi_c_api)) {
        PyErr_Format(PyExc_ImportError,
                     "module compiled against fjffi C API version %d, but the installed fjffi "
                     "has version %d; upgrade fjffi, or rebuild this module against it",
                     (int)FJFFI_C_API_VERSION, (int)api->version);
        return NULL;
    }
    return api;
}
#endif

#ifdef __cplusplus
}
#endif
#endif /* FJFFI_H */
