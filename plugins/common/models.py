"""Base models for the built-in plugins: find them, identify them, load them.

A model reference is one of
  - a local Hugging Face folder (config.json + weights + tokenizer),
  - a hub id such as `HuggingFaceTB/SmolLM2-135M-Instruct` (optionally `@revision`), fetched with
    `huggingface_hub.snapshot_download` into the usual HF cache,
  - a GGUF file: de-quantised by transformers and converted ONCE to a safetensors folder cached
    under `cache_dir/gguf/<sha256 of the file>`.

Heavy libraries (torch, transformers) are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from tunelog.events.errors import NotFoundError, PluginError, ValidationError
from tunelog.store.artifacts import sha256_file

Quantization = Literal["nf4", "fp4", "int8"] | None

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja",
                   "chat_template.json", "spiece.model")
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?(@[\w.\-/]+)?$")
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def resolve_model(ref: str, *, cache_dir: Path) -> Path:
    """A local folder holding the model `ref` names (a folder, a hub id or a GGUF file)."""
    path = Path(ref).expanduser()
    if path.is_file():
        if not is_gguf(path):
            raise ValidationError(f"model file {path} is not a GGUF file",
                                  hint="give a Hugging Face model folder, a hub id or a .gguf file")
        return convert_gguf(path, cache_dir=cache_dir)
    if path.is_dir():
        if (path / "config.json").exists():
            return path.resolve()
        ggufs = sorted(p for p in path.iterdir() if p.suffix == ".gguf")
        if len(ggufs) == 1:
            return convert_gguf(ggufs[0], cache_dir=cache_dir)
        raise ValidationError(f"model folder {path} has no config.json",
                              hint="a model folder needs config.json and weights (or exactly one .gguf file)")
    if ref.startswith((".", "/", "~")) or not _HUB_ID.match(ref):
        raise NotFoundError(f"model {ref!r} is neither an existing path nor a hub id")
    return _download(ref)


def _download(ref: str) -> Path:
    """Fetch a hub model (or find it in the HF cache when offline)."""
    from huggingface_hub import snapshot_download

    repo_id, _, revision = ref.partition("@")
    try:
        folder = snapshot_download(repo_id=repo_id, revision=revision or None, allow_patterns=_HUB_PATTERNS)
    except Exception as exc:  # huggingface_hub raises many types (offline, HTTP, missing repo)
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set and the model is not in the local HF cache" if offline else \
            "the hub could not be reached or has no such model"
        raise NotFoundError(
            f"cannot fetch model {repo_id!r} from the Hugging Face hub: {why} ({type(exc).__name__}: {exc})",
            hint="check the id and the network (unset HF_HUB_OFFLINE to allow downloads), "
                 "or give a local model folder or .gguf file instead") from exc
    return Path(folder)


def is_gguf(path: Path) -> bool:
    """True when the file starts with the GGUF magic bytes (artifact files have no suffix)."""
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def convert_gguf(path: Path, *, cache_dir: Path) -> Path:
    """De-quantise a GGUF file once into a safetensors folder cached by the file's sha256."""
    digest = sha256_file(path)
    final = Path(cache_dir) / "gguf" / digest
    if (final / "config.json").exists():
        return final
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".convert-"))
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        # transformers refuses to save a "gguf-quantised" model; the weights are plain floats by now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "tunelog_source.json").write_text(json.dumps({"gguf_sha256": digest, "gguf_name": path.name}))
        os.replace(tmp, final)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and final.exists():  # another process converted it meanwhile
            return final
        raise PluginError(f"cannot convert GGUF file {path}: {exc}",
                          hint="transformers must support the GGUF architecture; install the `gguf` package") from exc
    finally:
        hf_logging.enable_progress_bar()
    return final


def _tree_hash(root: Path, names: list[str]) -> str | None:
    if not names:
        return None
    h = hashlib.sha256()
    for rel in sorted(names):
        h.update(f"{rel}\0{sha256_file(root / rel)}\n".encode())
    return h.hexdigest()


def chat_template(folder: Path) -> str | None:
    """The chat template text a folder's tokenizer uses, if any."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").exists():
        return (folder / "chat_template.jinja").read_text()
    for name in ("chat_template.json", "tokenizer_config.json"):
        if (folder / name).exists():
            value = json.loads((folder / name).read_text()).get("chat_template")
            if value is not None:
                return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return None


def model_identity(folder: Path) -> dict[str, Any]:
    """What a run records about its base model: hashes of weights, tokenizer and chat template."""
    folder = Path(folder)
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    weights = [f for f in files if f.endswith(WEIGHT_SUFFIXES)]
    tokenizer = [f for f in files if Path(f).name in TOKENIZER_FILES]
    template = chat_template(folder)
    source = folder / "tunelog_source.json"
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    return {
        "path": str(folder),
        "model_type": config.get("model_type"),
        "weights_sha256": _tree_hash(folder, weights),
        "weight_files": sorted(weights),
        "config_sha256": sha256_file(folder / "config.json") if config else None,
        "tokenizer_sha256": _tree_hash(folder, tokenizer),
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
        "source": json.loads(source.read_text()) if source.exists() else None,
    }


def torch_dtype(name: str) -> Any:
    """`"bfloat16"`/`"bf16"` etc. to a torch dtype."""
    import torch

    if name not in _DTYPES:
        raise ValidationError(f"unknown dtype {name!r}", hint=f"use one of {sorted(set(_DTYPES.values()))}")
    return getattr(torch, _DTYPES[name])


def quantization_config(quantization: Quantization, *, double_quant: bool, compute_dtype: str) -> Any:
    """The bitsandbytes config for `nf4`, `fp4` or `int8` (None for no quantisation)."""
    if quantization is None:
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise PluginError(f"quantization {quantization!r} needs bitsandbytes", hint="pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization not in ("nf4", "fp4"):
        raise ValidationError(f"unknown quantization {quantization!r}", hint="use nf4, fp4, int8 or none")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantization,
                              bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=torch_dtype(compute_dtype))


def load_model(folder: Path, *, dtype: str = "float32", quantization: Quantization = None,
               double_quant: bool = False, compute_dtype: str = "bfloat16", device: str = "cpu",
               attn_implementation: str = "auto") -> Any:
    """A causal LM from a local folder, optionally quantised with bitsandbytes, on `device`."""
    from transformers import AutoModelForCausalLM

    qconfig = quantization_config(quantization, double_quant=double_quant, compute_dtype=compute_dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype)}
    if attn_implementation != "auto":
        kwargs["attn_implementation"] = attn_implementation
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if qconfig is None:
        model.to(device)
    disable_bnb_cpu_repacking(model)
    return model


def disable_bnb_cpu_repacking(model: Any) -> int:
    """Stop bitsandbytes from repacking 4-bit weights in place on AVX512-BF16 CPUs.

    Its first eval-mode no-grad forward (evaluate, generate) repacks the weights; afterwards those
    layers run through an op with no autograd kernel, so the backward passes no gradient through
    them and LoRA gradients come out wrong, silently. Must run before any forward. bitsandbytes
    decides per layer at construction from its CPU probe (`has_avx512bf16`), so this flag, not the
    CPU, is what the tests hold fixed.
    Returns how many layers were flagged.
    """
    if importlib.util.find_spec("bitsandbytes") is None:
        return 0
    import bitsandbytes as bnb

    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def load_tokenizer(folder: Path) -> Any:
    """The folder's tokenizer, with a pad token (eos when the model has none) and right padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValidationError(f"the tokenizer in {folder} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer
