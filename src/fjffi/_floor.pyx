# cython: language_level=3
"""The floor of fjffi's benchmarks: the built-in kernels called straight
from Cython, with none of fjffi's checks.

Linked against the same static library as fjffi._core, so a call here runs
the very machine code that ``fjffi.Call(...).invoke`` runs; the difference
between the two is exactly what the registry, the validation and the scrub
cost.  Benchmark use only: nothing here checks its arguments, and
double_f64 on an array smaller than one float64 is undefined behaviour.

The ``*_ns`` functions time a loop in C, for costs too small to see
through a Python call.
"""

from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t, uintptr_t
from libc.stdlib cimport malloc, free

cimport numpy as cnp

from fjffi._abi cimport (
    FJFFI_ABI_RAW, FJFFI_ABI_TYPED, FJFFI_FLOAT64, fjffi_buffer, fjffi_context, fjffi_raw_fn,
)
from fjffi._core cimport Registry

cnp.import_array()

cdef extern from "kernels_impl.h" nogil:
    int32_t fjffi_kernel_noop(const uint8_t *const *inputs, size_t n_inputs,
                              uint8_t *const *outputs, size_t n_outputs)
    int32_t fjffi_kernel_double_f64(const uint8_t *const *inputs, size_t n_inputs,
                                    uint8_t *const *outputs, size_t n_outputs)
    int32_t fjffi_kernel_negate_trusted(const fjffi_buffer *inputs, size_t n_inputs,
                                        const fjffi_buffer *outputs, size_t n_outputs,
                                        fjffi_context *ctx)

from fjffi._registry cimport registry, registry_get, registry_hash

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_rwlock_t:
        pass
    int pthread_rwlock_init(pthread_rwlock_t *lock, const void *attr)
    int pthread_rwlock_rdlock(pthread_rwlock_t *lock)
    int pthread_rwlock_unlock(pthread_rwlock_t *lock)
    int pthread_rwlock_destroy(pthread_rwlock_t *lock)

cdef extern from "<string.h>" nogil:
    void *memset(void *s, int c, size_t n)

cdef extern from *:
    """
    /* Tells the compiler that memory may be read here, so no store before it is dead. */
    static inline void fjffi_floor_clobber(void) { __asm__ __volatile__("" ::: "memory"); }
    """
    void fjffi_floor_clobber() noexcept nogil

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    enum:
        CLOCK_MONOTONIC
    int clock_gettime(int clk_id, timespec *tp)


# --- the three calls of the peer comparison ---------------------------------

def noop():
    """fjffi_kernel_noop(NULL, 0, NULL, 0)."""
    return fjffi_kernel_noop(NULL, 0, NULL, 0)


def double_f64(cnp.ndarray x, cnp.ndarray y):
    """fjffi_kernel_double_f64 on the data of x (input) and y (output)."""
    cdef const uint8_t *ins[1]
    cdef uint8_t *outs[1]
    ins[0] = <const uint8_t *>cnp.PyArray_DATA(x)
    outs[0] = <uint8_t *>cnp.PyArray_DATA(y)
    return fjffi_kernel_double_f64(ins, 1, outs, 1)


cdef inline void describe_f64(cnp.ndarray a, fjffi_buffer *d) noexcept:
    d.data = cnp.PyArray_DATA(a)
    d.nbytes = cnp.PyArray_NBYTES(a)
    d.dtype = FJFFI_FLOAT64
    d.ndim = cnp.PyArray_NDIM(a)
    d.shape = <const int64_t *>cnp.PyArray_DIMS(a)


def negate(cnp.ndarray x, cnp.ndarray y):
    """fjffi_kernel_negate_trusted on hand-built float64 descriptors of x and y."""
    cdef fjffi_buffer d[2]
    cdef fjffi_context ctx
    describe_f64(x, &d[0])
    describe_f64(y, &d[1])
    return fjffi_kernel_negate_trusted(&d[0], 1, &d[1], 1, &ctx)


