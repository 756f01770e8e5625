/*
 * Validation primitives that every call runs, in plain C so that they can
 * be fuzzed and tested on their own (fuzz/c/, tests/c/).  No Python
 * headers, no allocation, no locks: each function is safe from any thread
 * without the GIL.
 */
#ifndef FJFFI_CHECK_H
#define FJFFI_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "fjffi.h"

/* What fjffi_check_buffer found wrong; 0 is a valid descriptor. */
enum {
    FJFFI_CHECK_OK = 0,
    FJFFI_CHECK_DTYPE = 1,    /* dtype is not a known code */
    FJFFI_CHECK_NDIM = 2,     /* ndim < 0 or > FJFFI_MAX_NDIM */
    FJFFI_CHECK_SHAPE = 3,    /* ndim > 0 and shape is NULL */
    FJFFI_CHECK_DIM = 4,      /* a negative dimension */
    FJFFI_CHECK_OVERFLOW = 5, /* product(shape) * itemsize does not fit in PTRDIFF_MAX */
    FJFFI_CHECK_NBYTES = 6,   /* nbytes != product(shape) * itemsize */
    FJFFI_CHECK_NULL = 7,     /* no descriptor, or NULL data with nbytes > 0 */
    FJFFI_CHECK_ALIGN = 8     /* data not aligned for the dtype */
};

/* Index of the first byte of p[0..n) other than 0 or 1, or -1 (8 bytes at a time).
 * n must not exceed PTRDIFF_MAX (no object can). */
ptrdiff_t fjffi_first_bad_bool(const uint8_t *p, size_t n);

/*
 * product(shape[0..ndim)) * itemsize into *out.  Returns 0; -1 when ndim,
 * itemsize or a dimension is negative; 1 when the product does not fit in
 * PTRDIFF_MAX.  A 0 dimension makes the product 0, which never overflows.
 * On a non-zero return *out is 0.  shape may be NULL when ndim is 0.
 */
int fjffi_checked_nbytes(const int64_t *shape, int ndim, int64_t itemsize, int64_t *out);

/* Whether two descriptors' byte ranges overlap (empty buffers overlap nothing).
 * Exact for any addresses: no sum that could wrap is formed.  Inline: the
 * call path runs it for every pair of an output and another buffer. */
static inline int fjffi_overlaps(const fjffi_buffer *a, const fjffi_buffer *b) {
    if (a->nbytes == 0 || b->nbytes == 0) return 0;
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    /* [a0, a0 + na) meets [b0, b0 + nb) iff the later start lies before the
     * earlier one's end; the difference of the starts never wraps. */
    return a0 >= b0 ? a0 - b0 < b->nbytes : b0 - a0 < a->nbytes;
}

/*
 * Validate one typed descriptor as fjffi builds them: dtype a known code,
 * 0 <= ndim <= FJFFI_MAX_NDIM, shape non-NULL when ndim > 0, every dim >= 0,
 * nbytes == product(shape) * itemsize (overflow-checked), data non-NULL when
 * nbytes > 0, data aligned to the dtype's alignment when nbytes > 0.
 * Returns 0, or a non-zero FJFFI_CHECK_* code with a message in msg[cap]
 * (msg may be NULL or cap 0 for no message; a long one is cut).
 */
int fjffi_check_buffer(const fjffi_buffer *b, char *msg, size_t cap);

#endif
