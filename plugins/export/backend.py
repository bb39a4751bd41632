"""Operations of the `export` plugin: a Hugging Face folder, GGUF, GGUF LoRA, and an Ollama folder.

Each operation checks what it needs first (the converters and llama-quantize are files on disk;
inputs are plain JSON), then converts. GGUF files are written only by llama.cpp's own converters
(`.convert`, from the pinned source `.tools` installs). Every output is stored as an artifact, so
the job records its sha256 and a node with the same inputs is reused from the cache.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import JobContext
from tunelog.plugins.common.adapters import is_sha, model_folder, read_adapter_config

from . import tools
from .convert import CONVERTER_TYPES, QUANTIZE_TYPES

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def hf(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Copy a model folder and complete it: generation config with the tokenizer's eos/pad, chat template."""
    folder = _full_model(ctx, inputs.get("model"))
    out = Path(ctx.workdir) / "hf"
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("tunelog_source.json"))
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(out)
    config = AutoConfig.from_pretrained(out)
    gen = GenerationConfig.from_pretrained(out) if (out / "generation_config.json").is_file() \
        else GenerationConfig.from_model_config(config)
    gen.eos_token_id = tokenizer.eos_token_id if gen.eos_token_id is None else gen.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id if gen.pad_token_id is None else gen.pad_token_id
    gen.save_pretrained(out)
    if not getattr(tokenizer, "chat_template", None):
        ctx.log("the tokenizer has no chat template: the export has none either")
    ctx.progress(1, 2, "storing the model folder")
    return _stored(ctx, "model", out)


