/*
 * Unit test of src/fjffi/src/check.c, compiled and run by
 * tests/test_check_c.py.  Prints one line per failed expectation and exits
 * 1 if there was any.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static int failures;
static int checks;

#define EXPECT(cond)                                                        \
    do {                                                                    \
        ++checks;                                                           \
        if (!(cond)) {                                                      \
            ++failures;                                                     \
            printf("%s:%d: expected %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                   \
    } while (0)

static void test_first_bad_bool(void) {
    uint8_t buf[64];
    memset(buf, 1, sizeof buf);
    EXPECT(fjffi_first_bad_bool(buf, 0) == -1);
    EXPECT(fjffi_first_bad_bool(NULL, 0) == -1);
    EXPECT(fjffi_first_bad_bool(buf, sizeof buf) == -1);
    /* Every position and both sides of the 8-byte stride, and every bad value class. */
    for (size_t n = 1; n <= 40; ++n)
        for (size_t at = 0; at < n; ++at) {
            memset(buf, 0, sizeof buf);
            buf[at] = (uint8_t)(2 + (at * 37) % 254);
            EXPECT(fjffi_first_bad_bool(buf, n) == (ptrdiff_t)at);
            /* A bad byte just past n is not read as part of the buffer. */
            EXPECT(fjffi_first_bad_bool(buf, at) == -1);
        }
    memset(buf, 0, sizeof buf);
    buf[9] = 0x80;
    buf[20] = 2;
    EXPECT(fjffi_first_bad_bool(buf, sizeof buf) == 9);
    /* An unaligned start. */
    buf[9] = 0;
    EXPECT(fjffi_first_bad_bool(buf + 3, 30) == 17);
}

static void test_checked_nbytes(void) {
    int64_t out = -7;
    EXPECT(fjffi_checked_nbytes(NULL, 0, 8, &out) == 0 && out == 8);
    const int64_t s23[] = {2, 3};
    EXPECT(fjffi_checked_nbytes(s23, 2, 4, &out) == 0 && out == 24);
    EXPECT(fjffi_checked_nbytes(s23, 2, 0, &out) == 0 && out == 0);
    const int64_t neg[] = {2, -1};
    EXPECT(fjffi_checked_nbytes(neg, 2, 8, &out) == -1 && out == 0);
    EXPECT(fjffi_checked_nbytes(s23, -1, 8, &out) == -1);
    EXPECT(fjffi_checked_nbytes(s23, 2, -8, &out) == -1);
    /* A negative dimension wins over a zero one. */
    const int64_t zero_neg[] = {0, -3};
    EXPECT(fjffi_checked_nbytes(zero_neg, 2, 8, &out) == -1);
    /* Exactly PTRDIFF_MAX fits; twice that does not. */
    const int64_t max1[] = {PTRDIFF_MAX};
    EXPECT(fjffi_checked_nbytes(max1, 1, 1, &out) == 0 && out == PTRDIFF_MAX);
    EXPECT(fjffi_checked_nbytes(max1, 1, 2, &out) == 1 && out == 0);
    const int64_t big[] = {INT64_C(1) << 31, INT64_C(1) << 31, 2};
    EXPECT(fjffi_checked_nbytes(big, 2, 1, &out) == 0 && out == INT64_C(1) << 62);
    EXPECT(fjffi_checked_nbytes(big, 3, 1, &out) == 1 && out == 0);
    /* Overflow before a zero dimension still gives 0. */
    const int64_t big_then_zero[] = {INT64_C(1) << 40, INT64_C(1) << 40, 0};
    EXPECT(fjffi_checked_nbytes(big_then_zero, 3, 8, &out) == 0 && out == 0);
    /* A product that wraps to a small number is still an overflow. */
    const int64_t wraps[] = {INT64_C(1) << 32, INT64_C(1) << 32};
    EXPECT(fjffi_checked_nbytes(wraps, 2, 1, &out) == 1);
    int64_t ones[FJFFI_MAX_NDIM];
    for (int i = 0; i < FJFFI_MAX_NDIM; ++i) ones[i] = 1;
    EXPECT(fjffi_checked_nbytes(ones, FJFFI_MAX_NDIM, 16, &out) == 0 && out == 16);
}

static fjffi_buffer at(uintptr_t addr, size_t nbytes) {
    fjffi_buffer b = {(void *)addr, nbytes, FJFFI_UINT8, 0, NULL};
    return b;
}

