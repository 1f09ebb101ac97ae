"""What the CPU can do for the model's matmuls: the flags that decide oneDNN's fp32, bf16 and int8 kernels.

Example:

>>> features = cpu_features("model name : Example CPU\\nflags : fpu avx512f avx512_bf16\\n")
>>> features.name, features.native_bf16, features.describe(), features.bf16_window_length_multiple
('Example CPU', True, 'Example CPU (avx512f, avx512_bf16; without avx512_vnni, amx_bf16, amx_int8)', 8)
>>> amx = cpu_features("model name : AMX CPU\\nflags : avx512f avx512_bf16 avx512_vnni amx_bf16 amx_int8\\n")
>>> amx.describe(), amx.bf16_window_length_multiple
('AMX CPU (avx512f, avx512_bf16, avx512_vnni, amx_bf16, amx_int8)', 32)

A virtual machine may show a brand without its generation ("AMD EPYC"); the family and model tell it (AMD's family
26 is Zen 5, 25 Zen 3 and 4):

>>> cpu_features("cpu family : 26\\nmodel : 2\\nmodel name : AMD EPYC\\nflags : avx512f\\n").name
'AMD EPYC, family 26 model 2'
"""

from __future__ import annotations

import dataclasses
import platform

from tf_qa.defaults import WINDOW_LENGTH_MULTIPLES

#: The flags that decide which kernels TensorFlow's oneDNN runs (AVX-512 fp32, bf16 and int8 paths, AMX tiles).
FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


@dataclasses.dataclass(frozen=True)
class CpuFeatures:
    name: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        """bf16 matmuls in hardware (AVX512_BF16 or AMX); otherwise oneDNN emulates them, slower than fp32."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16"})

    @property
    def native_int8(self) -> bool:
        """int8 products on VNNI or AMX-INT8 (oneDNN's fast int8 paths)."""
        return bool(self.flags & {"avx512_vnni", "amx_int8"})

    @property
    def bf16_window_length_multiple(self) -> int:
        """The window padding a bf16 export serves fastest with here: with AMX, the export's default (its kernels
        are made per shape, so few lengths); without, 8 (measured on Zen 5: benchmarks/README.md)."""
        return WINDOW_LENGTH_MULTIPLES["bfloat16"] if "amx_bf16" in self.flags else 8

    def describe(self) -> str:
        """The name and which of ``FLAGS`` the CPU has: the line every printed figure carries."""
        has = [flag for flag in FLAGS if flag in self.flags]
        lacks = [flag for flag in FLAGS if flag not in self.flags]
        missing = f"; without {', '.join(lacks)}" if lacks else ""
        return f"{self.name} ({', '.join(has) or 'no AVX-512'}{missing})"


def cpu_features(cpuinfo: str | None = None) -> CpuFeatures:
    """This machine's CPU (``/proc/cpuinfo``, or the text given); no flags where that cannot be read."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as file:
                cpuinfo = file.read()
        except OSError:
            return CpuFeatures(platform.processor() or "unknown CPU", frozenset())
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown CPU")
    if fields.get("cpu family") and fields.get("model"):
        name += f", family {fields['cpu family']} model {fields['model']}"
    return CpuFeatures(name, frozenset(fields.get("flags", "").split()))
