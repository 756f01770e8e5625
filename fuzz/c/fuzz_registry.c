/*
 * libFuzzer target: the registry (src/fjffi/src/registry.c) against a
 * linear array holding what it must hold.
 *
 * The input is a hash mode byte, then operations on two registries:
 * add (optionally with its n-th allocation failing), many adds, get,
 * records, count, hash, fork (the child must find a working registry),
 * destroy-and-init.
 * Names are exact-size heap copies with no NUL after them, so reading past
 * a name's length is an ASan report.  The hash mode makes many names share
 * a hash or a probe chain, which the real hash almost never does.  Any
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
    size_t capacity; /* the table size the registry must have: 16, doubled at half full */
} model;

static int hash_mode;

/*
 * FNV-1a written from its definition, apart from the one under test, with
 * registry.c's offset basis 1469598103934665603: the published 64-bit basis
 * is 14695981039346656037 (a digit longer).  Any fixed basis hashes
 * correctly; the two must only agree.
 */
#ifndef FNV_OFFSET_BASIS
#define FNV_OFFSET_BASIS 1469598103934665603ULL
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

static const model_entry *model_get(const model *m, const uint8_t *name, size_t len) {
    uint64_t key = reference_fnv1a(name, len);
    for (size_t i = 0; i < m->count; ++i)
        if (m->e[i].key == key && m->e[i].len == len && memcmp(m->e[i].name, name, len) == 0)
            return &m->e[i];
    return NULL;
}

