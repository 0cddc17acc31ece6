"""What `/proc/cpuinfo` says of this machine's CPU (no TensorFlow import), and where its
memory allocator for long runs, tcmalloc, lives.

Example:

    cpu_name()                    # "AMD EPYC 9R14 96-Core Processor"
    "avx512_bf16" in cpu_flags()  # True on CPUs with bf16 dot products
"""

import platform

# Debian's and Ubuntu's libtcmalloc-minimal4 (docker/, `LD_PRELOAD` for training).
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def _cpuinfo_field(prefix):
    """The value of the first `/proc/cpuinfo` line starting with `prefix`, or `None`."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name():
    """The CPU model name, or what `platform` knows when `/proc/cpuinfo` is missing."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags():
    """The set of CPU feature flags (`avx2`, `avx512_bf16`, ...); empty when unknown."""
    return set((_cpuinfo_field("flags") or "").split())
