"""An Ollama Modelfile derived from a model's own chat template.

The tokenizer's template is rendered on probe conversations and recognised by what it produces,
not by its source text, so any spelling of a supported format is accepted. Supported: ChatML
(`<|im_start|>{role}\\n{content}<|im_end|>\\n`, used by SmolLM2 and Qwen). Anything else is
refused with the reason: a wrong TEMPLATE would make Ollama prompt the model in a format it was
never trained on, silently.
"""

from __future__ import annotations

from typing import Any

from tunelog.events.errors import ValidationError

SUPPORTED = ("chatml",)
"""Chat template formats an Ollama Modelfile can be derived from."""

_S, _U, _A = "SYSTEM-PROBE", "USER-PROBE", "ASSISTANT-PROBE"
_CHATML_TURN = "<|im_start|>{role}\n{content}<|im_end|>\n"

CHATML_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}{{- if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}{{- end }}<|im_start|>assistant\n"
)
"""Ollama's Go template for ChatML: the system prompt, every turn, then the assistant's opening."""


def chat_format(tokenizer: Any) -> tuple[str, str]:
    """(format, default system prompt) of the tokenizer's chat template; refused when unsupported."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValidationError("inputs.model: the tokenizer has no chat template, so no Modelfile TEMPLATE can be "
                              "derived", hint=f"supported chat templates: {', '.join(SUPPORTED)}")
    try:
        full = _render(tokenizer, [("system", _S), ("user", _U), ("assistant", _A)], prompt=False)
        bare = _render(tokenizer, [("user", _U)], prompt=True)
    except Exception as e:  # a template may raise on a system turn or on any probe
        raise ValidationError(f"inputs.model: the chat template fails on a system/user/assistant conversation: {e}",
                              hint=f"supported chat templates: {', '.join(SUPPORTED)}") from e
    want = "".join(_CHATML_TURN.format(role=r, content=c) for r, c in (("system", _S), ("user", _U), ("assistant", _A)))
    user_turn = _CHATML_TURN.format(role="user", content=_U) + "<|im_start|>assistant\n"
    if full != want or not bare.endswith(user_turn):
        raise ValidationError(f"inputs.model: unsupported chat template (it renders {full[:120]!r}); an Ollama "
                              f"TEMPLATE can be derived only from: {', '.join(SUPPORTED)}")
    head = bare[: -len(user_turn)]
    system = ""
    if head:
        start, end = "<|im_start|>system\n", "<|im_end|>\n"
        if not (head.startswith(start) and head.endswith(end)):
            raise ValidationError(f"inputs.model: the chat template adds {head[:120]!r} before the first user turn, "
                                  "which is not a ChatML system turn")
        system = head[len(start): -len(end)]
    return "chatml", system


def modelfile(gguf_name: str, *, system: str, stop: list[str]) -> str:
    """The Modelfile text for a ChatML model stored next to it as `gguf_name`."""
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{CHATML_TEMPLATE}"""']
    if system:
        if '"""' in system:
            raise ValidationError('params.system: the system prompt must not contain """ (Modelfile quoting)')
        lines.append(f'SYSTEM """{system}"""')
    lines += [f'PARAMETER stop "{s}"' for s in stop]
    return "\n".join(lines) + "\n"


def _render(tokenizer: Any, turns: list[tuple[str, str]], *, prompt: bool) -> str:
    return str(tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in turns], tokenize=False,
                                             add_generation_prompt=prompt))
