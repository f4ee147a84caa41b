"""The grader's twin of kernel/lib/proof.hpp: 64-bit FNV-1a over token bytes then value bytes."""
import secrets

FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def proof(token, value):
    h = FNV_OFFSET_BASIS
    for byte in token.encode() + (value & MASK64).to_bytes(8, "little"):
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def new_token():
    """A fresh random token for one boot."""
    return secrets.token_hex(8)


def splitmix(seed, index):
    """Word @p index of the stream seeded by @p seed: the twin of the kernel's splitmix-based fill
    patterns (abi::temp_map_pattern, abi::swap_pattern in kernel/lib/abi.hpp)."""
    z = (seed + (index + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)
