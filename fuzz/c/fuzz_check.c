/*
 * libFuzzer target: the validation primitives of src/fjffi/src/check.c,
 * each against a slow reference written differently: a byte loop for
 * fjffi_first_bad_bool, __int128 arithmetic for fjffi_checked_nbytes and
 * fjffi_overlaps, and a field-by-field reading of the contract for
 * fjffi_check_buffer.  Every array handed over is allocated at exactly
 * its size, so a read past it is an ASan report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz_input.h"

typedef unsigned __int128 u128;

static ptrdiff_t ref_first_bad_bool(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i] != 0 && p[i] != 1) return (ptrdiff_t)i;
    return -1;
}

static int ref_checked_nbytes(const int64_t *shape, int ndim, int64_t itemsize, int64_t *out) {
    *out = 0;
    if (ndim < 0 || itemsize < 0) return -1;
    for (int i = 0; i < ndim; ++i)
        if (shape[i] < 0) return -1;
    u128 total = (u128)itemsize;
    for (int i = 0; i < ndim; ++i) {
        total *= (u128)shape[i];
        /* Saturate: once past PTRDIFF_MAX only a later 0 brings it back. */
        if (total > (u128)PTRDIFF_MAX) total = (u128)PTRDIFF_MAX + 1;
    }
    if (total > (u128)PTRDIFF_MAX) return 1;
    *out = (int64_t)total;
    return 0;
}

static int ref_overlaps(const fjffi_buffer *a, const fjffi_buffer *b) {
    u128 a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    return a->nbytes > 0 && b->nbytes > 0 && a0 < b0 + b->nbytes && b0 < a0 + a->nbytes;
}

static int ref_check_buffer(const fjffi_buffer *b) {
    static const int sizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 8, 16};
    static const int aligns[] = {8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 4, 8};
    if (b->dtype < 0 || b->dtype > 14) return FJFFI_CHECK_DTYPE;
    if (b->ndim < 0 || b->ndim > 64) return FJFFI_CHECK_NDIM;
    if (b->ndim > 0 && b->shape == NULL) return FJFFI_CHECK_SHAPE;
    for (int i = 0; i < b->ndim; ++i)
        if (b->shape[i] < 0) return FJFFI_CHECK_DIM;
    int64_t need;
    if (ref_checked_nbytes(b->shape, b->ndim, sizes[b->dtype], &need) != 0)
        return FJFFI_CHECK_OVERFLOW;
    if ((u128)b->nbytes != (u128)need) return FJFFI_CHECK_NBYTES;
    if (need > 0 && b->data == NULL) return FJFFI_CHECK_NULL;
    if (need > 0 && (uintptr_t)b->data % (uintptr_t)aligns[b->dtype] != 0)
        return FJFFI_CHECK_ALIGN;
    return 0;
}

/* A data pointer: NULL, an odd or even small address, or any 64 bits (never dereferenced). */
static void *fuzz_pointer(fuzz_input *in) {
    switch (fuzz_u8(in) % 4) {
    case 0:
        return NULL;
    case 1:
        return (void *)(uintptr_t)(0x10000 + fuzz_u8(in));
    case 2:
        return (void *)(UINTPTR_MAX - fuzz_u8(in));
    default:
        return (void *)(uintptr_t)fuzz_u64(in, 8);
    }
}

static size_t fuzz_size(fuzz_input *in) {
    switch (fuzz_u8(in) % 4) {
    case 0:
        return fuzz_u8(in) % 4;
    case 1:
        return fuzz_u8(in);
    case 2:
        return SIZE_MAX - fuzz_u8(in);
    default:
        return (size_t)fuzz_u64(in, 8);
    }
}

static void one_bool_scan(fuzz_input *in) {
    size_t n = fuzz_u8(in) | (size_t)fuzz_u8(in) << 8;
    if (n > in->n) n = in->n;
    uint8_t *p = malloc(n ? n : 1);
    fuzz_bytes(in, p, n);
    /* Mostly canonical bytes, or a scan stops at once. */
    uint8_t mask = fuzz_u8(in);
    if (mask & 1)
        for (size_t i = 0; i < n; ++i) p[i] &= (mask & 2) ? 1 : 0xFF;
    size_t skip = n ? fuzz_u8(in) % (n < 8 ? n : 8) : 0; /* an unaligned start */
    FUZZ_CHECK(fjffi_first_bad_bool(p + skip, n - skip) == ref_first_bad_bool(p + skip, n - skip));
    free(p);
}

