#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ptrdiff_t fjffi_first_bad_bool(const uint8_t *p, size_t n) {
    size_t i = 0;
    /* A byte is 0 or 1 exactly when its seven high bits are clear. */
    while (n - i >= 8) {
        uint64_t word;
        memcpy(&word, p + i, 8);
        if (word & 0xFEFEFEFEFEFEFEFEULL) break;
        i += 8;
    }
    for (; i < n; ++i)
        if (p[i] > 1) return (ptrdiff_t)i;
    return -1;
}

int fjffi_checked_nbytes(const int64_t *shape, int ndim, int64_t itemsize, int64_t *out) {
    *out = 0;
    if (ndim < 0 || itemsize < 0) return -1;
    int zero = itemsize == 0;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] < 0) return -1;
        if (shape[i] == 0) zero = 1;
    }
    if (zero) return 0;
    /* Every factor is now >= 1, so the running product only grows. */
    int64_t total = itemsize;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] > (int64_t)(PTRDIFF_MAX / total)) return 1;
        total *= shape[i];
    }
    *out = total;
    return 0;
}

/* A complex number aligns like its parts; every other dtype like its size. */
static size_t dtype_alignment(int32_t dtype) {
    if (dtype == FJFFI_COMPLEX64) return 4;
    if (dtype == FJFFI_COMPLEX128) return 8;
    return fjffi_itemsize(dtype);
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(char *msg, size_t cap, int code, const char *fmt, ...) {
    if (msg != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return code;
}

int fjffi_check_buffer(const fjffi_buffer *b, char *msg, size_t cap) {
    if (msg != NULL && cap > 0) msg[0] = '\0';
    if (b == NULL) return fail(msg, cap, FJFFI_CHECK_NULL, "no buffer descriptor");
    const size_t itemsize = fjffi_itemsize(b->dtype);
    if (itemsize == 0)
        return fail(msg, cap, FJFFI_CHECK_DTYPE, "unknown dtype code %ld", (long)b->dtype);
    if (b->ndim < 0 || b->ndim > FJFFI_MAX_NDIM)
        return fail(msg, cap, FJFFI_CHECK_NDIM, "ndim %ld is outside 0..%d", (long)b->ndim,
                    FJFFI_MAX_NDIM);
    if (b->ndim > 0 && b->shape == NULL)
        return fail(msg, cap, FJFFI_CHECK_SHAPE, "ndim %ld but no shape", (long)b->ndim);
    for (int32_t i = 0; i < b->ndim; ++i)
        if (b->shape[i] < 0)
            return fail(msg, cap, FJFFI_CHECK_DIM, "dimension %ld is negative (%lld)", (long)i,
                        (long long)b->shape[i]);
    int64_t need;
    if (fjffi_checked_nbytes(b->shape, (int)b->ndim, (int64_t)itemsize, &need) != 0)
        return fail(msg, cap, FJFFI_CHECK_OVERFLOW,
                    "product of the shape * itemsize %zu does not fit in a ptrdiff_t", itemsize);
    if ((uint64_t)b->nbytes != (uint64_t)need)
        return fail(msg, cap, FJFFI_CHECK_NBYTES, "nbytes %zu but the shape needs %lld",
                    b->nbytes, (long long)need);
    if (need > 0 && b->data == NULL)
        return fail(msg, cap, FJFFI_CHECK_NULL, "NULL data for %lld bytes", (long long)need);
    const size_t align = dtype_alignment(b->dtype);
    if (need > 0 && (uintptr_t)b->data % align != 0)
        return fail(msg, cap, FJFFI_CHECK_ALIGN, "data is not aligned to %zu bytes", align);
    return FJFFI_CHECK_OK;
}
