/*
 * The target registry: an open-addressing hash table from name to target,
 * behind one pthread rwlock.
 *
 * Locking rules:
 *  - registry_get takes the read lock and needs no GIL, so any number of
 *    threads look up at once, inside `nogil` too.
 *  - registry_cached_get takes no lock at all while nothing was registered
 *    or removed since the cache was filled: it reads the registry's
 *    generation and the cache with plain atomic loads, no read-modify-write
 *    on shared memory.
 *  - registry_add_all and registry_remove take the write lock and bump the
 *    generation.  A removed or replaced target is retired, not freed: a
 *    target pointer once returned stays valid for the registry's lifetime,
 *    so a call that resolved it finishes on it.
 *  - No caller waits for the GIL while holding either lock: that is what
 *    keeps the lock and the GIL from deadlocking each other.
 *  - Around fork(), every live registry's write lock is held, so a child
 *    never copies a table halfway through a change.  pthread_atfork
 *    handlers take and release them inside fork() itself: no Python code
 *    runs in between, so the forking thread cannot hand the GIL to a
 *    thread that would then wait for one of these locks holding the GIL.
 */
#ifndef FJFFI_REGISTRY_H
#define FJFFI_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "fjffi.h"

typedef struct registry_target {
    char *name; /* owned copy, NUL-terminated */
    size_t name_len;
    uint64_t hash;
    void *fn;           /* kernel; NULL only for Python callbacks */
    int32_t api_version;
    int32_t gil;        /* FJFFI_GIL_* */
    int32_t thread_safe;
    int32_t is_callback;
    int32_t writes_all_outputs; /* declared: every output byte written on success */
    uint32_t stats_id;  /* this registration's counters (stats.h) */
    const void *contract;   /* a built-in raw kernel's fjffi_raw_contract, or NULL */
    pthread_mutex_t serial; /* taken around each call when !thread_safe */
    void *record;       /* the Python Target record; the Registry object holds it */
    struct registry_target *next_retired;
} registry_target;

typedef struct registry {
    pthread_rwlock_t lock;
    _Atomic uint64_t generation; /* bumped by every change, under the write lock */
    struct registry_target *retired; /* removed or replaced targets, freed with the registry */
    registry_target **slots; /* capacity entries, NULL where empty */
    size_t capacity;         /* a power of two */
    size_t count;
    struct registry *next_live; /* the list of live registries, for fork */
} registry;

uint64_t registry_hash(const char *name, size_t len);
int registry_init(registry *r);
/* Frees the table and the names; the records are the caller's to release. */
void registry_destroy(registry *r);
const registry_target *registry_get(registry *r, const char *name, size_t len, uint64_t hash);
/*
 * Adds all n targets or none (the registry copies their names): 0 when all
 * were added; k + 1 when targets[k]'s name is taken (or repeats an earlier
 * one of the n); -1 out of memory.  With replace, a taken name's target is
 * retired and the new one takes its place.
 */
int registry_add_all(registry *r, const registry_target *targets, size_t n, int replace);
/* Retires the target of name: 0, or 1 when no target has that name. */
int registry_remove(registry *r, const char *name, size_t len, uint64_t hash);

/*
 * A one-name cache of a lookup, for a caller that resolves the same name
 * again and again (fjffi.Call): valid while the registry's generation is
 * the one it was filled at.  A seqlock keeps a reader from pairing one
 * fill's target with another's generation; all zero is an empty cache.
 */
typedef struct registry_cache {
    _Atomic uint64_t seq; /* odd while a fill is writing */
    const registry_target *_Atomic target;
    _Atomic uint64_t generation;
} registry_cache;

/* The lookup behind registry_cached_get when the cache does not hold it. */
const registry_target *registry_cache_fill(registry *r, registry_cache *c, const char *name,
                                           size_t len, uint64_t hash);

/* Inline, for the hit on every call: a hit is a handful of loads. */
static inline const registry_target *registry_cached_get(registry *r, registry_cache *c,
                                                         const char *name, size_t len,
                                                         uint64_t hash) {
    uint64_t now = atomic_load_explicit(&r->generation, memory_order_acquire);
    uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if ((seq & 1) == 0) {
        const registry_target *t = atomic_load_explicit(&c->target, memory_order_relaxed);
        uint64_t filled = atomic_load_explicit(&c->generation, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (t != NULL && filled == now &&
            atomic_load_explicit(&c->seq, memory_order_relaxed) == seq)
            return t;
    }
    return registry_cache_fill(r, c, name, len, hash);
}

#endif