def gguf(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """One GGUF file of the model, in `quant`."""
    quant = str(params.get("quant", "f16"))
    script, quantizer = _needs(quant)
    folder = _full_model(ctx, inputs.get("model"))
    out = Path(ctx.workdir) / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    _model_gguf(ctx, script, quantizer, folder, out / f"model-{quant}.gguf", quant=quant)
    ctx.progress(2, 3, "storing the GGUF")
    return _stored(ctx, "gguf", out)


def gguf_lora(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The adapter alone as a GGUF LoRA, for `--lora` on the base model's GGUF."""
    outtype = str(params.get("outtype", "f16"))
    script = _converter("convert_lora_to_gguf.py")
    adapter = inputs.get("adapter")
    if not is_sha(adapter):
        raise ValidationError(f"inputs.adapter: expected an adapter artifact hash, got {str(adapter)[:80]!r}")
    adapter_dir = ctx.artifact_path(adapter)
    cfg = read_adapter_config(adapter_dir, where="inputs.adapter")
    if cfg.get("peft_type") != "LORA":
        raise ValidationError(f"inputs.adapter: peft_type {cfg.get('peft_type')!r}: only LoRA adapters convert to "
                              "a GGUF LoRA")
    base_dir = _full_model(ctx, inputs.get("model"))
    from .convert import lora_to_gguf

    out = Path(ctx.workdir) / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    ctx.progress(0, 2, "converting the adapter")
    lora_to_gguf(script, adapter_dir, base_dir, out / f"adapter-{outtype}.gguf", outtype=outtype, log=ctx.log)
    ctx.progress(1, 2, "storing the GGUF LoRA")
    return _stored(ctx, "gguf", out)


def ollama(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A folder with the model's GGUF and a Modelfile derived from its chat template."""
    quant, name = str(params.get("quant", "q8_0")), str(params.get("name", "tunelog-model"))
    if not _NAME.match(name):
        raise ValidationError(f"params.name: {name!r} is not a valid Ollama model name (letters, digits, . _ : -)")
    script, quantizer = _needs(quant)
    folder = _full_model(ctx, inputs.get("model"))
    from transformers import AutoTokenizer

    from .modelfile import derive, modelfile

    derived = derive(AutoTokenizer.from_pretrained(folder))
    system = str(params.get("system") or derived.system)
    out = Path(ctx.workdir) / "ollama"
    out.mkdir(parents=True, exist_ok=True)
    gguf_name = f"model-{quant}.gguf"
    text = modelfile(gguf_name, derived, system=system)
    _model_gguf(ctx, script, quantizer, folder, out / gguf_name, quant=quant)
    (out / "Modelfile").write_text(text)
    stored = _stored(ctx, "ollama", out)
    command = f"ollama create {name} -f {Path(stored['report']['path']) / 'Modelfile'}"
    ctx.log(f"to use it: {command}")
    stored["report"].update(name=name, gguf=gguf_name, template=derived.format.name, system=system,
                            stop=list(derived.format.stop), command=command)
    return stored


def _stored(ctx: JobContext, port: str, folder: Path) -> dict[str, Any]:
    """Store `folder` as the artifact of output `port`; the report says where it lies and what it holds."""
    sha = ctx.store_artifact(port, folder)
    path = ctx.artifact_path(sha)
    return {port: sha, "report": {"path": str(path), "files": sorted(p.name for p in path.iterdir())}}


def _model_gguf(ctx: JobContext, script: Path, quantizer: Path | None, folder: Path, out: Path, *,
                quant: str) -> None:
    """Convert `folder` to `out`; k-quants go through an f16 file and llama-quantize."""
    from .convert import hf_to_gguf, quantize

    ctx.progress(0, 3, f"converting to GGUF ({quant})")
    if quant in CONVERTER_TYPES:
        hf_to_gguf(script, folder, out, outtype=quant, log=ctx.log)
        return
    assert quantizer is not None  # _needs refused the request otherwise
    f16 = Path(ctx.workdir) / "model-f16.gguf"
    hf_to_gguf(script, folder, f16, outtype="f16", log=ctx.log)
    ctx.progress(1, 3, f"llama-quantize {QUANTIZE_TYPES[quant]}")
    quantize(quantizer, f16, out, quant=quant, log=ctx.log)
    f16.unlink()


def _needs(quant: str) -> tuple[Path, Path | None]:
    """The converter, and llama-quantize for a k-quant; refused with the install command when absent."""
    script = _converter("convert_hf_to_gguf.py")
    if quant in CONVERTER_TYPES:
        return script, None
    binary = tools.binary("llama-quantize")
    if binary is None:
        raise ValidationError(f"params.quant: {quant} needs llama-quantize, which is not built in {tools.tools_dir()}",
                              hint=f"build it (~7 min on 2 cores): {tools.QUANTIZE_COMMAND}; or export "
                                   f"{'/'.join(CONVERTER_TYPES)}, which need no compiled tools")
    return script, binary


def _converter(name: str) -> Path:
    script = tools.converter(name)
    if script is None:
        raise ValidationError(f"llama.cpp's {name} is not installed in {tools.tools_dir()}",
                              hint=f"install the converters (downloads llama-cpp-python=={tools.VERSION}'s sdist, "
                                   f"~77 MB): {tools.INSTALL_COMMAND}")
    return script


def _full_model(ctx: JobContext, ref: Any) -> Path:
    """The local folder of a `model` input, refused unless it holds a config, weights and a tokenizer."""
    given = ctx.artifact_path(ref) if is_sha(ref) else Path(str(ref))
    if (given / "adapter_config.json").is_file():
        raise ValidationError("inputs.model: this is a peft adapter folder, not a model; merge it first "
                              "(tunectl export ADAPTER --model BASE does)")
    folder = model_folder(ctx, ref)
    missing = [what for what, ok in (
        ("config.json", (folder / "config.json").is_file()),
        ("safetensors weights", any(folder.glob("*.safetensors"))),
        ("tokenizer", (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file()),
    ) if not ok]
    if missing:
        raise ValidationError(f"inputs.model: {folder} is not a full model folder: no {', no '.join(missing)}")
    cfg = json.loads((folder / "config.json").read_text())
    if cfg.get("quantization_config"):
        raise ValidationError("inputs.model: the folder holds quantised weights "
                              f"({cfg['quantization_config'].get('quant_method', '?')}); export a full-precision model")
    return folder
