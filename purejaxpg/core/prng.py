"""A counter-based PRNG (the Philox-4x32-10 hash of Salmon et al., 2011) in plain uint32
arithmetic, for the programs that draw at every step (SAC).

Why not ``jax.random`` with ``impl="philox4x32"``: its hash multiplies with
``lax.mulhi``, which lowers to ``chlo.mulhi``, and this jaxlib cannot convert that op for a
program partitioned over several devices ("Unable to convert MHLO to StableHLO"), so a
sweep sharded over devices would not compile. Here the high word of the 32x32-bit product
is assembled from 16-bit halves, which every backend compiles, partitioned or not.
Threefry (JAX's default) also works everywhere but on CPU is lowered as a rolled loop of
many tiny kernels; this hash is unrolled and fuses with its consumers. What that is worth,
side by side (benchmarks/sac_prng.py, SAC Pendulum-v1, 8 seeds x 1e4 steps, 2-core CPU):
threefry costs 13% more CPU time per run (10-14% in each of 4 pairs), over the 5% that
issue 14 set as the bar for keeping this module.

Keys are ``uint32[2]``. ``split`` and ``fold_in`` hash the parent key with counters in
separate domains (third word 1 and 2); ``random_bits`` hashes counters ``(i, 0, 0, 0)``,
four words per counter.

``permutation`` is ``jax.random.permutation(key, n)``'s permutation computed with cheaper
sorts (PPO and TRPO shuffle their batch with it every epoch); it works with any key.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

M0, M1 = np.uint32(0xD2511F53), np.uint32(0xCD9E8D57)  # round multipliers
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # key schedule increments
ROUNDS = 10
_LO16 = np.uint32(0xFFFF)


def mulhilo(m: np.uint32, x):
    """(high, low) 32-bit words of the 64-bit product ``m * x`` (uint32 arrays)."""
    m_hi, m_lo = np.uint32(m >> 16), np.uint32(m & 0xFFFF)
    x_hi, x_lo = x >> 16, x & _LO16
    t = m_lo * x_lo
    u = m_hi * x_lo + (t >> 16)  # < 2**32: (2**16 - 1)**2 + 2**16 - 1
    v = m_lo * x_hi + (u & _LO16)
    return m_hi * x_hi + (u >> 16) + (v >> 16), m * x


def philox4x32(key, counter):
    """The Philox-4x32-10 hash: ``key`` (k0, k1), ``counter`` (x0, x1, x2, x3), uint32
    arrays that broadcast together. Returns four uint32 words."""
    k0, k1 = key
    x0, x1, x2, x3 = counter
    for r in range(ROUNDS):
        if r:
            k0, k1 = k0 + W0, k1 + W1
        hi0, lo0 = mulhilo(M0, x0)
        hi1, lo1 = mulhilo(M1, x2)
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return x0, x1, x2, x3


def _u32(x):
    return jnp.asarray(x).astype(jnp.uint32)


def _hash_words(key, n: int, domain: int):
    """``ceil(n / 4) * 4`` words of counters ``(i, 0, domain, 0)``, first ``n`` returned."""
    i = jnp.arange(math.ceil(n / 4), dtype=jnp.uint32)
    zero = jnp.zeros_like(i)
    words = philox4x32((key[0], key[1]), (i, zero, zero + np.uint32(domain), zero))
    return jnp.stack(words, axis=-1).reshape(-1)[:n]


def _seed(seed):
    s = jnp.asarray(seed)
    hi = (s >> 32).astype(jnp.uint32) if s.dtype.itemsize == 8 else jnp.uint32(0)
    return jnp.stack([hi, s.astype(jnp.uint32)])


def _split(key, shape):
    n = math.prod(shape)
    return _hash_words(key, 2 * n, 1).reshape(tuple(shape) + (2,))


def _fold_in(key, data):
    x = jnp.stack(philox4x32((key[0], key[1]), (_u32(data), jnp.uint32(0), jnp.uint32(2), jnp.uint32(0))))
    return x[:2]


def _random_bits(key, bit_width, shape):
    n = math.prod(shape)
    if bit_width == 64:
        w = _hash_words(key, 2 * n, 0).reshape(tuple(shape) + (2,)).astype(jnp.uint64)
        return (w[..., 0] << 32) | w[..., 1]
    dtype = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32}[bit_width]
    w = _hash_words(key, n, 0).reshape(shape)
    return (w >> (32 - bit_width)).astype(dtype) if bit_width < 32 else w


_IMPL = None


def impl():
    """The PRNG implementation, for ``jax.random.wrap_key_data(data, impl=impl())``."""
    global _IMPL
    if _IMPL is None:
        from jax.extend.random import define_prng_impl

        _IMPL = define_prng_impl(key_shape=(2,), seed=_seed, split=_split, random_bits=_random_bits,
                                 fold_in=_fold_in, name="purejaxpg_philox4x32", tag="pjp")
    return _IMPL


def stable_argsort_u32(k, bits: int):
    """``np.argsort(k, kind="stable")`` of ``uint32[n]`` keys, ``n <= 2**bits``, ``2 * bits <= 32``,
    as int32 indices. Two passes of a least-significant-digit radix sort, each one sort of a
    single uint32 operand that packs a digit with a position: first the low ``32 - bits`` bits
    of each key with its index, then the high ``bits`` bits with its place after the first
    pass. XLA:CPU sorts a single operand of a primitive type with ``std::stable_sort`` and a
    plain ``<``; a key-value sort (``lax.sort_key_val``) goes through a compiled comparator
    and per-element copies of both operands, several times slower (benchmarks/NOTES.md, "The
    shuffle's sort")."""
    n = k.shape[-1]
    assert k.dtype == jnp.uint32 and k.ndim == 1 and n <= 1 << bits and 2 * bits <= 32, (k.shape, k.dtype, bits)
    low_mask = np.uint32((1 << bits) - 1)
    place = jnp.arange(n, dtype=jnp.uint32)
    first = lax.sort((k << np.uint32(bits)) | place) & low_mask  # by the low digit, ties by index
    second = lax.sort(((k[first] >> np.uint32(32 - bits)) << np.uint32(bits)) | place) & low_mask
    return first[second].astype(jnp.int32)


def permutation(key, n: int):
    """``jax.random.permutation(key, n)``, the same integers for the same key (tests/test_determinism.py
    checks it against JAX's for many keys and sizes). JAX draws 32-bit keys (one round of
    draws for n up to about 1600, more above) and sorts ``arange(n)`` by each round's keys with
    a stable key-value sort; here each round's stable order comes from ``stable_argsort_u32``
    instead. Falls back to JAX's own above 2**16 elements (three radix passes would be needed)."""
    bits = max(1, (n - 1).bit_length())
    if 2 * bits > 32:
        return jax.random.permutation(key, n)
    rounds = math.ceil(3 * math.log(max(1, n)) / math.log(np.iinfo(np.uint32).max))
    x = jnp.arange(n)
    for _ in range(rounds):
        key, sub = jax.random.split(key)
        x = x[stable_argsort_u32(jax.random.bits(sub, (n,), jnp.uint32), bits)]
    return x
