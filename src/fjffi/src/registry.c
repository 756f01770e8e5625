#include "registry.h"

#include "stats.h"

#include <stdlib.h>
#include <string.h>

/* Load factor stays at or below 1/2, so a probe sequence is short. */
#define INITIAL_CAPACITY 16

/*
 * Every live registry, linked through next_live, for the fork handlers.
 * Lock order: live_lock, then the registries in list order, the same order
 * at every fork.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static registry *live_head;
static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

/* A non-thread-safe target's lock reports a thread that takes it twice
 * (a kernel calling its own target) instead of hanging forever. */
static int init_serial(pthread_mutex_t *m) {
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0) return -1;
    int rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0) rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

static void fork_prepare(void) {
    pthread_mutex_lock(&live_lock);
    for (registry *r = live_head; r != NULL; r = r->next_live) pthread_rwlock_wrlock(&r->lock);
}

static void fork_parent(void) {
    for (registry *r = live_head; r != NULL; r = r->next_live) pthread_rwlock_unlock(&r->lock);
    pthread_mutex_unlock(&live_lock);
}

/* The child's only thread has a new thread id, so it cannot unlock what its
 * parent's thread locked: it initialises the locks afresh (no other thread
 * exists there to hold them), the per-target call locks too. */
static void fork_child(void) {
    for (registry *r = live_head; r != NULL; r = r->next_live) {
        pthread_rwlock_init(&r->lock, NULL);
        for (size_t i = 0; i < r->capacity; ++i)
            if (r->slots[i] != NULL) init_serial(&r->slots[i]->serial);
    }
    pthread_mutex_init(&live_lock, NULL);
}