static void one_nbytes(fuzz_input *in) {
    int ndim = (int)(fuzz_u8(in) % (FJFFI_MAX_NDIM + 2));
    int64_t *shape = ndim ? malloc((size_t)ndim * sizeof *shape) : NULL;
    for (int i = 0; i < ndim; ++i) shape[i] = fuzz_dim(in);
    int64_t itemsize = (fuzz_u8(in) & 1) ? fuzz_dim(in) : (int64_t)(1u << (fuzz_u8(in) % 5));
    int64_t got = -7, want = -7;
    int rc = fjffi_checked_nbytes(shape, ndim, itemsize, &got);
    FUZZ_CHECK(rc == ref_checked_nbytes(shape, ndim, itemsize, &want));
    FUZZ_CHECK(got == want);
    free(shape);
}

static void one_overlap(fuzz_input *in) {
    fjffi_buffer a = {fuzz_pointer(in), fuzz_size(in), 0, 0, NULL};
    fjffi_buffer b = {fuzz_pointer(in), fuzz_size(in), 0, 0, NULL};
    if (fuzz_u8(in) & 1) b.data = (void *)((uintptr_t)a.data + (uintptr_t)(int8_t)fuzz_u8(in));
    int want = ref_overlaps(&a, &b);
    FUZZ_CHECK(fjffi_overlaps(&a, &b) == want);
    FUZZ_CHECK(fjffi_overlaps(&b, &a) == want);
}

static void one_buffer(fuzz_input *in) {
    fjffi_buffer b;
    uint8_t kind = fuzz_u8(in);
    b.dtype = (kind & 1) ? (int32_t)fuzz_u64(in, 4) : (int32_t)(fuzz_u8(in) % 16);
    b.ndim = (kind & 2) ? (int32_t)fuzz_u64(in, 4) : (int32_t)(fuzz_u8(in) % 6);
    /* The shape array holds exactly the dimensions a valid ndim promises. */
    int32_t held = (b.ndim >= 0 && b.ndim <= FJFFI_MAX_NDIM) ? b.ndim : (int32_t)(fuzz_u8(in) % 3);
    int64_t *shape = NULL;
    if (!(kind & 4) || held == 0) {
        shape = held ? malloc((size_t)held * sizeof *shape) : NULL;
        for (int32_t i = 0; i < held; ++i) shape[i] = fuzz_dim(in);
    }
    b.shape = shape;
    int64_t need;
    size_t item = fjffi_itemsize(b.dtype);
    int exact = item != 0 && held == b.ndim && (shape != NULL || held == 0) &&
                fjffi_checked_nbytes(shape, b.ndim, (int64_t)item, &need) == 0;
    b.nbytes = (exact && (kind & 8)) ? (size_t)need + (size_t)(int64_t)(int8_t)fuzz_u8(in)
                                     : (exact ? (size_t)need : fuzz_size(in));
    b.data = fuzz_pointer(in);
    size_t cap = fuzz_u8(in) % 80;
    char *msg = cap ? malloc(cap) : NULL;
    if (msg) memset(msg, 'x', cap);
    int rc = fjffi_check_buffer(&b, msg, cap);
    FUZZ_CHECK(rc == ref_check_buffer(&b));
    if (msg) {
        FUZZ_CHECK(memchr(msg, '\0', cap) != NULL);
        /* A message, unless there is room only for its NUL. */
        FUZZ_CHECK(rc == 0 ? msg[0] == '\0' : (cap == 1 || msg[0] != '\0'));
    }
    free(msg);
    free(shape);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size};
    FUZZ_CHECK(fjffi_check_buffer(NULL, NULL, 0) == FJFFI_CHECK_NULL);
    for (int ops = 0; fuzz_left(&in) && ops < 500; ++ops) {
        switch (fuzz_u8(&in) % 4) {
        case 0:
            one_bool_scan(&in);
            break;
        case 1:
            one_nbytes(&in);
            break;
        case 2:
            one_overlap(&in);
            break;
        default:
            one_buffer(&in);
            break;
        }
    }
    return 0;
}
