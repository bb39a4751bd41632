"""An Ollama Modelfile derived from a model's own chat template.

A chat template is recognised by what it renders, not by its source text: the tokenizer renders
probe conversations (one user turn; user, assistant, user; the same with a system prompt), and a
known format matches when `render` (the Python twin of the Go TEMPLATE that `go_template` writes
for that format) gives the same text for each. Supported: ChatML (SmolLM2, Qwen), Llama 3 (3.0, and
3.1's fixed system header), Mistral ([INST], with or without a system prompt folded into the last
user turn), Gemma (no system role, or Gemma 3's system prompt folded into the first user turn) and
Phi-3. Anything else is refused with the reason: a wrong TEMPLATE would make Ollama prompt the model
in a format it was never trained on, silently.

A leading BOS token in the rendered text is left out of the TEMPLATE when the tokenizer adds it on
encoding: the converter then sets the GGUF's `tokenizer.ggml.add_bos_token`, and llama.cpp (and so
Ollama) adds it itself. A template that writes a BOS its tokenizer does not add keeps it as text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from tunelog.events.errors import ValidationError

SystemMode = Literal["turn", "first-user", "last-user", "none"]


@dataclass(frozen=True)
class Format:
    """One chat format: the text around each role's turn, the assistant's opening and the stop strings."""

    name: str
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str
    """What the generation prompt adds: the opening of the assistant's turn."""
    system: SystemMode
    """`turn`: a turn of its own; `first-user`/`last-user`: put before that user turn's text with a
    blank line; `none`: the template has no place for it."""
    system_turn: tuple[str, str] = ("", "")
    stop: tuple[str, ...] = ()


