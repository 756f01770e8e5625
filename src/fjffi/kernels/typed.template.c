/*
 * Per-dtype loops of the typed kernels.  typed.c includes this once per
 * dtype after defining:
 *
 *   FJFFI_T        the element type
 *   FJFFI_U        the type arithmetic is done in: FJFFI_T for floats, the
 *                  unsigned counterpart for integers, so overflow wraps like
 *                  numpy instead of being undefined.  It must not be
 *                  narrower than unsigned int, or it would promote to int.
 *   FJFFI_IS_FLOAT 1 for floating types, 0 for integers
 *   FJFFI_SUFFIX   appended to every function name
 *
 * Not a translation unit of its own: build typed.c, not this file.
 */
#ifndef FJFFI_SUFFIX
#error "typed.template.c is included by typed.c; do not compile it on its own"
#endif

static FJFFI_CLONES void CAT(negate_, FJFFI_SUFFIX)(void *restrict out_, const void *restrict a_,
                                                    size_t n) {
    FJFFI_T *restrict out = out_;
    const FJFFI_T *restrict a = a_;
    FJFFI_FOR_EACH(i, n, out[i] = (FJFFI_T)(-(FJFFI_U)a[i]));
}

static FJFFI_CLONES void CAT(add_, FJFFI_SUFFIX)(void *restrict out_, const void *restrict a_,
                                                 const void *restrict b_, size_t n) {
    FJFFI_T *restrict out = out_;
    const FJFFI_T *restrict a = a_;
    const FJFFI_T *restrict b = b_;
    FJFFI_FOR_EACH(i, n, out[i] = (FJFFI_T)((FJFFI_U)a[i] + (FJFFI_U)b[i]));
}

static FJFFI_CLONES void CAT(multiply_, FJFFI_SUFFIX)(void *restrict out_, const void *restrict a_,
                                                      const void *restrict b_, size_t n) {
    FJFFI_T *restrict out = out_;
    const FJFFI_T *restrict a = a_;
    const FJFFI_T *restrict b = b_;
    FJFFI_FOR_EACH(i, n, out[i] = (FJFFI_T)((FJFFI_U)a[i] * (FJFFI_U)b[i]));
}

#if FJFFI_IS_FLOAT
/*
 * numpy's pairwise summation (loops_utils.h.src), so results match
 * np.sum on a contiguous array to the last bit or close to it, and the
 * rounding error grows as O(log n) rather than O(n).
 */
static FJFFI_CLONES FJFFI_T CAT(pairwise_sum_, FJFFI_SUFFIX)(const FJFFI_T *restrict a, size_t n) {
    if (n < 8) {
        /* -0.0 is the additive identity that keeps a sum of -0.0s at -0.0. */
        FJFFI_T res = (FJFFI_T)-0.0;
        for (size_t i = 0; i < n; ++i) res += a[i];
        return res;
    }
    if (n <= FJFFI_PW_BLOCKSIZE) {
        FJFFI_T r[8];
        size_t i;
        for (size_t k = 0; k < 8; ++k) r[k] = a[k];
        for (i = 8; i < n - n % 8; i += 8)
            for (size_t k = 0; k < 8; ++k) r[k] += a[i + k];
        FJFFI_T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return CAT(pairwise_sum_, FJFFI_SUFFIX)(a, n2) + CAT(pairwise_sum_, FJFFI_SUFFIX)(a + n2, n - n2);
}

static void CAT(sum_, FJFFI_SUFFIX)(void *restrict out, const void *restrict a, size_t n) {
    /* np.sum of an empty array is +0.0, not the -0.0 the loop starts from. */
    *(FJFFI_T *)out = n == 0 ? (FJFFI_T)0 : CAT(pairwise_sum_, FJFFI_SUFFIX)(a, n);
}
#else
static FJFFI_CLONES void CAT(sum_, FJFFI_SUFFIX)(void *restrict out, const void *restrict a_,
                                                 size_t n) {
    const FJFFI_T *restrict a = a_;
    /* Wrapping addition is associative, so independent lanes (one vector) give the exact result. */
    FJFFI_U lanes[FJFFI_BLOCK] = {0};
    size_t i = 0;
    for (; i + FJFFI_BLOCK <= n; i += FJFFI_BLOCK)
        for (size_t k = 0; k < FJFFI_BLOCK; ++k) lanes[k] += (FJFFI_U)a[i + k];
    FJFFI_U acc = 0;
    for (size_t k = 0; k < FJFFI_BLOCK; ++k) acc += lanes[k];
    for (; i < n; ++i) acc += (FJFFI_U)a[i];
    *(FJFFI_T *)out = (FJFFI_T)acc;
}
#endif