/* A name: from a small pool (so names repeat) or raw bytes, NUL included. */
static size_t read_name(fuzz_input *in, uint8_t *name) {
    uint8_t kind = fuzz_u8(in);
    if (kind & 1) {
        static const char *const pool[] = {"", "a", "b", "ab", "ba", "negate", "add", "add\0x",
                                           "sum", "copy"};
        static const size_t lens[] = {0, 1, 1, 2, 2, 6, 3, 5, 3, 4};
        size_t k = (kind >> 1) % 10;
        memcpy(name, pool[k], lens[k]);
        return lens[k];
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

/*
 * Adds name to r and to the model, checking the outcome: flags pick the
 * target's fields and (top two bits) which allocation of registry_add
 * fails.  Returns 1, adding nothing, when the model is full.
 */
static int add_one(registry *r, model *m, const uint8_t *scratch, size_t len, uint8_t flags,
                   uintptr_t *next_record) {
    const model_entry *old = model_get(m, scratch, len);
    if (old == NULL && m->count == MAX_ENTRIES) return 1; /* the model is full */
    char *name = malloc(len ? len : 1);
    memcpy(name, scratch, len);
    registry_target t;
    memset(&t, 0xA5, sizeof t); /* the registry must not rely on fields it sets itself */
    t.name = name;
    t.name_len = len;
    t.hash = name_hash(scratch, len);
    t.fn = (flags & 1) ? NULL : (void *)(*next_record * 16);
    t.api_version = flags >> 1 & 1;
    t.gil = (flags >> 2) % 3;
    t.thread_safe = flags >> 4 & 1;
    t.is_callback = flags >> 5 & 1;
    t.record = (void *)(*next_record * 16 + 8);
    *next_record += 1;
    /* Allocations 1 and 2 (target, name) come first; 3 is the grown table. */
    int fail = flags >> 6;
    int grows = old == NULL && 2 * (m->count + 1) > m->capacity;
    fail_at = fail;
    int rc = registry_add(r, &t);
    fail_at = 0;
    free(name); /* the registry keeps its own copy */
    if (fail == 1 || fail == 2 || (fail == 3 && grows)) {
        FUZZ_CHECK(rc == -1); /* and nothing changed: the final checks see to that */
    } else if (old != NULL) {
        FUZZ_CHECK(rc == 1);
    } else {
        FUZZ_CHECK(rc == 0);
        if (grows) m->capacity *= 2;
        model_entry *e = &m->e[m->count++];
        memcpy(e->name, scratch, len);
        e->len = len;
        e->key = reference_fnv1a(scratch, len);
        e->fn = t.fn;
        e->record = t.record;
        e->api_version = t.api_version;
        e->gil = t.gil;
        e->thread_safe = t.thread_safe;
        e->is_callback = t.is_callback;
    }
    FUZZ_CHECK(r->capacity == m->capacity && r->count == m->count);
    return 0;
}

#ifdef FUZZ_COVERAGE
int __llvm_profile_write_file(void);
#endif

/*
 * The child of a fork finds every entry, can add and look up a new one, and
 * exits without running anything of its parent's (no atexit, no libFuzzer).
 */
static void fork_and_check(registry *regs, const model *models) {
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
            int rc = registry_add(&regs[k], &t);
            ok &= rc == 0 || (rc == 1 && model_get(&models[k], (const uint8_t *)t.name,
                                                   t.name_len) != NULL);
            ok &= registry_get(&regs[k], t.name, t.name_len, t.hash) != NULL;
            ok &= registry_count(&regs[k]) == models[k].count + (rc == 0);
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
    registry regs[2];
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
        switch (op % 8) {
        case 0: /* add */
            len = read_name(&in, scratch);
            if (add_one(r, m, scratch, len, fuzz_u8(&in), &next_record)) goto done;
            break;
        case 7: { /* many adds, so the table grows: names '#', i (2 bytes), a seed byte */
            size_t n = fuzz_u8(&in) % 64;
            uint8_t seed = fuzz_u8(&in);
            for (size_t i = 0; i < n; ++i) {
                uint8_t name[4] = {'#', (uint8_t)i, (uint8_t)(i >> 8), seed};
                if (add_one(r, m, name, sizeof name, 0, &next_record)) goto done;
            }
            break;
        }
        case 1: { /* get */
            len = read_name(&in, scratch);
            char *name = malloc(len ? len : 1);
            memcpy(name, scratch, len);
            check_same(registry_get(r, name, len, name_hash(scratch, len)),
                       model_get(m, scratch, len));
            free(name);
            break;
        }
        case 2: { /* records, into an array of exactly max slots */
            size_t max = fuzz_u8(&in) % (m->count + 3);
            void **out = malloc((max ? max : 1) * sizeof *out);
            size_t n = registry_records(r, out, max);
            FUZZ_CHECK(n == (max < m->count ? max : m->count));
            for (size_t i = 0; i < n; ++i) {
                int found = 0;
                for (size_t j = 0; j < m->count; ++j) found += m->e[j].record == out[i];
                FUZZ_CHECK(found == 1);
                for (size_t j = 0; j < i; ++j) FUZZ_CHECK(out[j] != out[i]);
            }
            free(out);
            break;
        }
        case 3: /* count */
            FUZZ_CHECK(registry_count(r) == m->count);
            break;
        case 4: /* hash */
            len = read_name(&in, scratch);
            FUZZ_CHECK(registry_hash((const char *)scratch, len) == reference_fnv1a(scratch, len));
            break;
        case 5: /* fork, at most once per input */
            if (!forked) {
                forked = 1;
                if (fork_turn++ % 64 == 0) fork_and_check(regs, models);
            }
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
            m->count = 0;
            m->capacity = 16;
            break;
        }
    }
done:
    /* Every entry is still there, found by its name, at the end. */
    for (int k = 0; k < 2; ++k) {
        for (size_t i = 0; i < models[k].count; ++i) {
            const model_entry *e = &models[k].e[i];
            check_same(registry_get(&regs[k], (const char *)e->name, e->len,
                                    name_hash(e->name, e->len)),
                       e);
        }
        FUZZ_CHECK(registry_count(&regs[k]) == models[k].count);
        registry_destroy(&regs[k]);
    }
    return 0;
}
