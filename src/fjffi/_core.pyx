# cython: language_level=3
"""The one room of fjffi that touches raw pointers.

The rules of this room:

- Ownership.  fjffi owns every buffer a kernel sees; a kernel only borrows
  pointers for the duration of one call and never frees, resizes or keeps
  one (docs/design.md, invariants 4 and 5).  Whatever here holds a data
  pointer holds, for as long as it uses it, a strong reference to the object
  that owns the memory: a Buffer its owner, a call its input and output
  tuples, a callback's view its owner.
- No raise inside ``nogil``.  A block without the GIL keeps only integer
  status; the exception is raised once the GIL is back.
- Locks.  Three kinds exist: each Registry's pthread rwlock (src/registry.c:
  read for a lookup, write for a registration), each non-thread-safe
  target's mutex (call.pxi, lock_target), and each io callback's lock
  (_callbacks.py).  No thread waits for the GIL while holding a pthread lock,
  and none waits for a target's mutex while holding the GIL: the holder may
  need the GIL to finish.  Around fork() the rwlocks are held and every
  lock is made anew in the child.
- Every extension type is complete after construction or refuses to be
  used, and immutable from then on: ``__new__`` without ``__init__`` and a
  second ``__init__`` are refused.

The rooms, in the order they build on each other: dtypes (fjffi.h's table),
buffer, marshal, registry, the frame of a call, the call, the kernel's run,
the C API's call without Python, DLPack, guard mode, callbacks; module init
last.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport (
    PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBUF_FORMAT,
)
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.pycapsule cimport (
    PyCapsule_CheckExact, PyCapsule_GetName, PyCapsule_GetPointer, PyCapsule_New,
)
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, malloc, free
from libc.stdio cimport snprintf
from libc.string cimport memset, memcpy, memchr

cimport cython
cimport numpy as cnp

import os
import warnings

import numpy as np

from fjffi.errors import (
    BufferMismatchError, BufferOverrunError, CallFailedError, DuplicateTargetError, FfiError,
    InvalidBoolByteError, LayoutError, NullPointerError, PurityViolationError,
    TargetNotFoundError, UnrepresentableValueError, UnsupportedDtypeError,
)
from fjffi._callbacks import Callback
from fjffi._targets import Target, foreign_address

from fjffi._abi cimport *
from fjffi._kernels cimport fjffi_builtin_kernels, fjffi_num_builtin_kernels, fjffi_raw_contract
from fjffi._registry cimport *

cdef extern from "numpy/arrayobject.h":
    # Steals a reference to descr.
    object PyArray_NewFromDescr(type subtype, cnp.dtype descr, int nd, cnp.npy_intp *dims,
                                cnp.npy_intp *strides, void *data, int flags, object obj)
    # Steals a reference to descr.
    object PyArray_Zeros(int nd, cnp.npy_intp *dims, cnp.dtype descr, int fortran)

cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_trylock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

cdef extern from "check.h" nogil:
    ptrdiff_t fjffi_first_bad_bool(const uint8_t *p, size_t n)
    int fjffi_checked_nbytes(const int64_t *shape, int ndim, int64_t itemsize, int64_t *out)
    bint fjffi_overlaps(const fjffi_buffer *a, const fjffi_buffer *b)
    int fjffi_check_buffer(const fjffi_buffer *b, char *msg, size_t cap)

cdef extern from "crash.h" nogil:
    const char *fjffi_running_target
    int fjffi_install_crash_report()

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #define FJFFI_FREE_THREADED 1
    #else
    #define FJFFI_FREE_THREADED 0
    #endif
    """
    const bint FREE_THREADED "FJFFI_FREE_THREADED"

cdef extern from *:
    """
    #include <stdatomic.h>
    /* C API calls between their lookup and their return: while any is,
     * Registry.retire keeps what it removes (the call holds no reference). */
    static _Atomic long fjffi_capi_in_flight;
    static long fjffi_capi_enter(void) { return atomic_fetch_add(&fjffi_capi_in_flight, 1); }
    static long fjffi_capi_leave(void) { return atomic_fetch_sub(&fjffi_capi_in_flight, 1); }
    static long fjffi_capi_calls(void) { return atomic_load(&fjffi_capi_in_flight); }
    """
    long capi_enter "fjffi_capi_enter"() noexcept nogil
    long capi_leave "fjffi_capi_leave"() noexcept nogil
    long capi_calls "fjffi_capi_calls"() noexcept nogil

cdef extern from *:
    """
    /* npy_intp and int64_t must be one type: shapes are handed to kernels as is. */
    _Static_assert(sizeof(npy_intp) == sizeof(int64_t), "fjffi needs a 64-bit npy_intp");
    _Static_assert(sizeof(Py_ssize_t) == sizeof(int64_t), "fjffi needs a 64-bit Py_ssize_t");
    """

cdef extern from *:
    """
    /* Without a GIL two threads may run one object's __init__ at once: the
     * first to claim it initialises it, the other is refused.  A field that
     * marks an object complete is stored last, with release order, so a
     * thread that sees it set sees every field before it. */
    static inline int fjffi_claim(int *flag) {
        return __atomic_exchange_n(flag, 1, __ATOMIC_ACQ_REL) == 0;
    }
    static inline void fjffi_publish_ptr(const char **slot, const char *value) {
        __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    }
    static inline void fjffi_publish_int(int *slot, int value) {
        __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    }
    /* The reads that pair with them: acquire order, a plain load on x86. */
    static inline const char *fjffi_seen_ptr(const char **slot) {
        return __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    }
    static inline int fjffi_seen_int(int *slot) {
        return __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    }
    """
    bint fjffi_claim(int *flag) noexcept nogil
    void fjffi_publish_ptr(const char **slot, const char *value) noexcept nogil
    void fjffi_publish_int(int *slot, int value) noexcept nogil
    const char *fjffi_seen_ptr(const char **slot) noexcept nogil
    int fjffi_seen_int(int *slot) noexcept nogil

cnp.import_array()

include "core/dtypes.pxi"
include "core/buffer.pxi"
include "core/marshal.pxi"
include "core/registry.pxi"
include "core/frame.pxi"
include "core/call.pxi"
include "core/run.pxi"
include "core/capi.pxi"
include "core/dlpack.pxi"
include "core/guard.pxi"
include "core/callbacks.pxi"


# --- module init ---------------------------------------------------------------

init_dtypes()
NO_SHAPE[0] = 0
GUARD_DEFAULT = guard_from_environment(os.environ)

cdef fjffi_c_api C_API
C_API.version = FJFFI_C_API_VERSION
C_API.size = sizeof(fjffi_c_api)
C_API.register_function = c_api_register
C_API.invoke = c_api_invoke
_C_API = PyCapsule_New(&C_API, FJFFI_C_API_CAPSULE, NULL)

# A kernel that crashes takes the process down (docs/design.md, threat T7):
# say which.
if fjffi_install_crash_report() != 0:
    raise OSError("fjffi: cannot install the crash report signal handlers")

default_registry = Registry()
default_registry.register_builtins()
DEFAULT_REGISTRY = reg_of(default_registry)
REGISTRY_TYPE = <TypeObject *><void *>Registry
