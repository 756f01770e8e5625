/*
 * The target registry: an open-addressing hash table from name to target,
 * behind one pthread rwlock.
 *
 * Locking rules:
 *  - registry_get takes the read lock and needs no GIL, so any number of
 *    threads look up at once, inside `nogil` too.
 *  - registry_add_all takes the write lock; a name is never removed, so a
 *    target pointer returned by registry_get stays valid for the
 *    registry's lifetime (the table holds pointers, a resize moves only
 *    those).
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
    const void *contract;   /* a built-in raw kernel's fjffi_raw_contract, or NULL */
    pthread_mutex_t serial; /* taken around each call when !thread_safe */
    void *record;       /* the Python Target record; the Registry object holds it */
} registry_target;

typedef struct registry {
    pthread_rwlock_t lock;
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
 * one of the n); -1 out of memory.
 */
int registry_add_all(registry *r, const registry_target *targets, size_t n);
size_t registry_count(registry *r);

#endif
