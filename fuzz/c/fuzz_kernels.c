/*
 * libFuzzer target: the built-in kernels' own checks.  The typed kernels
 * (kernels/typed.c) get fuzzed descriptors: counts, dtypes, ndim, shapes,
 * nbytes, NULL and misaligned data, including descriptors that lie.  The
 * raw kernels (kernels/raw.c) get fuzzed counts and NULL pointers.
 *
 * Every buffer is allocated at exactly its declared size, so any read or
 * write past it is an ASan report.  Then:
 *   - a kernel returns 0 only for a call that is valid by its contract
 *     (checked here independently, with fjffi_check_buffer for each
 *     descriptor), with the right results in its output;
 *   - every valid call returns 0;
 *   - a failing kernel sets a message (typed) and leaves every output as
 *     it was.
 * Where every descriptor is one fjffi would have proved well formed, the
 * _trusted entry points (which skip those proofs) must answer the same.
 * The raw ABI carries no sizes, so the raw kernels' buffers are always the
 * 8 bytes of their contract: enforcing sizes is the caller's job there.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz_input.h"
#include "kernels_impl.h"

#define MAX_BUFFERS 4
#define MAX_NBYTES 4096 /* what a buffer may really hold; declared sizes beyond it are lies */

typedef struct slot {
    uint8_t *alloc;      /* exactly alloc_size bytes, or NULL */
    size_t alloc_size;
    int64_t *shape;      /* exactly shape_len entries, or NULL */
    uint8_t *before;     /* a copy of the bytes, to see what changed */
} slot;

enum { NEGATE, ADD, MULTIPLY, SUM, N_TYPED };

static int32_t call_typed(int k, int trusted, const fjffi_buffer *in, size_t n_in,
                          const fjffi_buffer *out, size_t n_out, fjffi_context *ctx) {
    switch (k) {
    case NEGATE:
        return (trusted ? fjffi_kernel_negate_trusted : fjffi_kernel_negate)(in, n_in, out, n_out,
                                                                              ctx);
    case ADD:
        return (trusted ? fjffi_kernel_add_trusted : fjffi_kernel_add)(in, n_in, out, n_out, ctx);
    case MULTIPLY:
        return (trusted ? fjffi_kernel_multiply_trusted : fjffi_kernel_multiply)(in, n_in, out,
                                                                                  n_out, ctx);
    default:
        return (trusted ? fjffi_kernel_sum_trusted : fjffi_kernel_sum)(in, n_in, out, n_out, ctx);
    }
}

/* Whether fjffi would have proved every descriptor well formed, which is
 * all the _trusted kernels may assume. */
static int all_well_formed(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out,
                           size_t n_out) {
    for (size_t j = 0; j < n_in; ++j)
        if (fjffi_check_buffer(&in[j], NULL, 0) != 0) return 0;
    for (size_t j = 0; j < n_out; ++j)
        if (fjffi_check_buffer(&out[j], NULL, 0) != 0) return 0;
    return 1;
}

