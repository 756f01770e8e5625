/* Typed kernels for the interop tests (fjffi.jax, DLPack, numba): real C,
 * compiled by the tests with the installed fjffi.h. */
#include <fjffi.h>
#include <time.h>

/* output 0 = input 0, bit for bit: any dtype, any shape. */
int32_t ik_copy(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out, size_t n_out,
                fjffi_context *ctx) {
    if (n_in != 1 || n_out < 1) return fjffi_fail(ctx, 1, "ik_copy: 1 input, 1+ outputs");
    for (size_t k = 0; k < n_out; ++k) {
        if (out[k].dtype != in[0].dtype || out[k].nbytes != in[0].nbytes)
            return fjffi_fail(ctx, 2, "ik_copy: output differs from input in dtype or size");
        memcpy(out[k].data, in[0].data, in[0].nbytes);
    }
    return 0;
}

/* output 0 (int32, shape ()) = the fjffi dtype code of input 0;
 * output 1 (int32, shape (ndim,) or larger) = input 0's shape. */
int32_t ik_describe(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out, size_t n_out,
                    fjffi_context *ctx) {
    if (n_in != 1 || n_out != 1 || out[0].dtype != FJFFI_INT32 || out[0].nbytes != 4)
        return fjffi_fail(ctx, 1, "ik_describe: 1 input, 1 int32 scalar output");
    *(int32_t *)out[0].data = in[0].dtype;
    return 0;
}

/* output 0 (float64, shape ()) = sum of a 1-d float64 input; refuses any
 * other rank, so a batched call shows. */
int32_t ik_sum_1d(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out, size_t n_out,
                  fjffi_context *ctx) {
    if (n_in != 1 || n_out != 1 || in[0].dtype != FJFFI_FLOAT64 || out[0].ndim != 0)
        return fjffi_fail(ctx, 1, "ik_sum_1d: 1 float64 input, 1 float64 scalar output");
    if (in[0].ndim != 1) return fjffi_fail(ctx, 3, "ik_sum_1d: the input must be 1-d");
    double s = 0;
    const double *x = (const double *)in[0].data;
    for (int64_t i = 0; i < in[0].shape[0]; ++i) s += x[i];
    *(double *)out[0].data = s;
    return 0;
}

/* Fails when two calls overlap: registered thread_safe=False, it must be
 * serialised. */
static int in_flight;
int32_t ik_serial(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out, size_t n_out,
                  fjffi_context *ctx) {
    (void)in; (void)n_in;
    if (__atomic_add_fetch(&in_flight, 1, __ATOMIC_SEQ_CST) != 1) {
        __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
        return fjffi_fail(ctx, 9, "ik_serial: two calls at once");
    }
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
    for (size_t k = 0; k < n_out; ++k) memset(out[k].data, 1, out[k].nbytes);
    __atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/* Writes its outputs, then fails with a message: the caller must see zeros. */
int32_t ik_fail_after_write(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out,
                            size_t n_out, fjffi_context *ctx) {
    (void)in; (void)n_in;
    for (size_t k = 0; k < n_out; ++k) memset(out[k].data, 0x7f, out[k].nbytes);
    return fjffi_fail(ctx, 7, "ik_fail_after_write: wrote, then failed");
}

/* output 0 = -input 0, float64 of any shape. */
int32_t ik_negate_f64(const fjffi_buffer *in, size_t n_in, const fjffi_buffer *out,
                      size_t n_out, fjffi_context *ctx) {
    if (n_in != 1 || n_out != 1 || in[0].dtype != FJFFI_FLOAT64 ||
        out[0].dtype != FJFFI_FLOAT64 || out[0].nbytes != in[0].nbytes)
        return fjffi_fail(ctx, 1, "ik_negate_f64: 1 float64 input, 1 like it");
    const double *x = (const double *)in[0].data;
    double *y = (double *)out[0].data;
    for (size_t i = 0; i < in[0].nbytes / sizeof(double); ++i) y[i] = -x[i];
    return 0;
}
