"""llama.cpp's own converters and `llama-quantize`, taken from one pinned source.

The `llama-cpp-python` sdist on PyPI vendors llama.cpp: `convert_hf_to_gguf.py` (with its
`conversion/` package), `convert_lora_to_gguf.py` and gguf-py. `install` fetches that sdist with
pip and unpacks only those scripts into the tools folder; `install(..., quantize=True)` also
builds `llama-quantize` (and `llama-completion`, used by `make export-proof`) from the same source
with cmake. No llama.cpp code lives in this repository.

The tools folder is `$TUNELOG_LLAMA_CPP_DIR`, else `<TUNELOG_HOME>/tools/llama.cpp-<version>`.

    python -m tunelog.plugins.export.tools install [--quantize] [--sdist FILE] [--dest DIR]

Standard library only: the plugin's submit checks import this module.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.3.36"
"""The pinned `llama-cpp-python` release whose vendored llama.cpp we use."""
SDIST = f"llama_cpp_python-{VERSION}.tar.gz"
_VENDOR = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
_SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "LICENSE")
_PACKAGES = ("conversion/", "gguf-py/")
BINARIES = ("llama-quantize", "llama-completion")

INSTALL_COMMAND = "python -m tunelog.plugins.export.tools install"
"""Fetches the pinned sdist and unpacks the converters (`make llama-cpp-tools` runs it)."""
QUANTIZE_COMMAND = "python -m tunelog.plugins.export.tools install --quantize"
"""Also builds llama-quantize with cmake (~7 min on 2 cores; `make llama-quantize` runs it)."""


def tools_dir() -> Path:
    """Where the converters and binaries live (see the module docstring)."""
    given = os.environ.get("TUNELOG_LLAMA_CPP_DIR")
    if given:
        return Path(given).expanduser().resolve()
    home = os.environ.get("TUNELOG_HOME")  # the data dir, as the daemon resolves it
    base = Path(home).expanduser().resolve() if home else \
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "tunelog"
    return base / "tools" / f"llama.cpp-{VERSION}"


def converter(name: str, folder: Path | None = None) -> Path | None:
    """Path of `convert_hf_to_gguf.py` or `convert_lora_to_gguf.py` when installed."""
    path = (folder or tools_dir()) / name
    return path if path.is_file() and (path.parent / "gguf-py" / "gguf").is_dir() else None


def binary(name: str, folder: Path | None = None) -> Path | None:
    """Path of a built llama.cpp binary (`llama-quantize`, `llama-completion`) when present."""
    path = (folder or tools_dir()) / "bin" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def fetch_sdist(cache: Path) -> Path:
    """The pinned sdist, downloaded once with pip into `cache`."""
    path = cache / SDIST
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={VERSION}", "-d", str(cache)], check=True)
    if not path.is_file():
        raise FileNotFoundError(f"pip download did not produce {path}")
    return path


def unpack_converters(sdist: Path, dest: Path) -> Path:
    """Unpack only the converter scripts, their `conversion/` package and gguf-py into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".unpack-"))
    try:
        with tarfile.open(sdist) as tar:
            for member in tar:
                rel = member.name[len(_VENDOR):] if member.name.startswith(_VENDOR) else None
                if rel and member.isfile() and (rel in _SCRIPTS or rel.startswith(_PACKAGES)):
                    member.name = rel
                    tar.extract(member, tmp, filter="data")
        for item in tmp.iterdir():
            target = dest / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        (dest / "SOURCE.json").write_text(json.dumps({"package": "llama-cpp-python", "version": VERSION}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def build_binaries(sdist: Path, dest: Path, *, jobs: int = 2) -> list[Path]:
    """Build llama-quantize and llama-completion from the sdist's llama.cpp with cmake (CPU only)."""
    work = dest / "build-src"
    if not (work / "CMakeLists.txt").is_file():
        with tarfile.open(sdist) as tar:
            members = [m for m in tar if m.name.startswith(_VENDOR)]
            for m in members:
                m.name = m.name[len(_VENDOR):]
            tar.extractall(work, members=[m for m in members if m.name], filter="data")
    build = work / "build"
    subprocess.run(["cmake", "-S", str(work), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=OFF"], check=True)
    subprocess.run(["cmake", "--build", str(build), "--config", "Release", "-j", str(jobs), "--target", *BINARIES],
                   check=True)
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    out = []
    for name in BINARIES:
        shutil.copy2(build / "bin" / name, dest / "bin" / name)
        out.append(dest / "bin" / name)
    return out


def install(dest: Path | None = None, *, sdist: Path | None = None, quantize: bool = False) -> Path:
    """Install the converters (and with `quantize` the binaries) into `dest` (default: `tools_dir()`)."""
    dest = dest or tools_dir()
    sdist = sdist or fetch_sdist(dest.parent / "downloads")
    unpack_converters(sdist, dest)
    if quantize:
        build_binaries(sdist, dest, jobs=int(os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunelog.plugins.export.tools",
                                     description=f"Install llama.cpp's converters from llama-cpp-python=={VERSION}.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("install", help="fetch the pinned sdist and unpack the converter scripts")
    cmd.add_argument("--dest", type=Path, default=None, help=f"tools folder (default: {tools_dir()})")
    cmd.add_argument("--sdist", type=Path, default=None, help=f"use this {SDIST} instead of downloading it")
    cmd.add_argument("--quantize", action="store_true", help="also build llama-quantize and llama-completion")
    sub.add_parser("where", help="print the tools folder")
    args = parser.parse_args(argv)
    if args.command == "where":
        print(tools_dir())
        return 0
    dest = install(args.dest, sdist=args.sdist, quantize=args.quantize)
    print(f"llama.cpp tools ({SDIST}) in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