static int same_shape(const fjffi_buffer *a, const fjffi_buffer *b) {
    if (a->ndim != b->ndim) return 0;
    for (int32_t i = 0; i < a->ndim; ++i)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* Whether the call keeps the kernel's contract, written from its doc line. */
static int valid_call(int k, const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out,
                      size_t n_out) {
    size_t want_in = (k == ADD || k == MULTIPLY) ? 2 : 1;
    if (n_in != want_in || n_out != 1) return 0;
    for (size_t j = 0; j < n_in; ++j)
        if (fjffi_check_buffer(&in[j], NULL, 0) != 0) return 0;
    if (fjffi_check_buffer(&out[0], NULL, 0) != 0) return 0;
    int32_t d = in[0].dtype;
    if (d != FJFFI_FLOAT64 && d != FJFFI_FLOAT32 && d != FJFFI_INT64 && d != FJFFI_INT32) return 0;
    for (size_t j = 1; j < n_in; ++j)
        if (in[j].dtype != d || !same_shape(&in[j], &in[0])) return 0;
    if (out[0].dtype != d) return 0;
    return k == SUM ? out[0].ndim == 0 : same_shape(&out[0], &in[0]);
}

/* Element i of a buffer, widened; integers as their bits. */
static double elem_f(const fjffi_buffer *b, size_t i) {
    return b->dtype == FJFFI_FLOAT64 ? ((const double *)b->data)[i]
                                     : (double)((const float *)b->data)[i];
}
static uint64_t elem_u(const fjffi_buffer *b, size_t i) {
    return b->dtype == FJFFI_INT64 ? (uint64_t)((const int64_t *)b->data)[i]
                                   : (uint64_t)(uint32_t)((const int32_t *)b->data)[i];
}
static int same_float(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* The results of a successful call, element by element (sum: integers exactly, floats loosely). */
static void check_results(int k, const fjffi_buffer *in, const fjffi_buffer *out) {
    size_t n = fjffi_numel(&in[0]);
    int is_float = in[0].dtype == FJFFI_FLOAT64 || in[0].dtype == FJFFI_FLOAT32;
    uint64_t mask = in[0].dtype == FJFFI_INT64 ? UINT64_MAX : UINT32_MAX;
    if (k == SUM) {
        if (is_float) {
            double acc = 0, mag = 0;
            int any_nan = 0;
            for (size_t i = 0; i < n; ++i) {
                acc += elem_f(&in[0], i);
                mag += fabs(elem_f(&in[0], i));
                any_nan |= isnan(elem_f(&in[0], i));
            }
            double got = elem_f(&out[0], 0);
            if (!any_nan && isfinite(mag))
                FUZZ_CHECK(fabs(got - acc) <= mag * 1e-5 + 1e-30 || (isinf(got) && mag > 1e30));
        } else {
            uint64_t acc = 0;
            for (size_t i = 0; i < n; ++i) acc += elem_u(&in[0], i);
            FUZZ_CHECK(elem_u(&out[0], 0) == (acc & mask));
        }
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        if (is_float) {
            double a = elem_f(&in[0], i), b = k == NEGATE ? 0 : elem_f(&in[1], i);
            double want = k == NEGATE ? -a : k == ADD ? a + b : a * b;
            if (in[0].dtype == FJFFI_FLOAT32) want = (float)want;
            FUZZ_CHECK(same_float(elem_f(&out[0], i), want));
        } else {
            uint64_t a = elem_u(&in[0], i), b = k == NEGATE ? 0 : elem_u(&in[1], i);
            uint64_t want = k == NEGATE ? 0 - a : k == ADD ? a + b : a * b;
            FUZZ_CHECK(elem_u(&out[0], i) == (want & mask));
        }
    }
}

static int32_t pick_dtype(fuzz_input *in, int32_t call_dtype) {
    uint8_t r = fuzz_u8(in);
    if (r < 200) return call_dtype;
    if (r < 250) return (int32_t)(r % FJFFI_NUM_DTYPES);
    return (int32_t)fuzz_u64(in, 4);
}

/* Fill one descriptor and its memory from the input. */
static void make_buffer(fuzz_input *in, fjffi_buffer *b, slot *s, int32_t call_dtype,
                        const fjffi_buffer *like, int scalar) {
    uint8_t how = fuzz_u8(in);
    b->dtype = pick_dtype(in, call_dtype);
    /* Mostly input 0's shape (or a scalar for sum), so the calls get past the shape checks. */
    if (scalar && (how & 3) != 0) {
        b->ndim = 0;
        s->shape = NULL;
    } else if (like != NULL && (how & 3) != 0) {
        b->ndim = like->ndim;
        int32_t n = b->ndim > 0 && b->ndim <= FJFFI_MAX_NDIM && like->shape ? b->ndim : 0;
        s->shape = n ? malloc((size_t)n * sizeof *s->shape) : NULL;
        if (n) memcpy(s->shape, like->shape, (size_t)n * sizeof *s->shape);
    } else {
        uint8_t nd = fuzz_u8(in);
        b->ndim = nd < 240 ? nd % 4 : nd < 250 ? FJFFI_MAX_NDIM - 5 + nd % 8 : -(nd % 3) - 1;
        int32_t n = b->ndim > 0 && b->ndim <= FJFFI_MAX_NDIM ? b->ndim : 0;
        s->shape = n ? malloc((size_t)n * sizeof *s->shape) : NULL;
        for (int32_t i = 0; i < n; ++i) {
            uint8_t d = fuzz_u8(in);
            s->shape[i] = d < 230 ? d % 7 : d < 240 ? 1 : fuzz_dim(in);
        }
    }
    if (how & 4 && b->ndim > 0 && s->shape) { /* a single wrong dimension */
        uint8_t i = fuzz_u8(in);
        s->shape[i % b->ndim] = fuzz_dim(in);
    }
    b->shape = (how & 8) && fuzz_u8(in) < 16 ? NULL : s->shape;

    /* nbytes: mostly what the shape needs, else a lie smaller or larger. */
    int64_t need = 0;
    size_t item = fjffi_itemsize(b->dtype);
    int ok = item != 0 && b->ndim >= 0 && b->ndim <= FJFFI_MAX_NDIM && (b->shape || b->ndim == 0) &&
             fjffi_checked_nbytes(b->shape, b->ndim, (int64_t)item, &need) == 0;
    uint8_t lie = fuzz_u8(in);
    size_t nbytes;
    if (ok && lie < 200)
        nbytes = (size_t)need;
    else if (ok && lie < 230)
        nbytes = (size_t)need + (size_t)(int64_t)(int8_t)fuzz_u8(in);
    else
        nbytes = (size_t)fuzz_u64(in, 2) % (MAX_NBYTES + 1);
    b->nbytes = nbytes;

    /* data: exactly nbytes of memory; a larger declared size is a lie no kernel can see. */
    uint8_t where = fuzz_u8(in);
    size_t real = nbytes <= MAX_NBYTES ? nbytes : 0;
    size_t misalign = (where & 7) == 7 ? 1 + fuzz_u8(in) % 7 : 0;
    s->alloc_size = real + misalign;
    s->alloc = malloc(s->alloc_size ? s->alloc_size : 1);
    fuzz_bytes(in, s->alloc, s->alloc_size);
    if (nbytes > MAX_NBYTES)
        b->data = NULL; /* a size with no memory behind it must be refused */
    else if ((where & 0x38) == 0x38)
        b->data = (where & 0x40) ? NULL : s->alloc;
    else
        b->data = s->alloc + misalign;
    if (nbytes == 0 && (where & 0x80)) b->data = NULL;
    s->before = malloc(s->alloc_size ? s->alloc_size : 1);
    memcpy(s->before, s->alloc, s->alloc_size);
}

static void free_slot(slot *s) {
    free(s->alloc);
    free(s->shape);
    free(s->before);
}

static void one_typed(fuzz_input *in) {
    uint8_t head = fuzz_u8(in);
    int k = head % N_TYPED;
    size_t n_in = (head >> 2) % 8 < 6 ? (k == ADD || k == MULTIPLY ? 2 : 1) : (head >> 2) % 4;
    size_t n_out = (head >> 5) < 6 ? 1 : (head >> 5) % 3;
    static const int32_t common[] = {FJFFI_FLOAT64, FJFFI_FLOAT32, FJFFI_INT64, FJFFI_INT32};
    uint8_t dsel = fuzz_u8(in);
    int32_t call_dtype = dsel < 224 ? common[dsel % 4] : (int32_t)(dsel % FJFFI_NUM_DTYPES);

    /* Descriptor arrays of exactly the count (NULL for none). */
    fjffi_buffer *ins = n_in ? malloc(n_in * sizeof *ins) : NULL;
    fjffi_buffer *outs = n_out ? malloc(n_out * sizeof *outs) : NULL;
    slot slots[2 * MAX_BUFFERS];
    memset(slots, 0, sizeof slots);
    for (size_t j = 0; j < n_in; ++j)
        make_buffer(in, &ins[j], &slots[j], call_dtype, j ? &ins[0] : NULL, 0);
    /* Inputs may alias each other: they are only read. */
    if (n_in == 2 && (fuzz_u8(in) & 7) == 0) ins[1] = ins[0];
    for (size_t j = 0; j < n_out; ++j)
        make_buffer(in, &outs[j], &slots[MAX_BUFFERS + j], call_dtype, n_in ? &ins[0] : NULL,
                    k == SUM);
    int valid = valid_call(k, ins, n_in, outs, n_out);

    fjffi_context ctx;
    memset(ctx.message, 0x5A, sizeof ctx.message);
    /* fjffi always passes a context, but a kernel given none must still just fail. */
    int no_ctx = (fuzz_u8(in) & 0x1F) == 0x1F;
    int32_t rc = call_typed(k, 0, ins, n_in, outs, n_out, no_ctx ? NULL : &ctx);
    if (rc == 0) {
        FUZZ_CHECK(valid);
        check_results(k, ins, outs);
    } else {
        FUZZ_CHECK(!valid);
        FUZZ_CHECK(rc >= FJFFI_E_NINPUTS && rc <= FJFFI_E_BUFFER);
        size_t len = strnlen(ctx.message, sizeof ctx.message);
        FUZZ_CHECK(no_ctx ? len == sizeof ctx.message : len > 0 && len < sizeof ctx.message);
        for (size_t j = 0; j < n_out; ++j) {
            slot *s = &slots[MAX_BUFFERS + j];
            FUZZ_CHECK(memcmp(s->alloc, s->before, s->alloc_size) == 0);
        }
    }
    /* Inputs are never written. */
    for (size_t j = 0; j < n_in; ++j)
        FUZZ_CHECK(memcmp(slots[j].alloc, slots[j].before, slots[j].alloc_size) == 0);

    /* Given what fjffi proves, the _trusted entry point answers the same, byte for byte. */
    if (all_well_formed(ins, n_in, outs, n_out)) {
        uint8_t *after[MAX_BUFFERS];
        for (size_t j = 0; j < n_out; ++j) {
            slot *s = &slots[MAX_BUFFERS + j];
            after[j] = malloc(s->alloc_size ? s->alloc_size : 1);
            memcpy(after[j], s->alloc, s->alloc_size);
            memcpy(s->alloc, s->before, s->alloc_size);
        }
        fjffi_context ctx2;
        memset(ctx2.message, 0x5A, sizeof ctx2.message);
        int32_t rc2 = call_typed(k, 1, ins, n_in, outs, n_out, &ctx2);
        FUZZ_CHECK(rc2 == rc);
        if (rc != 0 && !no_ctx) FUZZ_CHECK(strcmp(ctx2.message, ctx.message) == 0);
        for (size_t j = 0; j < n_out; ++j) {
            slot *s = &slots[MAX_BUFFERS + j];
            FUZZ_CHECK(memcmp(s->alloc, after[j], s->alloc_size) == 0);
            free(after[j]);
        }
    }
    for (size_t j = 0; j < 2 * MAX_BUFFERS; ++j) free_slot(&slots[j]);
    free(ins);
    free(outs);
}

static void one_raw(fuzz_input *in) {
    uint8_t head = fuzz_u8(in);
    int k = head % 4;
    size_t n_in = (head >> 2) % 4, n_out = (head >> 4) % 4;
    uint8_t nulls = fuzz_u8(in);
    const uint8_t **ins = n_in ? malloc(n_in * sizeof *ins) : NULL;
    uint8_t **outs = n_out ? malloc(n_out * sizeof *outs) : NULL;
    uint8_t *mem[8] = {0};
    uint8_t before[8][8];
    for (size_t j = 0; j < n_in + n_out; ++j) {
        mem[j] = malloc(8);
        fuzz_bytes(in, mem[j], 8);
        memcpy(before[j], mem[j], 8);
    }
    for (size_t j = 0; j < n_in; ++j) ins[j] = (nulls >> j & 1) ? NULL : mem[j];
    for (size_t j = 0; j < n_out; ++j) outs[j] = (nulls >> (4 + j) & 1) ? NULL : mem[n_in + j];

    int32_t rc;
    int counts_ok = n_in == 1 && n_out == 1;
    int ptrs_ok = counts_ok && ins[0] != NULL && outs[0] != NULL;
    switch (k) {
    case 0:
        rc = fjffi_kernel_noop(ins, n_in, outs, n_out);
        FUZZ_CHECK(rc == 0);
        break;
    case 1:
        rc = fjffi_kernel_fail(ins, n_in, outs, n_out);
        FUZZ_CHECK(rc == FJFFI_RAW_FAIL_CODE);
        break;
    case 2:
        rc = fjffi_kernel_copy(ins, n_in, outs, n_out);
        FUZZ_CHECK((rc == 0) == ptrs_ok);
        if (rc == 0) FUZZ_CHECK(memcmp(outs[0], ins[0], 8) == 0);
        break;
    default:
        rc = fjffi_kernel_double_f64(ins, n_in, outs, n_out);
        FUZZ_CHECK((rc == 0) == ptrs_ok);
        if (rc == 0) {
            double x, y;
            memcpy(&x, ins[0], 8);
            memcpy(&y, outs[0], 8);
            FUZZ_CHECK(same_float(y, x * 2.0));
        }
        break;
    }
    if (rc != 0 && k >= 2) {
        FUZZ_CHECK(rc == (n_in != 1 ? FJFFI_RAW_E_NINPUTS
                          : n_out != 1 ? FJFFI_RAW_E_NOUTPUTS
                                       : FJFFI_RAW_E_NULL));
    }
    /* Only a successful copy or double writes, and only its output. */
    for (size_t j = 0; j < n_in + n_out; ++j) {
        int written = rc == 0 && k >= 2 && j == n_in;
        if (!written) FUZZ_CHECK(memcmp(before[j], mem[j], 8) == 0);
        free(mem[j]);
    }
    free(ins);
    free(outs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size};
    for (int ops = 0; fuzz_left(&in) && ops < 64; ++ops) {
        if (fuzz_u8(&in) % 4 == 0)
            one_raw(&in);
        else
            one_typed(&in);
    }
    return 0;
}