# --- the same kernels for other routes ----------------------------------------

KERNELS = {
    "noop": (<uintptr_t>fjffi_kernel_noop, FJFFI_ABI_RAW),
    "double_f64": (<uintptr_t>fjffi_kernel_double_f64, FJFFI_ABI_RAW),
    "negate": (<uintptr_t>fjffi_kernel_negate_trusted, FJFFI_ABI_TYPED),
}


def addresses():
    """{name: (address, api_version)}, for cffi and ctypes to call the same code.

    The code is linked into this module, which stays loaded for the life of
    the process, so the addresses never dangle."""
    return dict(KERNELS)


def capsule(name):
    """A PyCapsule of a kernel, for Registry.register."""
    return PyCapsule_New(<void *><uintptr_t>KERNELS[name][0], b"fjffi.kernel", NULL)


# --- C-level timing loops -----------------------------------------------------

cdef inline double now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1e9 + ts.tv_nsec


def rwlock_pair_ns(Py_ssize_t n):
    """ns per uncontended pthread rwlock rdlock + unlock pair, over n pairs."""
    cdef pthread_rwlock_t lock
    cdef Py_ssize_t _rep
    cdef double t0, t1
    if pthread_rwlock_init(&lock, NULL) != 0:
        raise MemoryError("pthread_rwlock_init failed")
    with nogil:
        t0 = now_ns()
        for _rep in range(n):
            pthread_rwlock_rdlock(&lock)
            pthread_rwlock_unlock(&lock)
        t1 = now_ns()
    pthread_rwlock_destroy(&lock)
    return (t1 - t0) / n


def registry_lookup_ns(Registry reg not None, names, Py_ssize_t n):
    """ns per C-level registry_get, over n lookups cycling through names.

    The hashes are computed once beforehand, as Call does in its
    constructor, so this is the lookup alone: read lock, probe, unlock."""
    encoded = [name.encode() for name in names]
    cdef Py_ssize_t m = len(encoded), i, _rep, k = 0
    if m == 0 or n <= 0:
        raise ValueError("need at least one name and one lookup")
    cdef const char **ptrs = <const char **>malloc(m * sizeof(char *))
    cdef size_t *lens = <size_t *>malloc(m * sizeof(size_t))
    cdef uint64_t *hashes = <uint64_t *>malloc(m * sizeof(uint64_t))
    cdef registry *r = <registry *>reg.reg
    cdef Py_ssize_t missing = 0
    cdef double t0, t1
    try:
        if ptrs == NULL or lens == NULL or hashes == NULL:
            raise MemoryError()
        for i in range(m):
            ptrs[i] = <bytes>encoded[i]
            lens[i] = len(<bytes>encoded[i])
            hashes[i] = registry_hash(ptrs[i], lens[i])
        with nogil:
            t0 = now_ns()
            for _rep in range(n):
                # A miss is counted, not ignored, so the loop cannot be optimised away.
                missing += registry_get(r, ptrs[k], lens[k], hashes[k]) == NULL
                k += 1
                if k == m:
                    k = 0
            t1 = now_ns()
    finally:
        free(ptrs)
        free(lens)
        free(hashes)
    if missing:
        raise LookupError(f"{missing} of {n} lookups found nothing")
    return (t1 - t0) / n


def kernel_noop_ns(Py_ssize_t n):
    """ns per C call of the noop kernel through a function pointer, as fjffi calls it."""
    cdef volatile fjffi_raw_fn fn = fjffi_kernel_noop
    cdef Py_ssize_t _rep
    cdef int32_t rc = 0
    cdef double t0, t1
    with nogil:
        t0 = now_ns()
        for _rep in range(n):
            rc |= fn(NULL, 0, NULL, 0)
        t1 = now_ns()
    return (t1 - t0) / n


