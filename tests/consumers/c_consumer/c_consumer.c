/* A kernel in a plain C extension, registered through fjffi's C-API capsule. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "fjffi.h"

/* out0 = |in0| elementwise, int64, any shape (typed ABI). */
static int32_t abs_i64(const fjffi_buffer *inputs, size_t n_inputs,
                       const fjffi_buffer *outputs, size_t n_outputs, fjffi_context *ctx) {
    if (n_inputs != 1 || n_outputs != 1)
        return fjffi_fail(ctx, 1, "abs_i64: expected 1 input and 1 output");
    if (inputs[0].dtype != FJFFI_INT64 || outputs[0].dtype != FJFFI_INT64 ||
        outputs[0].nbytes != inputs[0].nbytes)
        return fjffi_fail(ctx, 2, "abs_i64: int64 in and out, one shape");
    const int64_t *x = inputs[0].data;
    int64_t *y = outputs[0].data;
    for (size_t i = 0, n = fjffi_numel(&inputs[0]); i < n; ++i) y[i] = x[i] < 0 ? -x[i] : x[i];
    return 0;
}

/* register(registry=None, name="c_abs") */
static PyObject *register_kernels(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"registry", "name", NULL};
    PyObject *registry = Py_None;
    const char *name = "c_abs";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Os", keywords, &registry, &name))
        return NULL;
    const fjffi_c_api *api = PyCapsule_Import(FJFFI_C_API_CAPSULE, 0);
    if (api == NULL) return NULL;
    if (api->version < FJFFI_C_API_VERSION) {
        PyErr_Format(PyExc_ImportError, "fjffi C API version %u is older than %d",
                     (unsigned)api->version, FJFFI_C_API_VERSION);
        return NULL;
    }
    if (api->register_function(registry == Py_None ? NULL : registry, name, (void *)abs_i64,
                               FJFFI_ABI_TYPED, "release", 1) != 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"register", (PyCFunction)(void (*)(void))register_kernels, METH_VARARGS | METH_KEYWORDS,
     "register(registry=None, name='c_abs'): register abs_i64 in fjffi."},
    {NULL, NULL, 0, NULL},
};

/* Multi-phase init, so the module can declare that it needs no GIL (it keeps
 * no state of its own): without the slot, importing it would turn the GIL
 * back on under a free-threaded Python. */
static PyModuleDef_Slot slots[] = {
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "c_consumer",
                                    .m_size = 0, .m_methods = methods, .m_slots = slots};

PyMODINIT_FUNC PyInit_c_consumer(void) { return PyModuleDef_Init(&module); }
