/* A minimal DLPack producer for the tests: it exports any memory it is
 * given, with any dtype, shape, strides, offset, device, flags and version,
 * as a "dltensor_versioned" or legacy "dltensor" capsule, and counts the
 * deleter calls.  Its DLPack structs are declared here from the
 * specification, apart from fjffi's own header. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int32_t device_type, device_id; } Device;
typedef struct { uint8_t code, bits; uint16_t lanes; } DataType;
typedef struct {
    void *data;
    Device device;
    int32_t ndim;
    DataType dtype;
    int64_t *shape, *strides;
    uint64_t byte_offset;
} Tensor;
typedef struct Versioned {
    struct { uint32_t major, minor; } version;
    void *manager_ctx;
    void (*deleter)(struct Versioned *);
    uint64_t flags;
    Tensor dl_tensor;
} Versioned;
typedef struct Legacy {
    Tensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct Legacy *);
} Legacy;

typedef struct {
    union { Versioned v; Legacy l; } u;
    int64_t shape[16], strides[16];
} Block;

static int deleted;
int producer_deleted(void) { return __atomic_load_n(&deleted, __ATOMIC_SEQ_CST); }

static void delete_v(Versioned *self) { free(self); __atomic_add_fetch(&deleted, 1, __ATOMIC_SEQ_CST); }
static void delete_l(Legacy *self) { free(self); __atomic_add_fetch(&deleted, 1, __ATOMIC_SEQ_CST); }

/* An unconsumed capsule gives its tensor back itself, as the spec asks. */
static void capsule_v(PyObject *cap) {
    if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
        Versioned *v = PyCapsule_GetPointer(cap, "dltensor_versioned");
        v->deleter(v);
    }
}
static void capsule_l(PyObject *cap) {
    if (PyCapsule_IsValid(cap, "dltensor")) {
        Legacy *l = PyCapsule_GetPointer(cap, "dltensor");
        l->deleter(l);
    }
}

PyObject *producer_capsule(void *data, int32_t ndim, const int64_t *shape,
                           const int64_t *strides, uint8_t code, uint8_t bits, uint16_t lanes,
                           int32_t device_type, uint64_t flags, uint64_t byte_offset,
                           uint32_t major, int versioned) {
    Block *b = calloc(1, sizeof(Block));
    if (b == NULL || ndim > 16) return PyErr_NoMemory();
    memcpy(b->shape, shape, (size_t)ndim * sizeof(int64_t));
    if (strides) memcpy(b->strides, strides, (size_t)ndim * sizeof(int64_t));
    Tensor t = {data, {device_type, 0}, ndim, {code, bits, lanes}, b->shape,
                strides ? b->strides : NULL, byte_offset};
    if (versioned) {
        b->u.v.version.major = major;
        b->u.v.version.minor = 0;
        b->u.v.deleter = delete_v;
        b->u.v.flags = flags;
        b->u.v.dl_tensor = t;
        return PyCapsule_New(&b->u.v, "dltensor_versioned", capsule_v);
    }
    b->u.l.deleter = delete_l;
    b->u.l.dl_tensor = t;
    return PyCapsule_New(&b->u.l, "dltensor", capsule_l);
}

/* A C exchange table (__dlpack_c_exchange_api__), for objects that carry
 * _dl = (data address, ndim, shape address, code, bits) and whose
 * __dlpack__ exports the same memory.  Counts how each path is used. */
typedef struct {
    struct { uint32_t major, minor; } version;
    void *prev_api;
} ExchangeHeader;
typedef struct {
    ExchangeHeader header;
    void *managed_tensor_allocator;
    int (*managed_from_py)(void *obj, Versioned **out);
    void *managed_to_py;
    int (*dltensor_from_py)(void *obj, Tensor *out);
    void *current_work_stream;
} Exchange;

static int n_fills, n_managed;
int producer_fills(void) { return n_fills; }
int producer_managed(void) { return n_managed; }

static int fill(void *obj, Tensor *out) {
    PyObject *dl = PyObject_GetAttrString((PyObject *)obj, "_dl");
    if (dl == NULL) return -1;
    long long data, ndim, shape, code, bits;
    int ok = PyArg_ParseTuple(dl, "LLLLL", &data, &ndim, &shape, &code, &bits);
    Py_DECREF(dl);
    if (!ok) return -1;
    Tensor t = {(void *)(intptr_t)data, {1, 0}, (int32_t)ndim, {(uint8_t)code, (uint8_t)bits, 1},
                (int64_t *)(intptr_t)shape, NULL, 0};
    *out = t;
    ++n_fills;
    return 0;
}

static int managed(void *obj, Versioned **out) {
    PyObject *cap = PyObject_CallMethod((PyObject *)obj, "__dlpack__", NULL);
    if (cap == NULL) return -1;
    Versioned *v = PyCapsule_GetPointer(cap, "dltensor_versioned");
    if (v != NULL) PyCapsule_SetName(cap, "used_dltensor_versioned");
    Py_DECREF(cap);
    if (v == NULL) return -1;
    *out = v;
    ++n_managed;
    return 0;
}

static Exchange exchange = {{{1, 0}, NULL}, NULL, managed, NULL, fill, NULL};

PyObject *producer_exchange_api(void) {
    return PyCapsule_New(&exchange, "dlpack_exchange_api", NULL);
}