def kernel_negate_ns(cnp.ndarray x, cnp.ndarray y, Py_ssize_t n):
    """ns per C call of the negate kernel on float64 arrays x -> y: the kernel's own time."""
    cdef fjffi_buffer d[2]
    cdef fjffi_context ctx
    cdef Py_ssize_t _rep
    cdef int32_t rc = 0
    cdef double t0, t1
    describe_f64(x, &d[0])
    describe_f64(y, &d[1])
    with nogil:
        t0 = now_ns()
        for _rep in range(n):
            rc |= fjffi_kernel_negate_trusted(&d[0], 1, &d[1], 1, &ctx)
        t1 = now_ns()
    if rc != 0:
        raise RuntimeError(f"negate failed: {ctx.message.decode('utf-8', 'replace')}")
    return (t1 - t0) / n


def scrub_ns(cnp.ndarray y, Py_ssize_t n):
    """ns per memset of y's bytes to 0: what zeroing an output costs, alone."""
    cdef void *data = cnp.PyArray_DATA(y)
    cdef size_t nbytes = cnp.PyArray_NBYTES(y)
    cdef Py_ssize_t _rep
    cdef double t0, t1
    with nogil:
        t0 = now_ns()
        for _rep in range(n):
            memset(data, 0, nbytes)
            fjffi_floor_clobber()
        t1 = now_ns()
    return (t1 - t0) / n


def spin(Py_ssize_t n):
    """n xorshift steps in C without the GIL; returns the checksum.  Compute-bound,
    touching no memory: two threads of it show what the machine gives two threads."""
    cdef uint64_t x = 0x9E3779B97F4A7C15u, acc = 0
    cdef Py_ssize_t _rep
    with nogil:
        for _rep in range(n):
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            acc += x
    return acc


# --- two threads resolving at once ----------------------------------------------