static void test_overlaps(void) {
    fjffi_buffer a = at(100, 10), b = at(110, 10), c = at(109, 10), e = at(105, 0);
    EXPECT(!fjffi_overlaps(&a, &b) && !fjffi_overlaps(&b, &a));
    EXPECT(fjffi_overlaps(&a, &c) && fjffi_overlaps(&c, &a));
    EXPECT(fjffi_overlaps(&a, &a));
    EXPECT(!fjffi_overlaps(&a, &e) && !fjffi_overlaps(&e, &a) && !fjffi_overlaps(&e, &e));
    fjffi_buffer inner = at(102, 3);
    EXPECT(fjffi_overlaps(&a, &inner) && fjffi_overlaps(&inner, &a));
    /* Near the top of the address space a sum would wrap; the check must not. */
    fjffi_buffer top = at(UINTPTR_MAX - 4, 5), low = at(0, 16), huge = at(8, SIZE_MAX - 8);
    EXPECT(!fjffi_overlaps(&top, &low) && !fjffi_overlaps(&low, &top));
    EXPECT(fjffi_overlaps(&huge, &top) && fjffi_overlaps(&top, &huge));
    EXPECT(fjffi_overlaps(&huge, &low));
}

static void test_check_buffer(void) {
    char msg[128];
    _Alignas(16) uint8_t mem[64];
    int64_t shape[2] = {2, 3};
    fjffi_buffer b = {mem, 48, FJFFI_FLOAT64, 2, shape};
    EXPECT(fjffi_check_buffer(&b, msg, sizeof msg) == 0 && msg[0] == '\0');

    fjffi_buffer t = b;
    t.dtype = FJFFI_NUM_DTYPES;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_DTYPE && strstr(msg, "15"));
    t.dtype = -1;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_DTYPE);
    t = b;
    t.ndim = FJFFI_MAX_NDIM + 1;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_NDIM);
    t.ndim = -1;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_NDIM);
    t = b;
    t.shape = NULL;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_SHAPE);
    int64_t negative[2] = {2, -3};
    t.shape = negative;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_DIM && strstr(msg, "-3"));
    int64_t huge[2] = {INT64_MAX, 2};
    t.shape = huge;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_OVERFLOW);
    t = b;
    t.nbytes = 47;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_NBYTES && strstr(msg, "48"));
    t.nbytes = 48;
    t.data = NULL;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_NULL);
    t.data = mem + 4;
    EXPECT(fjffi_check_buffer(&t, msg, sizeof msg) == FJFFI_CHECK_ALIGN);
    /* complex64 aligns to 4, complex128 to 8, bool to 1. */
    int64_t one[1] = {1};
    fjffi_buffer c64 = {mem + 4, 8, FJFFI_COMPLEX64, 1, one};
    EXPECT(fjffi_check_buffer(&c64, msg, sizeof msg) == 0);
    c64.data = mem + 2;
    EXPECT(fjffi_check_buffer(&c64, msg, sizeof msg) == FJFFI_CHECK_ALIGN);
    fjffi_buffer c128 = {mem + 8, 16, FJFFI_COMPLEX128, 1, one};
    EXPECT(fjffi_check_buffer(&c128, msg, sizeof msg) == 0);
    c128.data = mem + 4;
    EXPECT(fjffi_check_buffer(&c128, msg, sizeof msg) == FJFFI_CHECK_ALIGN);
    fjffi_buffer flag = {mem + 3, 1, FJFFI_BOOL, 0, NULL};
    EXPECT(fjffi_check_buffer(&flag, msg, sizeof msg) == 0);
    /* Empty buffers may have NULL or unaligned data; a scalar needs no shape. */
    int64_t empty[2] = {4, 0};
    fjffi_buffer e = {NULL, 0, FJFFI_INT32, 2, empty};
    EXPECT(fjffi_check_buffer(&e, msg, sizeof msg) == 0);
    e.data = mem + 1;
    EXPECT(fjffi_check_buffer(&e, msg, sizeof msg) == 0);
    fjffi_buffer scalar = {mem, 4, FJFFI_FLOAT32, 0, NULL};
    EXPECT(fjffi_check_buffer(&scalar, msg, sizeof msg) == 0);
    /* No message room, and no descriptor at all. */
    t = b;
    t.nbytes = 0;
    EXPECT(fjffi_check_buffer(&t, NULL, 0) == FJFFI_CHECK_NBYTES);
    EXPECT(fjffi_check_buffer(NULL, msg, sizeof msg) == FJFFI_CHECK_NULL);
    /* A message longer than cap is cut, NUL-terminated. */
    char small[8];
    memset(small, 'x', sizeof small);
    EXPECT(fjffi_check_buffer(&t, small, sizeof small) == FJFFI_CHECK_NBYTES &&
           small[7] == '\0' && strlen(small) == 7);
}

int main(void) {
    test_first_bad_bool();
    test_checked_nbytes();
    test_overlaps();
    test_check_buffer();
    printf("test_check: %d checks, %d failed\n", checks, failures);
    return failures != 0;
}
