#include "stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK FJFFI_STATS_CHUNK
#define MAX_CHUNKS FJFFI_STATS_MAX_CHUNKS
typedef fjffi_counts_atomic counts_atomic;
typedef fjffi_stats_block thread_block;

_Atomic int fjffi_stats_mode;
static _Atomic uint32_t next_id;
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static thread_block *blocks;        /* every living thread's, under blocks_lock */
static counts_atomic *gone[MAX_CHUNKS]; /* the sums of exited threads, under blocks_lock */
static pthread_key_t block_key;
static pthread_once_t block_key_once = PTHREAD_ONCE_INIT;
__thread thread_block *fjffi_stats_mine __attribute__((tls_model("initial-exec")));
#define mine fjffi_stats_mine

static counts_atomic *chunk_of(counts_atomic **table, uint32_t c) {
    if (table[c] == NULL) table[c] = calloc(CHUNK, sizeof(counts_atomic));
    return table[c];
}

/* At thread exit: fold this thread's counts into `gone`, then free them. */
static void thread_gone(void *arg) {
    thread_block *b = arg;
    pthread_mutex_lock(&blocks_lock);
    for (uint32_t c = 0; c < MAX_CHUNKS; ++c) {
        counts_atomic *src = atomic_load_explicit(&b->chunks[c], memory_order_relaxed);
        if (src == NULL) continue;
        counts_atomic *dst = chunk_of(gone, c);
        for (uint32_t i = 0; i < CHUNK && dst != NULL; ++i) {
            /* Under blocks_lock, the only writer of `gone`. */
#define FOLD(f) atomic_store_explicit(&dst[i].f, atomic_load_explicit(&dst[i].f, \
        memory_order_relaxed) + atomic_load_explicit(&src[i].f, memory_order_relaxed), \
        memory_order_relaxed)
            FOLD(calls);
            FOLD(failures);
            FOLD(bytes);
            FOLD(kernel_ns);
#undef FOLD
        }
        free(src);
    }
    if (b->prev != NULL) b->prev->next = b->next;
    else blocks = b->next;
    if (b->next != NULL) b->next->prev = b->prev;
    pthread_mutex_unlock(&blocks_lock);
    free(b);
}

/* A fork in another thread's read or exit leaves the lock held: the child
 * takes it anew (its only thread holds nothing). */
static void fork_prepare(void) { pthread_mutex_lock(&blocks_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&blocks_lock); }
static void fork_child(void) { pthread_mutex_init(&blocks_lock, NULL); }

static void make_key(void) {
    pthread_key_create(&block_key, thread_gone);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

uint32_t fjffi_stats_new_id(void) {
    return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
}

static counts_atomic *slot_slow(uint32_t id);

static inline counts_atomic *slot(uint32_t id) {
    /* The common case: this thread has counted this target before. */
    uint32_t c = id / CHUNK;
    counts_atomic *chunk;
    if (mine != NULL && c < MAX_CHUNKS &&
        (chunk = atomic_load_explicit(&mine->chunks[c], memory_order_relaxed)) != NULL)
        return &chunk[id % CHUNK];
    return slot_slow(id);
}

static counts_atomic *slot_slow(uint32_t id) {
    uint32_t c = id / CHUNK;
    if (c >= MAX_CHUNKS) return NULL;
    if (mine == NULL) {
        pthread_once(&block_key_once, make_key);
        thread_block *b = calloc(1, sizeof *b);
        if (b == NULL) return NULL;
        pthread_mutex_lock(&blocks_lock);
        b->next = blocks;
        if (blocks != NULL) blocks->prev = b;
        blocks = b;
        pthread_mutex_unlock(&blocks_lock);
        pthread_setspecific(block_key, b);
        mine = b;
    }
    counts_atomic *chunk = atomic_load_explicit(&mine->chunks[c], memory_order_relaxed);
    if (chunk == NULL) {
        chunk = calloc(CHUNK, sizeof *chunk);
        if (chunk == NULL) return NULL;
        atomic_store_explicit(&mine->chunks[c], chunk, memory_order_release);
    }
    return &chunk[id % CHUNK];
}

#define BUMP(f, by) FJFFI_STATS_BUMP(s, f, by)

int fjffi_stats_add(uint32_t id, uint64_t bytes, int failed, uint64_t kernel_ns) {
    counts_atomic *s = slot(id);
    if (s == NULL) return 0;
    BUMP(calls, 1);
    BUMP(failures, failed != 0);
    BUMP(bytes, bytes);
    BUMP(kernel_ns, kernel_ns);
    return 1;
}

static void add_up(fjffi_counts *out, const counts_atomic *s) {
    out->calls += atomic_load_explicit(&s->calls, memory_order_relaxed);
    out->failures += atomic_load_explicit(&s->failures, memory_order_relaxed);
    out->bytes += atomic_load_explicit(&s->bytes, memory_order_relaxed);
    out->kernel_ns += atomic_load_explicit(&s->kernel_ns, memory_order_relaxed);
}

void fjffi_stats_read(uint32_t id, fjffi_counts *out) {
    uint32_t c = id / CHUNK;
    memset(out, 0, sizeof *out);
    if (c >= MAX_CHUNKS) return;
    pthread_mutex_lock(&blocks_lock);
    for (thread_block *b = blocks; b != NULL; b = b->next) {
        counts_atomic *chunk = atomic_load_explicit(&b->chunks[c], memory_order_acquire);
        if (chunk != NULL) add_up(out, &chunk[id % CHUNK]);
    }
    if (gone[c] != NULL) add_up(out, &gone[c][id % CHUNK]);
    pthread_mutex_unlock(&blocks_lock);
}

uint64_t fjffi_stats_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
