# The registry of src/registry.h, declared once for the extensions built
# with fjffi (_core and the benchmarks' _floor); not installed.

from libc.stdint cimport int32_t, uint32_t, uint64_t

cdef extern from "registry.h" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct registry_target:
        char *name
        size_t name_len
        uint64_t hash
        void *fn
        int32_t api_version
        int32_t gil
        int32_t thread_safe
        int32_t is_callback
        int32_t writes_all_outputs
        uint32_t stats_id
        const void *contract
        pthread_mutex_t serial
        void *record
    ctypedef struct registry:
        pass
    uint64_t registry_hash(const char *name, size_t len)
    int registry_init(registry *r)
    void registry_destroy(registry *r)
    const registry_target *registry_get(registry *r, const char *name, size_t len, uint64_t hash)
    int registry_add_all(registry *r, const registry_target *targets, size_t n, int replace)
    int registry_remove(registry *r, const char *name, size_t len, uint64_t hash)
    ctypedef struct registry_cache:
        uint64_t seq
    const registry_target *registry_cached_get(registry *r, registry_cache *c, const char *name,
                                               size_t len, uint64_t hash)

cdef extern from "stats.h" nogil:
    ctypedef struct fjffi_counts:
        uint64_t calls, failures, bytes, kernel_ns
    int fjffi_stats_mode
    void set_stats_mode "atomic_store"(int *mode, int value)
    void fjffi_stats_count(uint32_t id, uint64_t bytes, int failed, uint64_t kernel_ns)
    void fjffi_stats_read(uint32_t id, fjffi_counts *out)
    uint64_t fjffi_stats_now()
