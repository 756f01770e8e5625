/*
 * libFuzzer target: the registry (src/fjffi/src/registry.c) against a
 * linear array holding what it must hold.
 *
 * The input is a mode byte, then operations on two registries: add_all of
 * a few targets (optionally replacing, optionally with its n-th allocation
 * failing), add_all of many (the table grows), remove, get, cached get,
 * hash, a full check of the table, fork (the child must find a working
 * registry), destroy-and-init.  Names are exact-size heap copies with no
 * NUL after them, so reading past a name's length is an ASan report.  The
 * mode makes many names share a hash or a probe chain, which the real hash
 * almost never does, so removal's backward shift meets long runs.  Any
 * disagreement with the model aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_input.h"

/*
 * registry.c is compiled here with its allocations routed through these,
 * so that an out-of-memory path runs on demand: the fail_at-th call from
 * now returns NULL.
 */
static int fail_at;
static void *fuzz_malloc(size_t n) {
    if (fail_at > 0 && --fail_at == 0) return NULL;
    return malloc(n);
}
static void *fuzz_calloc(size_t n, size_t size) {
    if (fail_at > 0 && --fail_at == 0) return NULL;
    return calloc(n, size);
}
#define malloc fuzz_malloc
#define calloc fuzz_calloc
#include "registry.c"
#undef malloc
#undef calloc

#define MAX_ENTRIES 200 /* grows the table to 512 slots; more only slows the fuzzing */
#define MAX_NAME 48
#define MAX_BATCH 64
#define N_CACHES 4

typedef struct model_entry {
    uint8_t name[MAX_NAME];
    size_t len;
    uint64_t key; /* the model's own hash of the name, to skip most comparisons */
    void *fn;
    void *record;
    int32_t api_version, gil, thread_safe, is_callback;
} model_entry;

typedef struct model {
    model_entry e[MAX_ENTRIES];
    size_t count;
    size_t capacity; /* the table size the registry must have: 16, doubled past half full */
} model;

static int hash_mode;

/* FNV-1a written from its definition, apart from the one under test. */
#ifndef FNV_OFFSET_BASIS
#define FNV_OFFSET_BASIS 14695981039346656037ULL
#endif
static uint64_t reference_fnv1a(const uint8_t *p, size_t n) {
    unsigned __int128 h = FNV_OFFSET_BASIS;
    for (size_t i = 0; i < n; ++i) {
        h = (uint64_t)h ^ p[i];
        h = (h * 0x100000001b3ULL) & UINT64_MAX;
    }
    return (uint64_t)h;
}

/* The hash the registry is given; it only has to be a function of the name. */
static uint64_t name_hash(const uint8_t *p, size_t n) {
    switch (hash_mode) {
    case 0:
        return registry_hash((const char *)p, n);
    case 1:
        return 42; /* every name collides */
    case 2:
        return registry_hash((const char *)p, n) & 3; /* long probe chains */
    default:
        return (uint64_t)n << 60; /* same low bits, distinct hashes per length */
    }
}

static model_entry *model_get(model *m, const uint8_t *name, size_t len) {
    uint64_t key = reference_fnv1a(name, len);
    for (size_t i = 0; i < m->count; ++i)
        if (m->e[i].key == key && m->e[i].len == len && memcmp(m->e[i].name, name, len) == 0)
            return &m->e[i];
    return NULL;
}

/* The names the caches are for: one cache serves one name. */
static const char *const pool[] = {"", "a", "b", "ab", "ba", "negate", "add", "add\0x",
                                   "sum", "copy"};
static const size_t pool_lens[] = {0, 1, 1, 2, 2, 6, 3, 5, 3, 4};