cdef extern from *:
    """
    #include <pthread.h>
    #include <stdatomic.h>
    #include <string.h>
    #include <time.h>
    #include "registry.h"

    /* One thread's share of a lookup run: n lookups of one name, timed in
     * the thread's own CPU time, so a thread descheduled by other load on
     * the machine is not charged for the wait. */
    typedef struct fjffi_floor_lookups {
        registry *reg;
        registry_cache *cache; /* NULL: registry_get (read lock) */
        const char *name;
        size_t len;
        uint64_t hash;
        long n;
        _Atomic int *go; /* 0: wait, 1: run, 2: give up */
        double ns;
        double cpu_ns, wall_start, wall_end; /* the thread's whole run */
        long missing;
    } fjffi_floor_lookups;

    static double fjffi_floor_cpu_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e9 + ts.tv_nsec;
    }

    static double fjffi_floor_wall_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e9 + ts.tv_nsec;
    }

    static void *fjffi_floor_lookup_thread(void *arg) {
        fjffi_floor_lookups *w = (fjffi_floor_lookups *)arg;
        long missing = 0;
        int go;
        /* Spun, not slept on: both threads leave the wait at the same moment. */
        while ((go = atomic_load_explicit(w->go, memory_order_acquire)) == 0)
            ;
        if (go != 1)
            return NULL;
        w->wall_start = fjffi_floor_wall_ns();
        double t0 = fjffi_floor_cpu_ns();
        if (w->cache) {
            for (long i = 0; i < w->n; ++i)
                missing += registry_cached_get(w->reg, w->cache, w->name, w->len, w->hash) == NULL;
        } else {
            for (long i = 0; i < w->n; ++i)
                missing += registry_get(w->reg, w->name, w->len, w->hash) == NULL;
        }
        w->cpu_ns = fjffi_floor_cpu_ns() - t0;
        w->wall_end = fjffi_floor_wall_ns();
        w->ns = w->cpu_ns / (double)w->n;
        w->missing = missing;
        return NULL;
    }

    /* nthreads (1 or 2) threads looking name up n times each, started
     * together; ns[k] is thread k's CPU ns per lookup, and *overlap the
     * threads' CPU time over the wall time from the first start to the last
     * end (2.0: two threads ran side by side throughout; near 1.0 on two
     * threads: they took turns on one core, so nothing contended).  mode 0:
     * registry_get; 1: registry_cached_get on one cache shared by the threads
     * (one Call invoked from both); 2: a cache per thread (a Call each).
     * Returns the number of failed lookups, or -1 if a thread did not start. */
    static long fjffi_floor_lookup_run(registry *reg, int mode, const char *name, size_t len,
                                       long n, int nthreads, double *ns, double *overlap) {
        fjffi_floor_lookups w[2];
        registry_cache caches[2];
        pthread_t threads[2];
        _Atomic int go = 0;
        long missing = 0;
        int started = 0;
        memset(caches, 0, sizeof caches);
        if (nthreads < 1 || nthreads > 2)
            return -1;
        for (int k = 0; k < nthreads; ++k) {
            w[k].reg = reg;
            w[k].cache = mode == 0 ? NULL : &caches[mode == 2 ? k : 0];
            w[k].name = name;
            w[k].len = len;
            w[k].hash = registry_hash(name, len);
            w[k].n = n;
            w[k].go = &go;
        }
        /* Every cache filled before the timing: the steady state of a Call. */
        for (int k = 0; k < nthreads; ++k)
            if (w[k].cache)
                registry_cached_get(reg, w[k].cache, name, len, w[k].hash);
        for (int k = 0; k < nthreads; ++k) {
            if (pthread_create(&threads[k], NULL, fjffi_floor_lookup_thread, &w[k]) != 0)
                break;
            ++started;
        }
        if (started < nthreads) {
            atomic_store_explicit(&go, 2, memory_order_release);
            for (int k = 0; k < started; ++k)
                pthread_join(threads[k], NULL);
            return -1;
        }
        atomic_store_explicit(&go, 1, memory_order_release);
        double cpu = 0, first = 0, last = 0;
        for (int k = 0; k < nthreads; ++k) {
            pthread_join(threads[k], NULL);
            ns[k] = w[k].ns;
            missing += w[k].missing;
            cpu += w[k].cpu_ns;
            if (k == 0 || w[k].wall_start < first)
                first = w[k].wall_start;
            if (k == 0 || w[k].wall_end > last)
                last = w[k].wall_end;
        }
        *overlap = last > first ? cpu / (last - first) : 0;
        return missing;
    }
    """
    long fjffi_floor_lookup_run(registry *reg, int mode, const char *name, size_t length,
                                long n, int nthreads, double *ns, double *overlap) nogil


LOOKUP_MODES = {"registry_get": 0, "cached_shared": 1, "cached_per_thread": 2}


def lookups_ns(Registry reg not None, str name not None, str mode, int nthreads, long n):
    """Per-thread CPU ns per lookup of name, nthreads (1 or 2) threads at once.

    mode: "registry_get" (the read lock), "cached_shared" (registry_cached_get
    on one cache both threads read, as one Call invoked from two threads) or
    "cached_per_thread" (a cache each).  Returns ([ns per lookup of each
    thread], overlap): overlap is the threads' CPU time over the wall time
    they spanned, 2.0 when two threads truly ran at once throughout."""
    cdef bytes encoded = name.encode()
    cdef const char *cname = encoded
    cdef size_t clen = len(encoded)
    cdef int m = LOOKUP_MODES[mode]
    cdef double ns[2]
    cdef double overlap = 0
    cdef long missing
    if n <= 0 or nthreads not in (1, 2):
        raise ValueError("need n > 0 and 1 or 2 threads")
    with nogil:
        missing = fjffi_floor_lookup_run(<registry *>reg.reg, m, cname, clen, n, nthreads, ns,
                                         &overlap)
    if missing < 0:
        raise OSError("could not start the lookup threads")
    if missing:
        raise LookupError(f"{missing} lookups of {name!r} found nothing")
    return [ns[k] for k in range(nthreads)], overlap