static void install_fork_handlers(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

uint64_t registry_hash(const char *name, size_t len) {
    /* FNV-1a: simple, and names are short. */
    uint64_t h = 14695981039346656037ULL; /* the published 64-bit offset basis */
    for (size_t i = 0; i < len; ++i) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int registry_init(registry *r) {
    r->slots = calloc(INITIAL_CAPACITY, sizeof *r->slots);
    if (r->slots == NULL) return -1;
    r->capacity = INITIAL_CAPACITY;
    r->count = 0;
    r->retired = NULL;
    atomic_init(&r->generation, 1);
    if (pthread_rwlock_init(&r->lock, NULL) != 0) {
        free(r->slots);
        r->slots = NULL;
        return -1;
    }
    pthread_once(&fork_handlers_once, install_fork_handlers);
    pthread_mutex_lock(&live_lock);
    r->next_live = live_head;
    live_head = r;
    pthread_mutex_unlock(&live_lock);
    return 0;
}

static void free_target(registry_target *t) {
    pthread_mutex_destroy(&t->serial);
    free(t->name);
    free(t);
}

void registry_destroy(registry *r) {
    if (r->slots == NULL) return;
    pthread_mutex_lock(&live_lock);
    for (registry **p = &live_head; *p != NULL; p = &(*p)->next_live) {
        if (*p == r) {
            *p = r->next_live;
            break;
        }
    }
    pthread_mutex_unlock(&live_lock);
    for (size_t i = 0; i < r->capacity; ++i)
        if (r->slots[i] != NULL) free_target(r->slots[i]);
    while (r->retired != NULL) {
        registry_target *t = r->retired;
        r->retired = t->next_retired;
        free_target(t);
    }
    free(r->slots);
    r->slots = NULL;
    pthread_rwlock_destroy(&r->lock);
}

static size_t probe(registry_target *const *slots, size_t capacity, const char *name, size_t len,
                    uint64_t hash) {
    size_t mask = capacity - 1;
    size_t i = (size_t)hash & mask;
    for (;;) {
        const registry_target *t = slots[i];
        if (t == NULL ||
            (t->hash == hash && t->name_len == len && memcmp(t->name, name, len) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

const registry_target *registry_get(registry *r, const char *name, size_t len, uint64_t hash) {
    pthread_rwlock_rdlock(&r->lock);
    const registry_target *t = r->slots[probe(r->slots, r->capacity, name, len, hash)];
    pthread_rwlock_unlock(&r->lock);
    return t;
}

static int grow(registry *r) {
    size_t capacity = r->capacity * 2;
    registry_target **slots = calloc(capacity, sizeof *slots);
    if (slots == NULL) return -1;
    for (size_t i = 0; i < r->capacity; ++i) {
        registry_target *t = r->slots[i];
        if (t != NULL) slots[probe(slots, capacity, t->name, t->name_len, t->hash)] = t;
    }
    free(r->slots);
    r->slots = slots;
    r->capacity = capacity;
    return 0;
}

/* A heap copy of target, owning a copy of its name; NULL when out of memory. */
static registry_target *copy_target(const registry_target *target) {
    registry_target *t = malloc(sizeof *t);
    char *name = malloc(target->name_len + 1);
    if (t == NULL || name == NULL) {
        free(t);
        free(name);
        return NULL;
    }
    *t = *target;
    memcpy(name, target->name, target->name_len);
    name[target->name_len] = '\0';
    t->name = name;
    t->stats_id = fjffi_stats_new_id();
    if (init_serial(&t->serial) != 0) {
        free(t);
        free(name);
        return NULL;
    }
    return t;
}

static int same_name(const registry_target *a, const registry_target *b) {
    return a->hash == b->hash && a->name_len == b->name_len &&
           memcmp(a->name, b->name, a->name_len) == 0;
}

static void retire(registry *r, registry_target *t) {
    t->next_retired = r->retired;
    r->retired = t;
}

/* After a change of the table, under the write lock: caches filled before it are stale. */
static void bump_generation(registry *r) {
    atomic_fetch_add_explicit(&r->generation, 1, memory_order_release);
}

int registry_add_all(registry *r, const registry_target *targets, size_t n, int replace) {
    /* Everything that can fail is done before the table changes. */
    registry_target **copies = calloc(n > 0 ? n : 1, sizeof *copies);
    if (copies == NULL) return -1;
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; ++k) {
        copies[k] = copy_target(&targets[k]);
        if (copies[k] == NULL) rc = -1;
        for (size_t m = 0; m < k && rc == 0; ++m)
            if (same_name(&targets[m], &targets[k])) rc = (int)k + 1;
    }

    if (rc == 0) {
        pthread_rwlock_wrlock(&r->lock);
        size_t added = 0; /* names not in the table yet */
        for (size_t k = 0; k < n && rc == 0; ++k) {
            if (r->slots[probe(r->slots, r->capacity, targets[k].name, targets[k].name_len,
                               targets[k].hash)] == NULL)
                added += 1;
            else if (!replace)
                rc = (int)k + 1;
        }
        while (rc == 0 && 2 * (r->count + added) > r->capacity)
            if (grow(r) != 0) rc = -1;
        for (size_t k = 0; k < n && rc == 0; ++k) {
            registry_target *t = copies[k];
            size_t i = probe(r->slots, r->capacity, t->name, t->name_len, t->hash);
            if (r->slots[i] != NULL) retire(r, r->slots[i]);
            r->slots[i] = t;
            copies[k] = NULL;
        }
        if (rc == 0) {
            r->count += added;
            bump_generation(r);
        }
        pthread_rwlock_unlock(&r->lock);
    }

    for (size_t k = 0; k < n; ++k)
        if (copies[k] != NULL) free_target(copies[k]);
    free(copies);
    return rc;
}

int registry_remove(registry *r, const char *name, size_t len, uint64_t hash) {
    pthread_rwlock_wrlock(&r->lock);
    size_t mask = r->capacity - 1;
    size_t i = probe(r->slots, r->capacity, name, len, hash);
    registry_target *t = r->slots[i];
    if (t != NULL) {
        retire(r, t);
        r->slots[i] = NULL;
        r->count -= 1;
        /* Backward-shift deletion: move up every later entry of the run
         * that probing from its home slot would no longer reach. */
        for (size_t j = (i + 1) & mask; r->slots[j] != NULL; j = (j + 1) & mask) {
            size_t home = (size_t)r->slots[j]->hash & mask;
            /* Does home lie cyclically in (i, j]?  Then the entry stays. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
            r->slots[i] = r->slots[j];
            r->slots[j] = NULL;
            i = j;
        }
        bump_generation(r);
    }
    pthread_rwlock_unlock(&r->lock);
    return t == NULL;
}

const registry_target *registry_cache_fill(registry *r, registry_cache *c, const char *name,
                                           size_t len, uint64_t hash) {
    uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    uint64_t now;
    /* The generation read under the read lock belongs with what it finds. */
    pthread_rwlock_rdlock(&r->lock);
    now = atomic_load_explicit(&r->generation, memory_order_relaxed);
    const registry_target *t = r->slots[probe(r->slots, r->capacity, name, len, hash)];
    pthread_rwlock_unlock(&r->lock);
    /* Fill only when no other thread is filling; a lost race leaves the
     * cache to the winner. */
    if (t != NULL && (seq & 1) == 0 &&
        atomic_compare_exchange_strong_explicit(&c->seq, &seq, seq + 1, memory_order_acquire,
                                                memory_order_relaxed)) {
        /* A reader that sees the new fields must then see the odd seq. */
        atomic_thread_fence(memory_order_release);
        atomic_store_explicit(&c->target, t, memory_order_relaxed);
        atomic_store_explicit(&c->generation, now, memory_order_relaxed);
        atomic_store_explicit(&c->seq, seq + 2, memory_order_release);
    }
    return t;
}