/* A name: from a small pool (so names repeat) or raw bytes, NUL included. */
static size_t read_name(fuzz_input *in, uint8_t *name) {
    uint8_t kind = fuzz_u8(in);
    if (kind & 1) {
        size_t k = (kind >> 1) % 10;
        memcpy(name, pool[k], pool_lens[k]);
        return pool_lens[k];
    }
    size_t len = (size_t)(kind >> 1) % (MAX_NAME + 1);
    return fuzz_bytes(in, name, len);
}

static void check_same(const registry_target *t, const model_entry *e) {
    FUZZ_CHECK((t == NULL) == (e == NULL));
    if (t == NULL) return;
    FUZZ_CHECK(t->name_len == e->len && memcmp(t->name, e->name, e->len) == 0);
    FUZZ_CHECK(t->name[e->len] == '\0');
    FUZZ_CHECK(t->fn == e->fn && t->record == e->record);
    FUZZ_CHECK(t->api_version == e->api_version && t->gil == e->gil);
    FUZZ_CHECK(t->thread_safe == e->thread_safe && t->is_callback == e->is_callback);
    FUZZ_CHECK(t->hash == name_hash(e->name, e->len));
}

/* Every entry is found by its name, and the table holds nothing else. */
static void check_table(registry *r, model *m) {
    FUZZ_CHECK(r->count == m->count && r->capacity == m->capacity);
    size_t used = 0;
    for (size_t i = 0; i < r->capacity; ++i) used += r->slots[i] != NULL;
    FUZZ_CHECK(used == m->count);
    for (size_t i = 0; i < m->count; ++i) {
        const model_entry *e = &m->e[i];
        check_same(registry_get(r, (const char *)e->name, e->len, name_hash(e->name, e->len)), e);
    }
}

/*
 * add_all of n names with their fields from flags, replacing or not, with
 * the fail-th allocation failing (0: none); checks the outcome against the
 * model and updates it.  Returns 1, adding nothing, when the model could
 * not hold the result.
 */
static int add_batch(registry *r, model *m, uint8_t (*names)[MAX_NAME], const size_t *lens,
                     size_t n, int replace, int fail, uint8_t flags, uintptr_t *next_record) {
    registry_target t[MAX_BATCH];
    char *copies[MAX_BATCH];
    size_t fresh = 0;
    for (size_t k = 0; k < n; ++k) fresh += model_get(m, names[k], lens[k]) == NULL;
    if (m->count + fresh > MAX_ENTRIES) return 1;
    for (size_t k = 0; k < n; ++k) {
        copies[k] = malloc(lens[k] ? lens[k] : 1);
        memcpy(copies[k], names[k], lens[k]);
        memset(&t[k], 0xA5, sizeof t[k]); /* the registry must not rely on fields it sets */
        t[k].name = copies[k];
        t[k].name_len = lens[k];
        t[k].hash = name_hash(names[k], lens[k]);
        t[k].fn = (flags & 1) ? NULL : (void *)(*next_record * 16);
        t[k].api_version = flags >> 1 & 1;
        t[k].gil = (flags >> 2) % 3;
        t[k].thread_safe = flags >> 4 & 1;
        t[k].is_callback = flags >> 5 & 1;
        t[k].record = (void *)(*next_record * 16 + 8);
        *next_record += 1;
    }

    /* What registry_add_all must answer: allocation 1 is the array of copies,
     * then two per target (target, name) up to the first repeated name, then
     * one per doubling of the table. */
    int want = 0;
    int alloc = 1;
    if (fail == alloc) want = -1;
    for (size_t k = 0; k < n && want == 0; ++k) {
        if (fail == alloc + 1 || fail == alloc + 2) want = -1;
        alloc += 2;
        for (size_t j = 0; j < k && want == 0; ++j)
            if (lens[j] == lens[k] && memcmp(names[j], names[k], lens[k]) == 0) want = (int)k + 1;
    }
    size_t capacity = m->capacity;
    for (size_t k = 0; k < n && want == 0; ++k)
        if (!replace && model_get(m, names[k], lens[k]) != NULL) want = (int)k + 1;
    while (want == 0 && 2 * (m->count + fresh) > capacity) {
        if (fail == ++alloc) want = -1;
        capacity *= 2;
    }

    uint64_t generation = atomic_load(&r->generation);
    fail_at = fail;
    int rc = registry_add_all(r, t, n, replace);
    fail_at = 0;
    for (size_t k = 0; k < n; ++k) free(copies[k]); /* the registry keeps its own */
    FUZZ_CHECK(rc == want);
    FUZZ_CHECK(atomic_load(&r->generation) == generation + (rc == 0));
    if (rc == 0) {
        m->capacity = capacity;
        for (size_t k = 0; k < n; ++k) {
            model_entry *e = model_get(m, names[k], lens[k]);
            if (e == NULL) e = &m->e[m->count++];
            memcpy(e->name, names[k], lens[k]);
            e->len = lens[k];
            e->key = reference_fnv1a(names[k], lens[k]);
            e->fn = t[k].fn;
            e->record = t[k].record;
            e->api_version = t[k].api_version;
            e->gil = t[k].gil;
            e->thread_safe = t[k].thread_safe;
            e->is_callback = t[k].is_callback;
        }
    }
    FUZZ_CHECK(r->count == m->count && r->capacity == m->capacity);
    return 0;
}

