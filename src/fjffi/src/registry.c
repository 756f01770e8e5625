#include "registry.h"

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
            if (r->slots[i] != NULL) pthread_mutex_init(&r->slots[i]->serial, NULL);
    }
    pthread_mutex_init(&live_lock, NULL);
}

static void install_fork_handlers(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

uint64_t registry_hash(const char *name, size_t len) {
    /* FNV-1a: simple, and names are short. */
    uint64_t h = 1469598103934665603ULL;
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
    for (size_t i = 0; i < r->capacity; ++i) {
        registry_target *t = r->slots[i];
        if (t == NULL) continue;
        pthread_mutex_destroy(&t->serial);
        free(t->name);
        free(t);
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

int registry_add(registry *r, const registry_target *target) {
    /* Everything that can fail is done before the table changes. */
    registry_target *t = malloc(sizeof *t);
    char *name = malloc(target->name_len + 1);
    if (t == NULL || name == NULL) {
        free(t);
        free(name);
        return -1;
    }
    *t = *target;
    memcpy(name, target->name, target->name_len);
    name[target->name_len] = '\0';
    t->name = name;
    if (pthread_mutex_init(&t->serial, NULL) != 0) {
        free(t);
        free(name);
        return -1;
    }

    int rc = 0;
    pthread_rwlock_wrlock(&r->lock);
    size_t i = probe(r->slots, r->capacity, t->name, t->name_len, t->hash);
    if (r->slots[i] != NULL) {
        rc = 1;
    } else if (2 * (r->count + 1) > r->capacity) {
        if (grow(r) != 0) {
            rc = -1;
        } else {
            i = probe(r->slots, r->capacity, t->name, t->name_len, t->hash);
        }
    }
    if (rc == 0) {
        r->slots[i] = t;
        r->count += 1;
    }
    pthread_rwlock_unlock(&r->lock);

    if (rc != 0) {
        pthread_mutex_destroy(&t->serial);
        free(name);
        free(t);
    }
    return rc;
}

size_t registry_records(registry *r, void **out, size_t max) {
    size_t n = 0;
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->capacity && n < max; ++i)
        if (r->slots[i] != NULL) out[n++] = r->slots[i]->record;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

size_t registry_count(registry *r) {
    pthread_rwlock_rdlock(&r->lock);
    size_t n = r->count;
    pthread_rwlock_unlock(&r->lock);
    return n;
}
