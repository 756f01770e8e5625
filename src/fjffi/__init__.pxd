# cimport fjffi: the C ABI of fjffi.h and the C-level registration API.
#
#     from fjffi cimport register_function, fjffi_buffer, FJFFI_ABI_TYPED

from fjffi._abi cimport *
from fjffi._core cimport Registry, register_function
