"""NumPy generators in compiled code, reached through their bit generators' addresses.

numba ports NumPy's distributions (ziggurat normal, Lemire bounded integers, exp of a normal
for the log-normal, ...) line by line and calls the generator's own bit generator, so a
compiled draw gives exactly the values (and leaves exactly the state) that NumPy's
``Generator`` methods would. A generator is handed to compiled code as the addresses of its
bit generator (:func:`pointers`, rebuilt inside by :func:`bitgen`), which avoids unboxing a
Python ``Generator`` (about 18 us per object and call); the caller keeps the ``Generator``
alive while the addresses are in use.
"""

from __future__ import annotations

import ctypes

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic
from numba.np.random.distributions import random_lognormal

_BITGEN = types.NumPyRandomBitGeneratorType("bit_generator")
_jit = njit(cache=True, nogil=True)


@intrinsic
def bitgen(tyctx, ptrs):
    """The bit generator whose addresses (:func:`pointers`) are the uint64 array ``ptrs``."""
    sig = _BITGEN(ptrs)

    def codegen(cgctx, builder, sig, args):
        data = cgutils.create_struct_proxy(sig.args[0])(cgctx, builder, value=args[0]).data
        v = [builder.load(cgutils.gep(builder, data, i)) for i in range(5)]
        bg = cgutils.create_struct_proxy(_BITGEN)(cgctx, builder)
        bg.state_address, bg.state = v[0], v[0]
        bg.fnptr_next_uint64, bg.fnptr_next_uint32, bg.fnptr_next_double = v[1], v[2], v[3]
        bg.bit_generator = v[4]
        bg.parent = cgutils.get_null_value(bg.parent.type)
        return bg._getvalue()

    return sig, codegen


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def pointers(rng: np.random.Generator) -> np.ndarray:
    """Addresses of ``rng``'s bit generator: state, next_uint64, next_uint32, next_double,
    the bitgen_t struct (valid while ``rng`` lives).

    Read from the bitgen_t struct that the bit generator's capsule (NumPy's C API,
    ``BitGenerator.capsule``) points to, whose first four fields are these addresses: the
    same values as its ``ctypes`` interface gives, without building that interface (5x
    faster, which matters at every episode start of a vector env)."""
    addr = _capsule_pointer(rng.bit_generator.capsule, b"BitGenerator")
    s = (ctypes.c_uint64 * 4).from_address(addr)
    return np.array([s[0], s[1], s[2], s[3], addr], dtype=np.uint64)


@_jit
def draw_lengths(b, mu, sigma, cap, out):
    """:func:`~edgellm.system.workloads.length_sampler` into ``out``: rint(lognormal(mu,
    sigma)), at least 1, at most ``cap``."""
    for k in range(out.size):
        out[k] = np.int64(min(max(np.rint(random_lognormal(b, mu, sigma)), 1.0), cap))
