# --- the call without Python: fjffi_c_api.invoke -----------------------------

cdef extern from *:
    # A Registry object's C struct, to reach its table without the GIL.
    ctypedef struct RegistryObject "struct __pyx_obj_5fjffi_5_core_Registry":
        opaque_registry *reg
    ctypedef struct TypeObject "PyTypeObject":
        TypeObject *tp_base
    TypeObject *type_of "Py_TYPE"(void *obj) noexcept nogil

cdef registry *DEFAULT_REGISTRY = NULL   # default_registry's table, set at init
cdef TypeObject *REGISTRY_TYPE = NULL


cdef registry *registry_of_object(void *obj) noexcept nogil:
    """The table of a Registry object, or NULL for anything else; reads
    only immutable type pointers, so it needs no GIL."""
    cdef TypeObject *tp
    if obj == NULL:
        return DEFAULT_REGISTRY
    tp = type_of(obj)
    while tp != NULL and tp != REGISTRY_TYPE:
        tp = tp.tp_base
    return <registry *>(<RegistryObject *>obj).reg if tp != NULL else NULL


cdef int32_t c_api_invoke(void *registry_obj, const char *name, size_t name_len,
                          const fjffi_buffer *inputs, size_t n_inputs,
                          const fjffi_buffer *outputs, size_t n_outputs,
                          int32_t *code, char *message, size_t message_size) noexcept nogil:
    """fjffi_c_api.invoke (fjffi.h).  Counted in flight from before its
    lookup to its return, so that no target it resolved is released under it."""
    capi_enter()
    cdef int32_t rc = capi_invoke(registry_obj, name, name_len, inputs, n_inputs, outputs,
                                  n_outputs, code, message, message_size)
    capi_leave()
    return rc


cdef int32_t capi_invoke(void *registry_obj, const char *name, size_t name_len,
                         const fjffi_buffer *inputs, size_t n_inputs,
                         const fjffi_buffer *outputs, size_t n_outputs,
                         int32_t *code, char *message, size_t message_size) noexcept nogil:
    """fjffi_c_api.invoke (fjffi.h): Call.invoke's contract on descriptors,
    with no GIL and no Python object."""
    cdef registry *r = registry_of_object(registry_obj)
    cdef const registry_target *t
    cdef Frame f
    cdef fjffi_context ctx
    cdef size_t i, j, n = n_inputs + n_outputs
    cdef char detail[128]
    cdef int32_t rc
    cdef ptrdiff_t bad
    if message_size > 0:
        message[0] = 0
    if r == NULL:
        snprintf(message, message_size, "fjffi invoke: registry is not a fjffi.Registry")
        return FJFFI_INVOKE_REFUSED
    if name == NULL or (n_inputs > 0 and inputs == NULL) or (n_outputs > 0 and outputs == NULL):
        snprintf(message, message_size, "fjffi invoke: NULL name or descriptor array")
        return FJFFI_INVOKE_REFUSED
    t = registry_get(r, name, name_len, registry_hash(name, name_len))
    if t == NULL:
        snprintf(message, message_size, "no target named '%.*s' is registered",
                 <int>min(name_len, 200), name)
        return FJFFI_INVOKE_REFUSED
    if t.is_callback or t.gil == FJFFI_GIL_HOLD:
        snprintf(message, message_size, "target '%s' %s: it needs the GIL, which this entry "
                 "point does not take; call it through fjffi.call", t.name,
                 "is a Python callback" if t.is_callback else "is registered with gil=\"hold\"")
        return FJFFI_INVOKE_REFUSED
    for i in range(n):
        b = &inputs[i] if i < n_inputs else &outputs[i - n_inputs]
        if fjffi_check_buffer(b, detail, sizeof(detail)) != 0:
            snprintf(message, message_size, "%s: buffer %zu: %s", t.name, i, detail)
            return FJFFI_INVOKE_REFUSED
        if i < n_inputs and b.dtype == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<const uint8_t *>b.data, b.nbytes)
            if bad >= 0:
                snprintf(message, message_size, "%s: input %zu: bool byte %zd is %d; a bool "
                         "byte must be 0 or 1", t.name, i, bad, (<const uint8_t *>b.data)[bad])
                return FJFFI_INVOKE_REFUSED
    for i in range(n_outputs):
        for j in range(n):
            b = &inputs[j] if j < n_inputs else &outputs[j - n_inputs]
            if j != n_inputs + i and fjffi_overlaps(&outputs[i], b):
                snprintf(message, message_size, "%s: output %zu overlaps buffer %zu", t.name,
                         i, j)
                return FJFFI_INVOKE_REFUSED

    # One frame: descriptors of the inputs, then the outputs (as run_kernel
    # reads them), and a pointer each for the raw ABI.
    f.n_inputs = n_inputs
    f.n_outputs = n_outputs
    f.heap = NULL
    f.inputs = f.stack
    f.pointers = f.pointer_stack
    if n > 2 * STACK_BUFFERS:
        f.heap = malloc(n * (sizeof(fjffi_buffer) + sizeof(void *)))
        if f.heap == NULL:
            snprintf(message, message_size, "%s: out of memory", t.name)
            return FJFFI_INVOKE_REFUSED
        f.inputs = <fjffi_buffer *>f.heap
        f.pointers = <void **>(f.inputs + n)
    f.outputs = f.inputs + n_inputs
    if n_inputs > 0:
        memcpy(f.inputs, inputs, n_inputs * sizeof(fjffi_buffer))
    if n_outputs > 0:
        memcpy(f.outputs, outputs, n_outputs * sizeof(fjffi_buffer))
    rc = 0
    if t.contract != NULL:
        rc = contract_problem(<const fjffi_raw_contract *>t.contract, &f, detail,
                              sizeof(detail), &j)
    if rc != 0:
        snprintf(message, message_size, "%s: %s", t.name, detail)
        free(f.heap)
        return FJFFI_INVOKE_REFUSED

    ctx.message[0] = 0
    if not t.thread_safe and pthread_mutex_lock(&(<registry_target *>t).serial) != 0:
        snprintf(message, message_size, "%s: a thread_safe=False target cannot be called "
                 "again from inside its own call", t.name)
        free(f.heap)
        return FJFFI_INVOKE_REFUSED
    zero_outputs(&f)
    rc = run_kernel(t, &f, &ctx)
    if not t.thread_safe:
        unlock_target(t)
    code[0] = rc
    if rc != 0:
        zero_outputs(&f)
        ctx.message[FJFFI_MESSAGE_SIZE - 1] = 0
        if ctx.message[0] != 0:
            snprintf(message, message_size, "%s", ctx.message)
        else:
            snprintf(message, message_size, "extern function returned code %d", rc)
        free(f.heap)
        return FJFFI_INVOKE_FAILED
    for i in range(n_outputs):
        if f.outputs[i].dtype == FJFFI_BOOL:
            bad = fjffi_first_bad_bool(<const uint8_t *>f.outputs[i].data, f.outputs[i].nbytes)
            if bad >= 0:
                snprintf(message, message_size, "%s: output %zu: bool byte %zd is %d; a bool "
                         "byte must be 0 or 1", t.name, i, bad,
                         (<const uint8_t *>f.outputs[i].data)[bad])
                zero_outputs(&f)
                free(f.heap)
                return FJFFI_INVOKE_FAILED
    free(f.heap)
    return 0
