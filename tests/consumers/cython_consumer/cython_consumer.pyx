# cython: language_level=3, freethreading_compatible=True
"""A kernel written in Cython and registered through `cimport fjffi`."""

from libc.stdint cimport int32_t

from fjffi cimport (
    FJFFI_ABI_TYPED, FJFFI_FLOAT64, fjffi_buffer, fjffi_context, fjffi_fail, fjffi_numel,
    register_function,
)


cdef int32_t axpy(const fjffi_buffer *inputs, size_t n_inputs,
                  const fjffi_buffer *outputs, size_t n_outputs,
                  fjffi_context *ctx) noexcept nogil:
    """out0 = in0 * x + in1: in0 a float64 scalar, x and y float64 arrays of one shape."""
    if n_inputs != 3 or n_outputs != 1:
        return fjffi_fail(ctx, 1, b"axpy: expected 3 inputs (a, x, y) and 1 output")
    cdef size_t i
    for i in range(3):
        if inputs[i].dtype != FJFFI_FLOAT64:
            return fjffi_fail(ctx, 2, b"axpy: every input must be float64")
    if outputs[0].dtype != FJFFI_FLOAT64 or inputs[0].ndim != 0:
        return fjffi_fail(ctx, 2, b"axpy: a must be a float64 scalar, out0 float64")
    cdef size_t n = fjffi_numel(&inputs[1])
    if fjffi_numel(&inputs[2]) != n or fjffi_numel(&outputs[0]) != n:
        return fjffi_fail(ctx, 3, b"axpy: x, y and out0 must have one size")
    cdef double a = (<const double *>inputs[0].data)[0]
    cdef const double *x = <const double *>inputs[1].data
    cdef const double *y = <const double *>inputs[2].data
    cdef double *out = <double *>outputs[0].data
    for i in range(n):
        out[i] = a * x[i] + y[i]
    return 0


def register(registry=None, name="cython_axpy", gil="release"):
    """Register axpy in registry (None: fjffi.default_registry)."""
    register_function(registry, name, <void *>axpy, FJFFI_ABI_TYPED, gil)
