/*
 * Reading a fuzz input as a stream of small decisions.  Past the end every
 * read gives 0, so any input, even an empty one, decodes to something.
 */
#ifndef FJFFI_FUZZ_INPUT_H
#define FJFFI_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fuzz_input {
    const uint8_t *p;
    size_t n;
} fuzz_input;

static inline int fuzz_left(const fuzz_input *in) { return in->n > 0; }

static inline uint8_t fuzz_u8(fuzz_input *in) {
    if (in->n == 0) return 0;
    in->n -= 1;
    return *in->p++;
}

static inline uint64_t fuzz_u64(fuzz_input *in, int nbytes) {
    uint64_t v = 0;
    for (int i = 0; i < nbytes; ++i) v |= (uint64_t)fuzz_u8(in) << (8 * i);
    return v;
}

/* Up to len bytes into out; returns how many there were. */
static inline size_t fuzz_bytes(fuzz_input *in, uint8_t *out, size_t len) {
    if (len > in->n) len = in->n;
    if (len > 0) memcpy(out, in->p, len);
    in->p += len;
    in->n -= len;
    return len;
}

/*
 * An int64 that is often an edge: small, negative, a power of two near a
 * limit, or any 64 bits.  Sizes are where the arithmetic goes wrong.
 */
static inline int64_t fuzz_dim(fuzz_input *in) {
    uint8_t kind = fuzz_u8(in);
    switch (kind % 8) {
    case 0:
    case 1:
    case 2:
        return fuzz_u8(in) % 8;
    case 3:
        return -(int64_t)(fuzz_u8(in) % 4) - 1;
    case 4: {
        int shift = fuzz_u8(in) % 63;
        int64_t v = INT64_C(1) << shift;
        return v + (int64_t)(fuzz_u8(in) % 3) - 1;
    }
    case 5:
        return INT64_MAX - (int64_t)(fuzz_u8(in) % 4);
    case 6:
        return INT64_MIN + (int64_t)(fuzz_u8(in) % 4);
    default:
        return (int64_t)fuzz_u64(in, 8);
    }
}

/* A finding: say what, then abort so libFuzzer (or the replay) records it. */
#define FUZZ_CHECK(cond)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#endif
