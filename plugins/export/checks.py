"""Up-front checks of export requests, run by the daemon at submit (manifest `checks:`).

A GGUF export needs llama.cpp's converter scripts, and a k-quant also needs the built
`llama-quantize`: without them the request is refused before anything is appended, with the
command that installs them. The operations check the same again in the job. No torch here.
"""

from __future__ import annotations

from typing import Any

from . import tools

Problems = list[tuple[str, str]]
_CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")


def gguf(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Problems, Problems]:
    return _gguf_problems(str(params.get("quant", "f16"))), []


def ollama(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Problems, Problems]:
    return _gguf_problems(str(params.get("quant", "q8_0"))), []


def gguf_lora(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Problems, Problems]:
    return _converter_problems("convert_lora_to_gguf.py"), []


def _gguf_problems(quant: str) -> Problems:
    problems = _converter_problems("convert_hf_to_gguf.py")
    if quant not in _CONVERTER_TYPES and tools.binary("llama-quantize") is None:
        problems.append(("quant", f"{quant} needs llama-quantize, which is not built in {tools.tools_dir()}; "
                                  f"build it (~7 min on 2 cores): {tools.QUANTIZE_COMMAND}, or export one of "
                                  f"{', '.join(_CONVERTER_TYPES)}"))
    return problems


def _converter_problems(name: str) -> Problems:
    if tools.converter(name) is not None:
        return []
    return [("tools", f"llama.cpp's {name} is not installed in {tools.tools_dir()}; install it with "
                      f"{tools.INSTALL_COMMAND} (downloads llama-cpp-python=={tools.VERSION}'s sdist, ~77 MB)")]
