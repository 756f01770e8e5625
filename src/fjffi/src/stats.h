/*
 * Per-target call statistics: calls, failures, bytes moved and, when timing
 * is on, nanoseconds inside the kernel.
 *
 * Each thread counts into blocks of its own, with plain atomic loads and
 * stores (no read-modify-write, no shared cache line), so counting costs
 * a few nanoseconds and never makes threads wait for each other.  A
 * reader sums every thread's blocks under a mutex that only readers, new
 * threads and exiting threads take.  Counting is off until switched on.
 */
#ifndef FJFFI_STATS_H
#define FJFFI_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fjffi_counts {
    uint64_t calls, failures, bytes, kernel_ns;
} fjffi_counts;

/* 0 off, 1 counting, 2 counting and timing; read on every call. */
extern _Atomic int fjffi_stats_mode;

/* A thread's counters: FJFFI_STATS_CHUNK targets per chunk, chunks made on
 * first use and never moved, so a reader never sees one freed under it. */
#define FJFFI_STATS_CHUNK 256
#define FJFFI_STATS_MAX_CHUNKS 16384 /* 4M target ids */

typedef struct fjffi_counts_atomic {
    _Atomic uint64_t calls, failures, bytes, kernel_ns;
} fjffi_counts_atomic;

typedef struct fjffi_stats_block {
    fjffi_counts_atomic *_Atomic chunks[FJFFI_STATS_MAX_CHUNKS];
    struct fjffi_stats_block *next, *prev;
} fjffi_stats_block;

/* This thread's block, NULL before its first count. */
extern __thread fjffi_stats_block *fjffi_stats_mine __attribute__((tls_model("initial-exec")));

/* A new id for a target's statistics; ids are never reused. */
uint32_t fjffi_stats_new_id(void);
/* Count one call of target id on this thread, making its counters first.
 * 0 when out of memory (the call is then not counted). */
int fjffi_stats_add(uint32_t id, uint64_t bytes, int failed, uint64_t kernel_ns);

/* Only this thread writes its counters: a load and a store, no lock prefix. */
#define FJFFI_STATS_BUMP(s, f, by)                                                      \
    atomic_store_explicit(&(s)->f, atomic_load_explicit(&(s)->f, memory_order_relaxed) + \
                                       (by), memory_order_relaxed)

/* fjffi_stats_add, inline for a target this thread has counted before. */
static inline void fjffi_stats_count(uint32_t id, uint64_t bytes, int failed,
                                     uint64_t kernel_ns) {
    fjffi_stats_block *b = fjffi_stats_mine;
    uint32_t c = id / FJFFI_STATS_CHUNK;
    fjffi_counts_atomic *chunk;
    if (b != NULL && c < FJFFI_STATS_MAX_CHUNKS &&
        (chunk = atomic_load_explicit(&b->chunks[c], memory_order_relaxed)) != NULL) {
        fjffi_counts_atomic *s = &chunk[id % FJFFI_STATS_CHUNK];
        FJFFI_STATS_BUMP(s, calls, 1);
        if (failed) FJFFI_STATS_BUMP(s, failures, 1);
        if (bytes) FJFFI_STATS_BUMP(s, bytes, bytes);
        if (kernel_ns) FJFFI_STATS_BUMP(s, kernel_ns, kernel_ns);
        return;
    }
    fjffi_stats_add(id, bytes, failed, kernel_ns);
}
/* The sums over every thread, living or gone, of target id. */
void fjffi_stats_read(uint32_t id, fjffi_counts *out);
/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t fjffi_stats_now(void);

#endif
