# --- the kernel's run: zero, run under its lock and GIL policy, check --------
#
# Steps 4 to 6 of a call on a validated frame (docs/reference.md): what
# Call.invoke and fjffi.call run after call.pxi described the buffers; the
# C API's invoke and guard mode use run_kernel, the target lock and the GIL
# policy too.

# Under "auto", a call that moves at least this many bytes (inputs plus
# outputs) releases the GIL.  Below it, the release and reacquire cost more
# than the kernel (measured: see bench/README.md).
cdef Py_ssize_t AUTO_RELEASE_BYTES = 262144

cdef inline int execute(Call c, bint guard, bint unscrubbed, const registry_target *t,
                        object owner, Frame *f, size_t moved) except -1:
    """Steps 4 to 6 on a validated frame: zero, run, check.  owner holds
    every buffer of the frame (a callback's views keep it alive).  Inline,
    so the common call (a thread-safe C kernel, unguarded) is a few branches
    and the kernel's own call; the rest is in execute_other."""
    cdef size_t i
    cdef fjffi_context ctx
    cdef int32_t rc
    if t.is_callback or guard or not t.thread_safe:
        return execute_other(c, guard, unscrubbed, t, owner, f, moved)
    ctx.message[0] = 0
    rc = scrub_and_run(t, f, &ctx, unscrubbed, moved)
    if rc != 0:
        return raise_failed(c.name, t, f, rc, &ctx)
    for i in range(f.n_outputs):
        if f.outputs[i].dtype == FJFFI_BOOL:
            return check_output_bools(c.name, f)
    return 0


cdef int execute_other(Call c, bint guard, bint unscrubbed, const registry_target *t,
                       object owner, Frame *f, size_t moved) except -1:
    """execute for a callback, a guarded call or a target that is not
    thread-safe."""
    cdef fjffi_context ctx
    cdef int32_t rc
    cdef str name = c.name
    if t.is_callback:
        run_callback(name, t, owner, f)
        return check_output_bools(name, f)
    ctx.message[0] = 0
    if guard:
        rc = run_guarded(name, t, f, &ctx, releases_gil(t, moved))
    else:
        # Nothing between lock and unlock can raise.
        lock_target(name, t)
        rc = scrub_and_run(t, f, &ctx, unscrubbed, moved)
        unlock_target(t)
    if rc != 0:
        return raise_failed(name, t, f, rc, &ctx)
    return check_output_bools(name, f)


cdef inline int32_t scrub_and_run(const registry_target *t, Frame *f, fjffi_context *ctx,
                                  bint unscrubbed, size_t moved) noexcept:
    """Zero the outputs unless unscrubbed, then run the kernel, without the
    GIL where the target's policy says so (a large scrub need not hold it
    either)."""
    cdef int32_t rc
    if releases_gil(t, moved):
        with nogil:
            if not unscrubbed:
                zero_outputs(f)
            rc = run_kernel(t, f, ctx)
    else:
        if not unscrubbed:
            zero_outputs(f)
        rc = run_kernel(t, f, ctx)
    return rc


cdef int raise_failed(str name, const registry_target *t, Frame *f, int32_t rc,
                      fjffi_context *ctx) except -1:
    zero_outputs(f)
    raise CallFailedError(name, rc, failure_message(t, rc, ctx))


cdef int check_output_bools(str name, Frame *f) except -1:
    """A kernel's bool outputs hold only 0 or 1; otherwise the outputs are
    zeroed and InvalidBoolByteError raised."""
    cdef size_t i
    cdef Py_ssize_t bad
    for i in range(f.n_outputs):
        if f.outputs[i].dtype == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<uint8_t *>f.outputs[i].data, f.outputs[i].nbytes)
            if bad >= 0:
                value = (<uint8_t *>f.outputs[i].data)[bad]
                zero_outputs(f)
                raise InvalidBoolByteError(f.n_inputs + i, bad, value,
                                           f"{name}: output {i}")
    return 0


cdef str failure_message(const registry_target *t, int32_t rc, fjffi_context *ctx):
    """The kernel's own message; a raw-ABI kernel has no way to give one."""
    ctx.message[FJFFI_MESSAGE_SIZE - 1] = 0
    if ctx.message[0] != 0:
        return ctx.message.decode("utf-8", "replace")
    return f"extern function returned code {rc}"


cdef inline int32_t run_kernel(const registry_target *t, Frame *f,
                               fjffi_context *ctx) noexcept nogil:
    """Call the kernel; allocates nothing, so it cannot fail on its own.  A
    target that is not thread-safe is locked by the caller (lock_target)."""
    if fjffi_stats_mode:
        return run_kernel_counted(t, f, ctx)
    return call_kernel(t, f, ctx)


cdef int32_t run_kernel_counted(const registry_target *t, Frame *f,
                                fjffi_context *ctx) noexcept nogil:
    """run_kernel while statistics are on (set_stats): counted, and timed."""
    cdef bint timed = fjffi_stats_mode == 2
    cdef uint64_t start = fjffi_stats_now() if timed else 0
    cdef int32_t rc = call_kernel(t, f, ctx)
    count_call(t, f, rc != 0, fjffi_stats_now() - start if timed else 0)
    return rc


cdef inline int32_t call_kernel(const registry_target *t, Frame *f,
                                fjffi_context *ctx) noexcept nogil:
    """The kernel's call through its ABI, named as the running target for
    the crash report."""
    cdef int32_t rc
    cdef size_t i
    global fjffi_running_target
    cdef const char *outer = fjffi_running_target
    fjffi_running_target = t.name
    if t.api_version == FJFFI_ABI_TYPED:
        rc = (<fjffi_typed_fn>t.fn)(f.inputs, f.n_inputs, f.outputs, f.n_outputs, ctx)
    else:
        for i in range(f.n_inputs + f.n_outputs):
            f.pointers[i] = f.inputs[i].data  # outputs follow inputs in both arrays
        rc = (<fjffi_raw_fn>t.fn)(<const uint8_t **>f.pointers, f.n_inputs,
                                  <uint8_t **>(f.pointers + f.n_inputs), f.n_outputs)
    fjffi_running_target = outer
    return rc


cdef void count_call(const registry_target *t, Frame *f, bint failed,
                     uint64_t ns) noexcept nogil:
    cdef size_t i, moved = 0
    for i in range(f.n_inputs + f.n_outputs):
        moved += f.inputs[i].nbytes  # outputs follow inputs
    fjffi_stats_count(t.stats_id, moved, failed, ns)


cdef inline int lock_target(str name, const registry_target *t) except -1:
    """Take a non-thread-safe target's lock, never waiting for it with the
    GIL held: its holder may need the GIL to finish (a kernel that calls
    back into Python), which would deadlock the two threads."""
    cdef pthread_mutex_t *m = &(<registry_target *>t).serial
    cdef int rc
    if pthread_mutex_trylock(m) != 0:
        with nogil:
            rc = pthread_mutex_lock(m)
        if rc != 0:  # EDEADLK: this thread is inside the target already
            raise CallFailedError(name, -1, "a thread_safe=False target cannot be called "
                                  "again from inside its own call (re-entered on one thread)")
    return 0


cdef inline void unlock_target(const registry_target *t) noexcept nogil:
    pthread_mutex_unlock(&(<registry_target *>t).serial)


cdef inline bint releases_gil(const registry_target *t, size_t moved) noexcept nogil:
    return t.gil == FJFFI_GIL_RELEASE or (t.gil == FJFFI_GIL_AUTO
                                          and moved >= <size_t>AUTO_RELEASE_BYTES)