FORMATS = (
    Format("chatml", ("<|im_start|>user\n", "<|im_end|>\n"), ("<|im_start|>assistant\n", "<|im_end|>\n"),
           "<|im_start|>assistant\n", "turn", ("<|im_start|>system\n", "<|im_end|>\n"),
           ("<|im_start|>", "<|im_end|>")),
    Format("llama3", ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
           ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
           "<|start_header_id|>assistant<|end_header_id|>\n\n", "turn",
           ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
           ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    Format("mistral", ("[INST] ", " [/INST]"), ("", "</s>"), "", "none", stop=("[INST]", "[/INST]")),
    Format("mistral", ("[INST] ", "[/INST]"), (" ", "</s>"), "", "last-user", stop=("[INST]", "[/INST]")),
    Format("gemma", ("<start_of_turn>user\n", "<end_of_turn>\n"), ("<start_of_turn>model\n", "<end_of_turn>\n"),
           "<start_of_turn>model\n", "none", stop=("<start_of_turn>", "<end_of_turn>")),
    Format("gemma", ("<start_of_turn>user\n", "<end_of_turn>\n"), ("<start_of_turn>model\n", "<end_of_turn>\n"),
           "<start_of_turn>model\n", "first-user", stop=("<start_of_turn>", "<end_of_turn>")),
    Format("phi3", ("<|user|>\n", "<|end|>\n"), ("<|assistant|>\n", "<|end|>\n"), "<|assistant|>\n", "turn",
           ("<|system|>\n", "<|end|>\n"), ("<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>")),
)
"""The formats a Modelfile can be derived from (a family may have several spellings)."""
SUPPORTED = tuple(dict.fromkeys(f.name for f in FORMATS))


@dataclass(frozen=True)
class Derived:
    """What the Modelfile needs: the format, the template's default system prompt, and a fixed text the
    template always puts before the system prompt (Llama 3.1's date header), in a turn of its own."""

    format: Format
    system: str
    prefix: str = ""
    lead: str = ""
    """A BOS the template writes and llama.cpp would not add: kept at the TEMPLATE's start."""

    @property
    def template(self) -> str:
        return self.lead + go_template(self.format, prefix=self.prefix)


_S, _U1, _A1, _U2 = "SYSTEM-PROBE", "USER-PROBE-1", "ASSISTANT-PROBE-1", "USER-PROBE-2"
_ONE = [("user", _U1)]
_THREE = [("user", _U1), ("assistant", _A1), ("user", _U2)]


def derive(tokenizer: Any) -> Derived:
    """The format of the tokenizer's chat template and its default system prompt; refused when no
    supported format renders every probe conversation exactly as the template does."""
    hint = f"supported chat templates: {', '.join(SUPPORTED)}"
    if not getattr(tokenizer, "chat_template", None):
        raise ValidationError("inputs.model: the tokenizer has no chat template, so no Modelfile TEMPLATE can be "
                              "derived", hint=hint)
    try:
        one, three = _render(tokenizer, _ONE), _render(tokenizer, _THREE)
    except Exception as e:  # a template may raise on any probe
        raise ValidationError(f"inputs.model: the chat template fails on a user/assistant conversation: {e}",
                              hint=hint) from e
    try:
        with_system: str | None = _render(tokenizer, [("system", _S), *_THREE])
    except Exception:  # templates without a system role raise on one
        with_system = None
    bos = getattr(tokenizer, "bos_token", None) or ""
    starts = bool(bos) and all(t.startswith(bos) for t in (one, three, with_system) if t is not None)
    # SmolLM2's BOS is <|im_start|>, which every ChatML turn starts with: strip it only when it is a BOS.
    leads = [bos] if starts and _adds_bos(tokenizer) else ["", bos] if starts else [""]
    for lead in leads:
        for fmt in FORMATS:
            found = _match(fmt, *(_unlead(t, lead) for t in (one, three)), _unlead(with_system, lead))
            if found is not None:
                return replace(found, lead="" if lead and _adds_bos(tokenizer) else lead)
    raise ValidationError(f"inputs.model: unsupported chat template (it renders {(one or '')[:160]!r}); an Ollama "
                          f"TEMPLATE can be derived only from: {', '.join(SUPPORTED)}", hint=hint)


def _match(fmt: Format, one: str, three: str, with_system: str | None) -> Derived | None:
    """The Derived of `fmt` when it explains the three renderings, else None."""
    for default in _defaults(fmt, one):
        if fmt.system == "none":
            if three == render(fmt, default, _THREE) and with_system in (None, three):
                return Derived(fmt, "")
            continue
        if three != render(fmt, default, _THREE) or with_system is None:
            continue
        if with_system == render(fmt, _S, _THREE):
            return Derived(fmt, default)
        if fmt.system == "turn" and default and with_system == render(fmt, default + _S, _THREE):
            return Derived(fmt, "", prefix=default)  # a fixed header the template always writes
    return None


def _defaults(fmt: Format, one: str) -> list[str]:
    """The default system prompts under which `fmt` renders the one-turn probe as the template did."""
    if one == render(fmt, "", _ONE):
        return [""]
    if fmt.system == "none":
        return []
    left, _, right = render(fmt, "\0", _ONE).partition("\0")
    if one.startswith(left) and one.endswith(right) and len(one) > len(left) + len(right):
        return [one[len(left): len(one) - len(right)]]
    return []


def render(fmt: Format, system: str, turns: list[tuple[str, str]], *, prefix: str = "") -> str:
    """The text `go_template(fmt, prefix=prefix)` makes for a conversation with this system prompt
    (Ollama passes `.System` and the turns as `.Messages`); ends with the generation prompt."""
    out = []
    if fmt.system == "turn" and (system or prefix):
        out.append(fmt.system_turn[0] + prefix + system + fmt.system_turn[1])
    pending = system if fmt.system == "first-user" else ""
    for i, (role, content) in enumerate(turns):
        if role == "assistant":
            out.append(fmt.assistant[0] + content + fmt.assistant[1])
            continue
        if pending:
            content, pending = f"{pending}\n\n{content}", ""
        if fmt.system == "last-user" and system and i == len(turns) - 1:
            content = f"{system}\n\n{content}"
        out.append(fmt.user[0] + content + fmt.user[1])
    return "".join(out) + fmt.generation


def go_template(fmt: Format, *, prefix: str = "") -> str:
    """Ollama's Go TEMPLATE for `fmt`. It uses no whitespace-trimming markers, so every character
    outside `{{ }}` is output as written; `.Messages` holds system turns too, which it skips."""
    system = "{{ $.System }}\n\n"
    user_text = "{{ .Content }}"
    head = ""
    if fmt.system == "turn":
        turn = f"{fmt.system_turn[0]}{prefix}{{{{ .System }}}}{fmt.system_turn[1]}"
        head = turn if prefix else f"{{{{ if .System }}}}{turn}{{{{ end }}}}"
    elif fmt.system == "first-user":
        head = "{{ $system := .System }}"
        user_text = '{{ if $system }}{{ $system }}\n\n{{ end }}{{ .Content }}{{ $system = "" }}'
    elif fmt.system == "last-user":
        user_text = f"{{{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}}}{system}{{{{ end }}}}{{{{ .Content }}}}"
    return (f"{head}{{{{ range $i, $_ := .Messages }}}}"
            f'{{{{ if eq .Role "user" }}}}{fmt.user[0]}{user_text}{fmt.user[1]}'
            f'{{{{ else if eq .Role "assistant" }}}}{fmt.assistant[0]}{{{{ .Content }}}}{fmt.assistant[1]}'
            f"{{{{ end }}}}{{{{ end }}}}{fmt.generation}")


def modelfile(gguf_name: str, derived: Derived, *, system: str) -> str:
    """The Modelfile text for a model stored next to it as `gguf_name`."""
    template = derived.template
    if '"""' in template:
        raise ValidationError('inputs.model: the chat template contains """, which a Modelfile cannot quote')
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if system:
        if derived.format.system == "none":
            raise ValidationError(f"params.system: the model's {derived.format.name} chat template has no place for "
                                  "a system prompt; leave it empty")
        if '"""' in system:
            raise ValidationError('params.system: the system prompt must not contain """ (Modelfile quoting)')
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {_quoted(s)}" for s in derived.format.stop]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unlead(text: str | None, lead: str) -> Any:
    return text[len(lead):] if text is not None and lead else text


def _adds_bos(tokenizer: Any) -> bool:
    """Whether encoding plain text starts with the BOS token (what the GGUF's add_bos_token will say)."""
    ids = list(tokenizer("hello")["input_ids"])
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def _render(tokenizer: Any, turns: list[tuple[str, str]]) -> str:
    return str(tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in turns], tokenize=False,
                                             add_generation_prompt=True))
