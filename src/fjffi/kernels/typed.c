/*
 * Typed-ABI (api_version=1) built-in kernels: negate, add, multiply, sum
 * for float64, float32, int64 and int32.
 *
 * Each public kernel validates its descriptors fully before touching any
 * data, then dispatches on the dtype code to a loop from typed.template.c.
 * Outputs are fresh buffers owned by fjffi, so they never overlap an input
 * (which is what makes `restrict` in the loops valid); inputs may alias
 * each other, since they are only read.
 */
#include "kernels_impl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/*
 * An AVX2 clone of each hot loop, picked at load time by an ifunc, so a
 * portable build (no -march=native) still runs wide vectors.  ifuncs need
 * ELF and glibc (fjffi.h's <string.h> has defined __GLIBC__ by now).
 * -DFJFFI_NO_CLONES turns this off, e.g. to test the baseline loops.
 */
#if defined(__has_attribute) && defined(__GNUC__) && defined(__x86_64__) && \
    defined(__linux__) && defined(__GLIBC__) && !defined(FJFFI_NO_CLONES)
#if __has_attribute(target_clones)
#define FJFFI_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef FJFFI_CLONES
#define FJFFI_CLONES
#endif

#if defined(__GNUC__)
#define FJFFI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define FJFFI_PRINTF(fmt, args)
#endif

/*
 * Runs body with j = 0 .. n-1.  The fixed-count inner loop is what makes
 * gcc -O2 vectorise it too (its cheap cost model rejects a loop of unknown
 * count that needs a scalar tail); -O3 would vectorise a plain loop anyway.
 */
#define FJFFI_BLOCK 16
#define FJFFI_FOR_EACH(j, n, body)                                       \
    do {                                                                 \
        size_t blk_ = 0;                                                 \
        for (; blk_ + FJFFI_BLOCK <= (n); blk_ += FJFFI_BLOCK)           \
            for (size_t j = blk_; j < blk_ + FJFFI_BLOCK; ++j) { body; } \
        for (size_t j = blk_; j < (n); ++j) { body; }                    \
    } while (0)

/* numpy's PW_BLOCKSIZE. */
#define FJFFI_PW_BLOCKSIZE 128

#define FJFFI_T double
#define FJFFI_U double
#define FJFFI_IS_FLOAT 1
#define FJFFI_SUFFIX f64
#include "typed.template.c"
#undef FJFFI_T
#undef FJFFI_U
#undef FJFFI_IS_FLOAT
#undef FJFFI_SUFFIX

#define FJFFI_T float
#define FJFFI_U float
#define FJFFI_IS_FLOAT 1
#define FJFFI_SUFFIX f32
#include "typed.template.c"
#undef FJFFI_T
#undef FJFFI_U
#undef FJFFI_IS_FLOAT
#undef FJFFI_SUFFIX

#define FJFFI_T int64_t
#define FJFFI_U uint64_t
#define FJFFI_IS_FLOAT 0
#define FJFFI_SUFFIX i64
#include "typed.template.c"
#undef FJFFI_T
#undef FJFFI_U
#undef FJFFI_IS_FLOAT
#undef FJFFI_SUFFIX

#define FJFFI_T int32_t
#define FJFFI_U uint32_t
#define FJFFI_IS_FLOAT 0
#define FJFFI_SUFFIX i32
#include "typed.template.c"
#undef FJFFI_T
#undef FJFFI_U
#undef FJFFI_IS_FLOAT
#undef FJFFI_SUFFIX

typedef void (*unary_loop)(void *restrict out, const void *restrict a, size_t n);
typedef void (*binary_loop)(void *restrict out, const void *restrict a, const void *restrict b,
                            size_t n);

typedef struct dtype_loops {
    unary_loop negate;
    binary_loop add;
    binary_loop multiply;
    unary_loop sum; /* writes one element to out */
} dtype_loops;

/* A dtype is supported exactly when its entry is filled in. */
static const dtype_loops loops[FJFFI_NUM_DTYPES] = {
    [FJFFI_FLOAT64] = {negate_f64, add_f64, multiply_f64, sum_f64},
    [FJFFI_FLOAT32] = {negate_f32, add_f32, multiply_f32, sum_f32},
    [FJFFI_INT64] = {negate_i64, add_i64, multiply_i64, sum_i64},
    [FJFFI_INT32] = {negate_i32, add_i32, multiply_i32, sum_i32},
};

const char *fjffi_dtype_name(int32_t code, char *buf, size_t cap) {
    const fjffi_dtype_info *info = fjffi_dtype_info_of(code);
    if (info != NULL) return info->name;
    snprintf(buf, cap, "<unknown dtype code %d>", (int)code);
    return buf;
}

FJFFI_PRINTF(3, 4)
static int32_t fail_fmt(fjffi_context *ctx, int32_t code, const char *fmt, ...) {
    char msg[FJFFI_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fjffi_fail(ctx, code, msg);
}

/* Room for two shapes and the words around them in one message. */
#define SHAPE_STR_SIZE 96

/* "()", "(3,)", "(2, 2)"; a shape too long to fit ends in "...)". */
static void format_shape(char buf[SHAPE_STR_SIZE], const fjffi_buffer *b) {
    size_t pos = 0;
    buf[pos++] = '(';
    for (int32_t i = 0; i < b->ndim; ++i) {
        char dim[32];
        int len = snprintf(dim, sizeof dim, "%s%lld", i > 0 ? ", " : "", (long long)b->shape[i]);
        /* Keep 8 bytes free for ", ...)" or the closing ",)" and the NUL. */
        if (len < 0 || pos + (size_t)len + 8 > SHAPE_STR_SIZE) {
            const char *tail = i > 0 ? ", ...)" : "...)";
            memcpy(buf + pos, tail, strlen(tail) + 1);
            return;
        }
        memcpy(buf + pos, dim, (size_t)len);
        pos += (size_t)len;
    }
    if (b->ndim == 1) buf[pos++] = ',';
    buf[pos++] = ')';
    buf[pos] = '\0';
}

static int same_shape(const fjffi_buffer *a, const fjffi_buffer *b) {
    if (a->ndim != b->ndim) return 0;
    for (int32_t i = 0; i < a->ndim; ++i)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* Bytes the shape needs at itemsize; 0 on success, -1 if it overflows size_t. */
static int shape_nbytes(const fjffi_buffer *b, size_t itemsize, size_t *out) {
    for (int32_t i = 0; i < b->ndim; ++i) {
        if (b->shape[i] == 0) {
            *out = 0;
            return 0;
        }
    }
    size_t n = itemsize;
    for (int32_t i = 0; i < b->ndim; ++i) {
        uint64_t d = (uint64_t)b->shape[i];
        if (d > SIZE_MAX || (n != 0 && (size_t)d > SIZE_MAX / n)) return -1;
        n *= (size_t)d;
    }
    *out = n;
    return 0;
}

/* The j-th buffer of a call, counting inputs first: the role and index it is reported as. */
typedef struct buffer_ref {
    const fjffi_buffer *b;
    const char *role;
    size_t index;
} buffer_ref;

static buffer_ref nth_buffer(const fjffi_buffer *inputs, size_t n_inputs,
                             const fjffi_buffer *outputs, size_t j) {
    buffer_ref r;
    if (j < n_inputs) {
        r.b = &inputs[j];
        r.role = "input";
        r.index = j;
    } else {
        r.b = &outputs[j - n_inputs];
        r.role = "output";
        r.index = j - n_inputs;
    }
    return r;
}

/*
 * Checks a call of kernel `k` with `want_inputs` inputs and one output,
 * all of one supported dtype.  With scalar_output the output must be 0-d,
 * otherwise every buffer has input 0's shape.  On success stores input 0's
 * element count in *numel and returns 0; otherwise fails with a message.
 * trusted: the descriptors come from fjffi, which has proved each one
 * well formed (ndim, shape, nbytes, data, alignment): only what the kernel
 * itself needs is checked.
 */
static int32_t validate(const char *k, const fjffi_buffer *inputs, size_t n_inputs,
                        size_t want_inputs, const fjffi_buffer *outputs, size_t n_outputs,
                        int scalar_output, int trusted, fjffi_context *ctx, size_t *numel) {
    if (n_inputs != want_inputs)
        return fail_fmt(ctx, FJFFI_E_NINPUTS, "%s: expected %zu input%s, got %zu", k, want_inputs,
                        want_inputs == 1 ? "" : "s", n_inputs);
    if (n_outputs != 1)
        return fail_fmt(ctx, FJFFI_E_NOUTPUTS, "%s: expected 1 output, got %zu", k, n_outputs);

    const size_t total = n_inputs + n_outputs;
    const fjffi_buffer *ref = &inputs[0];
    char s1[SHAPE_STR_SIZE], s2[SHAPE_STR_SIZE], d1[32], d2[32];

    /* Shapes are printed below, so they must be sane first. */
    for (size_t j = 0; j < total && !trusted; ++j) {
        buffer_ref r = nth_buffer(inputs, n_inputs, outputs, j);
        if (r.b->ndim < 0 || r.b->ndim > FJFFI_MAX_NDIM)
            return fail_fmt(ctx, FJFFI_E_BUFFER, "%s: %s %zu has invalid ndim %ld", k, r.role,
                            r.index, (long)r.b->ndim);
        if (r.b->ndim > 0 && r.b->shape == NULL)
            return fail_fmt(ctx, FJFFI_E_BUFFER, "%s: %s %zu has ndim %ld but no shape", k,
                            r.role, r.index, (long)r.b->ndim);
        for (int32_t i = 0; i < r.b->ndim; ++i)
            if (r.b->shape[i] < 0)
                return fail_fmt(ctx, FJFFI_E_BUFFER, "%s: %s %zu has negative dimension %lld",
                                k, r.role, r.index, (long long)r.b->shape[i]);
    }

    for (size_t j = 1; j < total; ++j) {
        buffer_ref r = nth_buffer(inputs, n_inputs, outputs, j);
        if (r.b->dtype != ref->dtype)
            return fail_fmt(ctx, FJFFI_E_DTYPE, "%s: %s %zu has dtype %s but input 0 has %s", k,
                            r.role, r.index, fjffi_dtype_name(r.b->dtype, d1, sizeof d1),
                            fjffi_dtype_name(ref->dtype, d2, sizeof d2));
    }
    if (ref->dtype < 0 || ref->dtype >= FJFFI_NUM_DTYPES || loops[ref->dtype].negate == NULL)
        return fail_fmt(ctx, FJFFI_E_UNSUPPORTED,
                        "%s: dtype %s is not supported (expected float64, float32, int64 or int32)",
                        k, fjffi_dtype_name(ref->dtype, d1, sizeof d1));

    for (size_t j = 1; j < total; ++j) {
        buffer_ref r = nth_buffer(inputs, n_inputs, outputs, j);
        if (scalar_output && j >= n_inputs) {
            if (r.b->ndim != 0) {
                format_shape(s1, r.b);
                return fail_fmt(ctx, FJFFI_E_SHAPE, "%s: %s %zu must have shape () but has %s",
                                k, r.role, r.index, s1);
            }
        } else if (!same_shape(r.b, ref)) {
            format_shape(s1, r.b);
            format_shape(s2, ref);
            return fail_fmt(ctx, FJFFI_E_SHAPE, "%s: %s %zu shape %s does not match input 0 shape %s",
                            k, r.role, r.index, s1, s2);
        }
    }

    /* fjffi guarantees all of this; checking it keeps another caller's bug
     * from becoming an overrun. */
    const size_t itemsize = fjffi_itemsize(ref->dtype);
    for (size_t j = 0; j < total && !trusted; ++j) {
        buffer_ref r = nth_buffer(inputs, n_inputs, outputs, j);
        size_t need;
        if (shape_nbytes(r.b, itemsize, &need) != 0) {
            format_shape(s1, r.b);
            return fail_fmt(ctx, FJFFI_E_BUFFER, "%s: %s %zu shape %s is too large", k, r.role,
                            r.index, s1);
        }
        if (r.b->nbytes != need) {
            format_shape(s1, r.b);
            return fail_fmt(ctx, FJFFI_E_BUFFER, "%s: %s %zu has nbytes %zu but shape %s of %s needs %zu",
                            k, r.role, r.index, r.b->nbytes, s1, fjffi_dtype_info_of(ref->dtype)->name, need);
        }
        if (need > 0 && r.b->data == NULL)
            return fail_fmt(ctx, FJFFI_E_BUFFER, "%s: %s %zu has NULL data", k, r.role, r.index);
        if (need > 0 && (uintptr_t)r.b->data % itemsize != 0)
            return fail_fmt(ctx, FJFFI_E_BUFFER, "%s: %s %zu data is not aligned to %zu bytes for %s",
                            k, r.role, r.index, itemsize, fjffi_dtype_info_of(ref->dtype)->name);
    }

    *numel = fjffi_numel(ref);
    return 0;
}

/* Each kernel twice: checking every descriptor (for any caller), and
 * trusting what fjffi proved (the built-in registry's entry points). */
#define FJFFI_TYPED_KERNEL(op, want_inputs, scalar_output, body)                                 \
    static int32_t op##_impl(const fjffi_buffer *inputs, size_t n_inputs,                        \
                             const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx, \
                             int trusted) {                                                      \
        size_t n;                                                                                \
        int32_t rc = validate(#op, inputs, n_inputs, want_inputs, outputs, n_outputs,            \
                              scalar_output, trusted, ctx, &n);                                  \
        if (rc != 0) return rc;                                                                  \
        body;                                                                                    \
        return 0;                                                                                \
    }                                                                                            \
    int32_t fjffi_kernel_##op(const fjffi_buffer *inputs, size_t n_inputs,                       \
                              const fjffi_buffer *outputs, size_t n_outputs,                     \
                              fjffi_context *ctx) {                                              \
        return op##_impl(inputs, n_inputs, outputs, n_outputs, ctx, 0);                          \
    }                                                                                            \
    int32_t fjffi_kernel_##op##_trusted(const fjffi_buffer *inputs, size_t n_inputs,             \
                                        const fjffi_buffer *outputs, size_t n_outputs,           \
                                        fjffi_context *ctx) {                                    \
        return op##_impl(inputs, n_inputs, outputs, n_outputs, ctx, 1);                          \
    }

FJFFI_TYPED_KERNEL(negate, 1, 0, loops[inputs[0].dtype].negate(outputs[0].data, inputs[0].data, n))
FJFFI_TYPED_KERNEL(add, 2, 0,
                   loops[inputs[0].dtype].add(outputs[0].data, inputs[0].data, inputs[1].data, n))
FJFFI_TYPED_KERNEL(multiply, 2, 0,
                   loops[inputs[0].dtype].multiply(outputs[0].data, inputs[0].data,
                                                   inputs[1].data, n))
FJFFI_TYPED_KERNEL(sum, 1, 1, loops[inputs[0].dtype].sum(outputs[0].data, inputs[0].data, n))