#ifdef FUZZ_COVERAGE
int __llvm_profile_write_file(void);
#endif

/*
 * The child of a fork finds every entry, can add and look up a new one, and
 * exits without running anything of its parent's (no atexit, no libFuzzer).
 */
static void fork_and_check(registry *regs, model *models) {
    pid_t pid = fork();
    FUZZ_CHECK(pid >= 0);
    if (pid == 0) {
        int ok = 1;
        for (int k = 0; k < 2; ++k) {
            for (size_t i = 0; i < models[k].count; ++i) {
                const model_entry *e = &models[k].e[i];
                const registry_target *t = registry_get(&regs[k], (const char *)e->name, e->len,
                                                        name_hash(e->name, e->len));
                ok &= t != NULL && t->record == e->record;
            }
            registry_target t;
            memset(&t, 0, sizeof t);
            t.name = "\xff after fork";
            t.name_len = strlen(t.name);
            t.hash = name_hash((const uint8_t *)t.name, t.name_len);
            int rc = registry_add_all(&regs[k], &t, 1, 1);
            ok &= rc == 0 && registry_get(&regs[k], t.name, t.name_len, t.hash) != NULL;
            ok &= registry_remove(&regs[k], t.name, t.name_len, t.hash) == 0;
        }
#ifdef FUZZ_COVERAGE
        /* _exit skips the profile's own writer, and fork_child ran here. */
        __llvm_profile_write_file();
#endif
        _exit(ok ? 0 : 3);
    }
    int status;
    pid_t got;
    do /* libFuzzer's timer signal interrupts the wait */
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    FUZZ_CHECK(got == pid);
    FUZZ_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size};
    static model models[2];
    static uint8_t names[MAX_BATCH][MAX_NAME];
    size_t lens[MAX_BATCH];
    registry regs[2];
    registry_cache caches[2][N_CACHES];
    uintptr_t next_record = 1;

    uint8_t mode = fuzz_u8(&in);
    hash_mode = mode % 4;
    /*
     * Forking a fuzzer costs milliseconds, so only inputs whose first byte is
     * 0xFC or more may fork, and of those only every 64th that reaches a
     * fork operation does (the first one always).
     */
    static unsigned fork_turn;
    int forked = mode < 0xFC;
    memset(caches, 0, sizeof caches);
    for (int k = 0; k < 2; ++k) {
        FUZZ_CHECK(registry_init(&regs[k]) == 0);
        models[k].count = 0;
        models[k].capacity = 16;
    }

    for (int ops = 0; fuzz_left(&in) && ops < 2000; ++ops) {
        uint8_t op = fuzz_u8(&in);
        int k = (op >> 7) & 1;
        registry *r = &regs[k];
        model *m = &models[k];
        uint8_t scratch[MAX_NAME];
        size_t len;
        switch (op % 10) {
        case 0: { /* add_all of 1 to 4 names */
            uint8_t how = fuzz_u8(&in);
            size_t n = 1 + how % 4;
            for (size_t j = 0; j < n; ++j) lens[j] = read_name(&in, names[j]);
            if (add_batch(r, m, names, lens, n, how >> 2 & 1, (how >> 3) % 12, fuzz_u8(&in),
                          &next_record))
                goto done;
            break;
        }
        case 1: { /* add_all of many: names '#', j (2 bytes), a seed byte */
            size_t n = fuzz_u8(&in) % (MAX_BATCH + 1);
            uint8_t seed = fuzz_u8(&in);
            for (size_t j = 0; j < n; ++j) {
                uint8_t name[4] = {'#', (uint8_t)j, (uint8_t)(j >> 8), seed};
                memcpy(names[j], name, sizeof name);
                lens[j] = sizeof name;
            }
            if (add_batch(r, m, names, lens, n, seed & 1, 0, 0, &next_record)) goto done;
            break;
        }
        case 2: { /* remove */
            len = read_name(&in, scratch);
            char *name = malloc(len ? len : 1);
            memcpy(name, scratch, len);
            model_entry *e = model_get(m, scratch, len);
            uint64_t generation = atomic_load(&r->generation);
            int rc = registry_remove(r, name, len, name_hash(scratch, len));
            free(name);
            FUZZ_CHECK(rc == (e == NULL));
            FUZZ_CHECK(atomic_load(&r->generation) == generation + (e != NULL));
            if (e != NULL) *e = m->e[--m->count];
            FUZZ_CHECK(r->count == m->count);
            break;
        }
        case 3: { /* get */
            len = read_name(&in, scratch);
            char *name = malloc(len ? len : 1);
            memcpy(name, scratch, len);
            check_same(registry_get(r, name, len, name_hash(scratch, len)),
                       model_get(m, scratch, len));
            free(name);
            break;
        }
        case 4: { /* cached get: cache c always serves pool name c */
            size_t c = fuzz_u8(&in) % N_CACHES;
            const uint8_t *name = (const uint8_t *)pool[c + 3];
            size_t n = pool_lens[c + 3];
            check_same(registry_cached_get(r, &caches[k][c], (const char *)name, n,
                                           name_hash(name, n)),
                       model_get(m, name, n));
            break;
        }
        case 5: /* hash */
            len = read_name(&in, scratch);
            FUZZ_CHECK(registry_hash((const char *)scratch, len) == reference_fnv1a(scratch, len));
            break;
        case 6:
            check_table(r, m);
            break;
        case 7: /* fork, at most once per input */
            if (!forked) {
                forked = 1;
                if (fork_turn++ % 64 == 0) fork_and_check(regs, models);
            }
            break;
        case 8: /* add_all of nothing changes nothing */
            FUZZ_CHECK(registry_add_all(r, NULL, 0, op & 1) == 0);
            break;
        default: /* destroy with everything in it, then start again */
            registry_destroy(r);
            registry_destroy(r); /* a second destroy is a no-op */
            if (op & 0x40) {
                fail_at = 1; /* the table's allocation fails: init fails cleanly */
                FUZZ_CHECK(registry_init(r) == -1 && r->slots == NULL);
                fail_at = 0;
                registry_destroy(r);
            }
            FUZZ_CHECK(registry_init(r) == 0);
            memset(caches[k], 0, sizeof caches[k]);
            m->count = 0;
            m->capacity = 16;
            break;
        }
    }
done:
    for (int k = 0; k < 2; ++k) {
        check_table(&regs[k], &models[k]);
        registry_destroy(&regs[k]);
    }
    return 0;
}
