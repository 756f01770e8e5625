# The C-level API of fjffi._core, for other Cython modules:
#
#     from fjffi cimport register_function, FJFFI_ABI_TYPED
#
# The registry's C structs stay opaque here, so a consumer needs only
# fjffi.h (fjffi.get_include()) to compile.

cdef extern from *:
    ctypedef struct opaque_registry "struct registry"
    ctypedef struct opaque_target "struct registry_target"

cdef class Registry:
    cdef opaque_registry *reg
    cdef dict targets            # name -> (Target record, owner, keep_alive)
    cdef list retired            # free-threaded builds: holders of removed targets
    cdef object __weakref__
    cdef const opaque_target *lookup(self, str name) except NULL
    cdef int add(self, object name, void *fn, int api_version, str gil, bint thread_safe,
                 bint is_callback, object record) except -1
    cdef int add_all(self, list entries, bint replace=*) except -1
    cdef int retire(self, tuple holder) except -1

# Register a C kernel (an fjffi_raw_fn for api_version 0, an fjffi_typed_fn
# for 1) under name; registry None means fjffi.default_registry.
cdef int register_function(Registry registry, str name, void *fn, int api_version,
                           str gil=*, bint thread_safe=*) except -1
