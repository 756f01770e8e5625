/*
 * fjffi._jax_handler -- one XLA FFI handler for every fjffi target.
 *
 * fjffi.jax emits a custom call to this handler with the target's name as
 * a string attribute.  On every execution the handler resolves that name
 * through an fjffi registry and runs it through the C API's invoke, which
 * keeps the contract of fjffi.Call.invoke (validation, zeroed outputs,
 * serialised non-thread-safe targets).  No address is baked into the
 * compiled program, so a re-registered name is what runs, and an exported
 * program is valid in any process that registers the name.
 *
 * Written in C against XLA's versioned C ABI (xla_ffi.h), so fjffi needs no
 * jax to build or import.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fjffi.h"
#include "xla_ffi.h"

static const fjffi_c_api *api;

/*
 * The registries named by compiled programs, by index: 0 is
 * fjffi.default_registry (NULL for invoke), its slot never used.  Each is
 * held for the life of the process, since a compiled program may run at any
 * time.  A slot is claimed with a compare-and-swap, not under the GIL: on a
 * free-threaded build two threads naming new registries at once would
 * otherwise both fill the same slot, and one program would run the other's
 * registry.  A filled slot never changes.
 */
#define MAX_REGISTRIES 1024
static PyObject *registries[MAX_REGISTRIES];

/* Buffers per side described on the stack; more go to the heap. */
#define STACK_BUFFERS 16

