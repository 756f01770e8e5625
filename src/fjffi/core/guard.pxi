# --- guard mode: outputs with guard zones, to catch kernels writing outside -

cdef enum:
    # Bytes before and after each output, and the value they are filled with.
    GUARD_BYTES = 64
    GUARD_FILL = 0xFD

cdef bint GUARD_DEFAULT = False  # the process default; see set_guard

GUARD_ON = ("1", "true", "yes", "on")
GUARD_OFF = ("", "0", "false", "no", "off")


def set_guard(enabled):
    """Turn guard mode on or off for every Call made without guard= from now
    on, and for fjffi.call.  The default comes from the environment variable
    FJFFI_GUARD at import ("1", "true", "yes" or "on" turn it on)."""
    global GUARD_DEFAULT
    GUARD_DEFAULT = check_bool("enabled", enabled)


def guard_enabled():
    """Whether guard mode is the process default (see set_guard)."""
    return GUARD_DEFAULT


cdef bint guard_from_environment(object environ) except -1:
    """FJFFI_GUARD read once, at import: the environment is not read on the
    call path (getenv is slow, and races with os.environ writes)."""
    value = environ.get("FJFFI_GUARD", "").lower()
    if value in GUARD_OFF:
        return False
    if value not in GUARD_ON:
        warnings.warn(f"FJFFI_GUARD={environ['FJFFI_GUARD']!r} is not one of "
                      f"{GUARD_ON + GUARD_OFF[1:]}; guard mode is on", RuntimeWarning,
                      stacklevel=2)
    return True


cdef int32_t run_guarded(str name, const registry_target *t, Frame *f,
                         fjffi_context *ctx, bint release) except? -1:
    """Run the kernel on shadow outputs with guard zones before and after.

    A kernel that writes outside an output's declared bytes damages a guard
    byte, which lands in the shadow's zones, never in the caller's memory:
    the outputs are then zeroed and BufferOverrunError raised.
    """
    cdef size_t i, k, shadowed = 0
    cdef int32_t rc
    cdef uint8_t *shadow
    cdef void **real = <void **>calloc(f.n_outputs + 1, sizeof(void *))
    if real == NULL:
        raise MemoryError()
    try:
        for i in range(f.n_outputs):
            real[i] = f.outputs[i].data
            memset(real[i], 0, f.outputs[i].nbytes)
            shadow = <uint8_t *>malloc(f.outputs[i].nbytes + 2 * GUARD_BYTES)
            if shadow == NULL:
                raise MemoryError()
            memset(shadow, GUARD_FILL, GUARD_BYTES)
            memset(shadow + GUARD_BYTES, 0, f.outputs[i].nbytes)
            memset(shadow + GUARD_BYTES + f.outputs[i].nbytes, GUARD_FILL, GUARD_BYTES)
            f.outputs[i].data = shadow + GUARD_BYTES
            shadowed += 1
        if not t.thread_safe:
            lock_target(name, t)
        if release:
            with nogil:
                rc = run_kernel(t, f, ctx)
        else:
            rc = run_kernel(t, f, ctx)
        if not t.thread_safe:
            unlock_target(t)
        for i in range(f.n_outputs):
            shadow = <uint8_t *>f.outputs[i].data - GUARD_BYTES
            for k in range(GUARD_BYTES):
                if shadow[GUARD_BYTES - 1 - k] != GUARD_FILL:
                    raise BufferOverrunError(name, f.n_inputs + i, -1 - <Py_ssize_t>k)
                if shadow[GUARD_BYTES + f.outputs[i].nbytes + k] != GUARD_FILL:
                    raise BufferOverrunError(name, f.n_inputs + i, k)
        for i in range(f.n_outputs):
            memcpy(real[i], f.outputs[i].data, f.outputs[i].nbytes)
        return rc
    finally:
        for i in range(shadowed):
            free(<uint8_t *>f.outputs[i].data - GUARD_BYTES)
            f.outputs[i].data = real[i]
        free(real)
