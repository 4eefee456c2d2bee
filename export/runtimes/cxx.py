"""The C++ compiler Inductor uses (AOTInductor packages, ``torch.compile`` on the CPU)."""

from __future__ import annotations


def cxx() -> str:
    """The C++ compiler Inductor will use (raises when there is none)."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    return get_cpp_compiler()


def compiler() -> tuple[str | None, str]:
    """``(the compiler's path, "")``, or ``(None, the first line of why there is none)``."""
    try:
        return cxx(), ""
    except Exception as err:
        return None, (str(err).strip().splitlines() or [""])[0][:160]


def cxx_version() -> str | None:
    """The compiler's ``--version`` first line (None when it cannot be run)."""
    import subprocess

    try:
        out = subprocess.run([cxx(), "--version"], capture_output=True, text=True, timeout=20).stdout
    except Exception:
        return None
    return (out.strip().splitlines() or [None])[0]