static XLA_FFI_Error *xla_error(const XLA_FFI_CallFrame *frame, XLA_FFI_Error_Code errc,
                                const char *fmt, ...) {
    char message[FJFFI_MESSAGE_SIZE + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    XLA_FFI_Error_Create_Args args = {
        FJFFI_XLA_STRUCT_END(XLA_FFI_Error_Create_Args, errc), NULL, message, errc};
    return frame->api->XLA_FFI_Error_Create(&args);
}

static int32_t fjffi_dtype_of(XLA_FFI_DataType t) {
    switch (t) {
    case XLA_FFI_DataType_F64: return FJFFI_FLOAT64;
    case XLA_FFI_DataType_F32: return FJFFI_FLOAT32;
    case XLA_FFI_DataType_F16: return FJFFI_FLOAT16;
    case XLA_FFI_DataType_BF16: return FJFFI_BFLOAT16;
    case XLA_FFI_DataType_S64: return FJFFI_INT64;
    case XLA_FFI_DataType_S32: return FJFFI_INT32;
    case XLA_FFI_DataType_S16: return FJFFI_INT16;
    case XLA_FFI_DataType_S8: return FJFFI_INT8;
    case XLA_FFI_DataType_U64: return FJFFI_UINT64;
    case XLA_FFI_DataType_U32: return FJFFI_UINT32;
    case XLA_FFI_DataType_U16: return FJFFI_UINT16;
    case XLA_FFI_DataType_U8: return FJFFI_UINT8;
    case XLA_FFI_DataType_PRED: return FJFFI_BOOL;
    case XLA_FFI_DataType_C64: return FJFFI_COMPLEX64;
    case XLA_FFI_DataType_C128: return FJFFI_COMPLEX128;
    }
    return -1;
}

/* Describe count XLA buffers; returns -1 (and the index in *bad) for an
 * element type fjffi has no dtype for. */
static int describe(void **buffers, int64_t count, fjffi_buffer *out, int64_t *bad) {
    for (int64_t i = 0; i < count; ++i) {
        const XLA_FFI_Buffer *b = (const XLA_FFI_Buffer *)buffers[i];
        int32_t code = fjffi_dtype_of(b->dtype);
        if (code < 0) {
            *bad = i;
            return -1;
        }
        size_t n = fjffi_itemsize(code);
        for (int64_t d = 0; d < b->rank; ++d) n *= (size_t)b->dims[d];
        out[i].data = b->data;
        out[i].nbytes = n;
        out[i].dtype = code;
        out[i].ndim = (int32_t)b->rank;
        out[i].shape = b->dims;
    }
    return 0;
}

static int span_is(const XLA_FFI_ByteSpan *s, const char *what) {
    size_t n = strlen(what);
    return s->len == n && memcmp(s->ptr, what, n) == 0;
}

/* Answer XLA's question of which API version a handler was written for;
 * 1 when the frame was that question. */
static int answered_version_query(XLA_FFI_CallFrame *frame) {
    if (frame->extension_start == NULL ||
        frame->extension_start->type != XLA_FFI_Extension_Metadata)
        return 0;
    XLA_FFI_Metadata *m = ((XLA_FFI_Metadata_Extension *)frame->extension_start)->metadata;
    m->api_version.struct_size = FJFFI_XLA_STRUCT_END(XLA_FFI_Api_Version, minor_version);
    m->api_version.extension_start = NULL;
    m->api_version.major_version = FJFFI_XLA_API_MAJOR;
    m->api_version.minor_version = FJFFI_XLA_API_MINOR;
    m->traits = 0;
    return 1;
}

static XLA_FFI_Error *handler(XLA_FFI_CallFrame *frame) {
    if (answered_version_query(frame)) return NULL;
    if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return NULL;

    const XLA_FFI_ByteSpan *name = NULL;
    int64_t reg_index = 0;
    for (int64_t i = 0; i < frame->attrs.size; ++i) {
        const XLA_FFI_ByteSpan *key = frame->attrs.names[i];
        if (span_is(key, "fjffi_target") && frame->attrs.types[i] == XLA_FFI_AttrType_STRING) {
            name = (const XLA_FFI_ByteSpan *)frame->attrs.attrs[i];
        } else if (span_is(key, "fjffi_registry") &&
                   frame->attrs.types[i] == XLA_FFI_AttrType_SCALAR) {
            const XLA_FFI_Scalar *s = (const XLA_FFI_Scalar *)frame->attrs.attrs[i];
            if (s->dtype != XLA_FFI_DataType_S64)
                return xla_error(frame, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                                 "fjffi: attribute fjffi_registry must be an int64");
            reg_index = *(const int64_t *)s->value;
        }
    }
    if (name == NULL)
        return xla_error(frame, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                         "fjffi: the custom call has no string attribute fjffi_target "
                         "(emit it with fjffi.jax.call)");
    int name_len = name->len > 4096 ? 4096 : (int)name->len; /* for messages only */
    PyObject *registry = NULL;
    if (reg_index > 0 && reg_index < MAX_REGISTRIES)
        registry = __atomic_load_n(&registries[reg_index], __ATOMIC_ACQUIRE);
    if (reg_index != 0 && registry == NULL)
        return xla_error(frame, XLA_FFI_Error_Code_FAILED_PRECONDITION,
                         "fjffi target '%.*s': the registry this program was traced with "
                         "(index %lld) does not exist in this process; only programs on "
                         "fjffi.default_registry can be exported",
                         name_len, name->ptr, (long long)reg_index);

    int64_t n_in = frame->args.size, n_out = frame->rets.size;
    for (int64_t i = 0; i < n_in; ++i)
        if (frame->args.types[i] != XLA_FFI_ArgType_BUFFER)
            return xla_error(frame, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                             "fjffi target '%.*s': input %lld is not a buffer", name_len,
                             name->ptr, (long long)i);
    for (int64_t i = 0; i < n_out; ++i)
        if (frame->rets.types[i] != XLA_FFI_RetType_BUFFER)
            return xla_error(frame, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                             "fjffi target '%.*s': result %lld is not a buffer", name_len,
                             name->ptr, (long long)i);

    fjffi_buffer stack[2 * STACK_BUFFERS];
    fjffi_buffer *descs = stack;
    if (n_in + n_out > 2 * STACK_BUFFERS) {
        descs = (fjffi_buffer *)malloc((size_t)(n_in + n_out) * sizeof(fjffi_buffer));
        if (descs == NULL)
            return xla_error(frame, XLA_FFI_Error_Code_INTERNAL,
                             "fjffi target '%.*s': out of memory", name_len, name->ptr);
    }
    XLA_FFI_Error *err = NULL;
    int64_t bad = 0;
    if (describe(frame->args.args, n_in, descs, &bad) != 0) {
        err = xla_error(frame, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "fjffi target '%.*s': input %lld has XLA element type %d, which "
                        "fjffi has no dtype for",
                        name_len, name->ptr, (long long)bad,
                        (int)((XLA_FFI_Buffer *)frame->args.args[bad])->dtype);
    } else if (describe(frame->rets.rets, n_out, descs + n_in, &bad) != 0) {
        err = xla_error(frame, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                        "fjffi target '%.*s': result %lld has XLA element type %d, which "
                        "fjffi has no dtype for",
                        name_len, name->ptr, (long long)bad,
                        (int)((XLA_FFI_Buffer *)frame->rets.rets[bad])->dtype);
    } else {
        char message[FJFFI_MESSAGE_SIZE];
        int32_t code = 0;
        message[0] = '\0';
        int32_t rc = api->invoke(registry, name->ptr, name->len, descs,
                                 (size_t)n_in, descs + n_in, (size_t)n_out, &code, message,
                                 sizeof message);
        if (rc == FJFFI_INVOKE_FAILED)
            err = xla_error(frame, XLA_FFI_Error_Code_INTERNAL,
                            "fjffi.CallFailedError: target '%.*s' failed with code %d: %s",
                            name_len, name->ptr, (int)code, message);
        else if (rc != 0)
            err = xla_error(frame, XLA_FFI_Error_Code_INVALID_ARGUMENT,
                            "fjffi refused the call of target '%.*s': %s", name_len,
                            name->ptr, message);
    }
    if (descs != stack) free(descs);
    return err;
}

/* The floor of any XLA FFI handler: answers the version query, does nothing
 * else.  The benchmarks measure fjffi's handler against it. */
static XLA_FFI_Error *empty_handler(XLA_FFI_CallFrame *frame) {
    answered_version_query(frame);
    return NULL;
}

static PyObject *handler_address(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromVoidPtr((void *)handler);
}

static PyObject *empty_handler_address(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromVoidPtr((void *)empty_handler);
}

static PyObject *registry_index(PyObject *self, PyObject *registry) {
    (void)self;
    PyObject *core = PyImport_ImportModule("fjffi._core");
    if (core == NULL) return NULL;
    PyObject *cls = PyObject_GetAttrString(core, "Registry");
    PyObject *deflt = PyObject_GetAttrString(core, "default_registry");
    Py_DECREF(core);
    if (cls == NULL || deflt == NULL) {
        Py_XDECREF(cls);
        Py_XDECREF(deflt);
        return NULL;
    }
    int is_registry = PyObject_TypeCheck(registry, (PyTypeObject *)cls);
    int is_default = registry == deflt;
    Py_DECREF(cls);
    Py_DECREF(deflt);
    if (!is_registry) {
        PyErr_Format(PyExc_TypeError, "registry must be a fjffi.Registry, not %s",
                     Py_TYPE(registry)->tp_name);
        return NULL;
    }
    if (is_default) return PyLong_FromLong(0);
    /* Slots fill from the front: a registry in none of the filled ones takes the first
     * empty one. */
    for (int64_t i = 1; i < MAX_REGISTRIES; ++i) {
        PyObject *held = __atomic_load_n(&registries[i], __ATOMIC_ACQUIRE);
        if (held == NULL) {
            Py_INCREF(registry); /* before it is published: the slot keeps it */
            if (__atomic_compare_exchange_n(&registries[i], &held, registry, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return PyLong_FromLongLong(i);
            Py_DECREF(registry); /* another thread filled it first */
        }
        if (held == registry) return PyLong_FromLongLong(i);
    }
    PyErr_Format(PyExc_RuntimeError,
                 "fjffi.jax: more than %d registries used in compiled programs",
                 MAX_REGISTRIES - 1);
    return NULL;
}

static PyMethodDef methods[] = {
    {"handler_address", handler_address, METH_NOARGS,
     "The address of the XLA FFI handler that runs fjffi targets by name."},
    {"empty_handler_address", empty_handler_address, METH_NOARGS,
     "The address of an XLA FFI handler that does nothing (a benchmark floor)."},
    {"registry_index", registry_index, METH_O,
     "The index a compiled program names a fjffi.Registry by (0: the default)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "fjffi._jax_handler",
    .m_doc = "The XLA FFI handler behind fjffi.jax (needs no jax to import).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__jax_handler(void) {
    api = fjffi_import_c_api();
    if (api == NULL) return NULL;
    if (api->invoke == NULL) {
        PyErr_SetString(PyExc_ImportError, "this fjffi core exports no invoke in its C API");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
#ifdef Py_GIL_DISABLED
    /* The handler keeps no Python state of its own between calls. */
    if (m != NULL && PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) != 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
