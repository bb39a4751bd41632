"""Ollama Modelfiles derived from chat templates of the ChatML, Llama 3, Mistral, Gemma and Phi-3
families, and refusals of templates that match none. Each tokenizer is built on the fly (a word-level
vocabulary with the family's special tokens), saved with its template and loaded back through
`AutoTokenizer.from_pretrained`; the templates are written here in the shape the families' own
tokenizer configs have (BOS from the template, `| trim`, role checks that raise). The Modelfile's
TEMPLATE is executed with a small Go text/template interpreter (tests/support/gotemplate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.gotemplate import execute
from tunelog.events.errors import ValidationError
from tunelog.plugins.export.modelfile import derive, go_template, modelfile, render

pytest.importorskip("transformers")

SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + SMOL_DEFAULT + "<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
LLAMA31_HEADER = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
LLAMA31 = (
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\n\n' }}{{- 'Cutting Knowledge Date: December 2023\n' }}"
    "{{- 'Today Date: 26 Jul 2024\n\n' }}{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + "
    "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}")
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
MISTRAL_V3 = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\n\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}{%- endif %}{%- endfor %}")
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
GEMMA3 = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}")
PHI3 = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")
ALPACA = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + "
    "'\n\n' }}{% else %}{{ '### Response:\n' + message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}")
CHATML_NEAR_MISS = CHATML.replace("'<|im_end|>' + '\n'", "'<|im_end|>'")  # no newline after a turn

FAMILIES: dict[str, tuple[str, str | None, str | None, bool]] = {
    # name: (template, bos token, eos token, whether encoding adds the BOS)
    "chatml": (CHATML, "<|im_start|>", "<|im_end|>", False),  # SmolLM2's BOS is <|im_start|>, never added
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>", True),
    "llama3.1": (LLAMA31, "<|begin_of_text|>", "<|eot_id|>", True),
    "mistral": (MISTRAL, "<s>", "</s>", True),
    "mistral-v3": (MISTRAL_V3, "<s>", "</s>", True),
    "gemma": (GEMMA, "<bos>", "<eos>", True),
    "gemma3": (GEMMA3, "<bos>", "<eos>", True),
    "phi3": (PHI3, "<s>", "<|endoftext|>", False),  # the template writes a BOS its tokenizer does not add
}


def tokenizer(folder: Path, template: str, *, bos: str | None, eos: str | None, adds_bos: bool = False) -> Any:
    """A word-level tokenizer with `template` as its chat template, saved and loaded back."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    words = ["<unk>", *(t for t in (bos, eos) if t), "hello", "world"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if adds_bos and bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, 1)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token=bos, eos_token=eos,
                                 chat_template=template)
    hf.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def family(tmp_path: Path, name: str) -> Any:
    template, bos, eos, adds_bos = FAMILIES[name]
    return tokenizer(tmp_path / name, template, bos=bos, eos=eos, adds_bos=adds_bos)


def chat(tok: Any, messages: list[tuple[str, str]]) -> str:
    """The template's own text for a conversation."""
    return str(tok.apply_chat_template([{"role": r, "content": c} for r, c in messages], tokenize=False,
                                       add_generation_prompt=True))


def ollama_text(tok: Any, derived: Any, system: str, turns: list[tuple[str, str]]) -> str:
    """What llama.cpp reads from Ollama: the BOS it adds when the tokenizer adds one (the converter
    writes that into the GGUF as add_bos_token), then the TEMPLATE executed as Ollama does: the
    system prompt as `.System` and as a first system message in `.Messages`."""
    added = tok.bos_token if tok("hello")["input_ids"][0] == tok.bos_token_id else ""
    messages = [("system", system)] * bool(system) + turns
    data = {"System": system, "Messages": [{"Role": r, "Content": c} for r, c in messages]}
    text = execute(derived.template, data)
    assert text == derived.lead + render(derived.format, system, turns, prefix=derived.prefix)  # the Python twin
    return added + text


CONVERSATION = [("user", "What is the capital of France?"), ("assistant", "Paris."), ("user", "And of Italy?")]


@pytest.mark.parametrize(("name", "fmt", "stops"), [
    ("chatml", "chatml", {"<|im_start|>", "<|im_end|>"}),
    ("llama3", "llama3", {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}),
    ("llama3.1", "llama3", {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}),
    ("mistral", "mistral", {"[INST]", "[/INST]"}),
    ("mistral-v3", "mistral", {"[INST]", "[/INST]"}),
    ("gemma", "gemma", {"<start_of_turn>", "<end_of_turn>"}),
    ("gemma3", "gemma", {"<start_of_turn>", "<end_of_turn>"}),
    ("phi3", "phi3", {"<|end|>", "<|user|>", "<|assistant|>", "<|endoftext|>"}),
])
def test_each_family_is_recognised_and_its_template_prompts_as_the_model_was_trained(
        tmp_path: Path, name: str, fmt: str, stops: set[str]) -> None:
    tok = family(tmp_path, name)
    derived = derive(tok)
    assert derived.format.name == fmt
    assert stops <= set(derived.format.stop)
    # The TEMPLATE's text (its Python twin) equals the model's own template on a conversation the
    # probes never used, with the default system prompt and, where the family has one, with a given one.
    default = [("system", derived.system)] if derived.system else []
    assert ollama_text(tok, derived, derived.system, CONVERSATION) == chat(tok, default + CONVERSATION)
    if derived.format.system != "none":
        given = "Answer in one word."
        ours = ollama_text(tok, derived, given, CONVERSATION)
        assert ours == chat(tok, [("system", given), *CONVERSATION])
        assert given in ours


def test_default_system_prompts_and_fixed_headers_are_told_apart(tmp_path: Path) -> None:
    smol = derive(family(tmp_path, "chatml"))
    assert (smol.system, smol.prefix) == (SMOL_DEFAULT, "")
    llama31 = derive(family(tmp_path, "llama3.1"))
    assert (llama31.system, llama31.prefix) == ("", LLAMA31_HEADER)
    assert LLAMA31_HEADER + "{{ .System }}" in llama31.template  # written whether or not a system prompt is set
    assert derive(family(tmp_path, "llama3")).system == ""


def test_the_modelfile_has_the_template_system_and_stops(tmp_path: Path) -> None:
    derived = derive(family(tmp_path, "llama3"))
    text = modelfile("model-q8_0.gguf", derived, system="Be brief.")
    lines = text.splitlines()
    assert lines[0] == "FROM ./model-q8_0.gguf"
    assert f'TEMPLATE """{derived.template}"""' in text
    assert 'SYSTEM """Be brief."""' in text
    assert [line for line in lines if line.startswith("PARAMETER stop")] == [
        'PARAMETER stop "<|start_header_id|>"', 'PARAMETER stop "<|end_header_id|>"', 'PARAMETER stop "<|eot_id|>"']
    assert "<|begin_of_text|>" not in text  # llama.cpp adds the BOS itself


def test_a_bos_is_left_to_llama_cpp_only_when_the_tokenizer_adds_it(tmp_path: Path) -> None:
    assert derive(family(tmp_path, "chatml")).template.startswith("{{ if .System }}<|im_start|>system")
    assert derive(family(tmp_path, "llama3")).lead == ""
    assert "<|begin_of_text|>" not in derive(family(tmp_path, "llama3")).template
    phi3 = derive(family(tmp_path, "phi3"))
    assert phi3.lead == "<s>" and phi3.template.startswith("<s>{{ if .System }}<|system|>")


def test_the_go_template_of_chatml(tmp_path: Path) -> None:
    """The Go text itself, read by a person: the system turn when set, each turn by role, the opening."""
    derived = derive(family(tmp_path, "chatml"))
    assert go_template(derived.format) == (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ range $i, $_ := .Messages }}"
        '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
        '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n'
        "{{ end }}{{ end }}<|im_start|>assistant\n")


def test_a_system_prompt_for_a_template_without_one_is_refused(tmp_path: Path) -> None:
    derived = derive(family(tmp_path, "gemma"))
    assert derived.system == "" and "System" not in derived.template
    assert "SYSTEM" not in modelfile("m.gguf", derived, system="")
    with pytest.raises(ValidationError, match="params.system: the model's gemma chat template has no place"):
        modelfile("m.gguf", derived, system="Be brief.")


@pytest.mark.parametrize(("template", "why"), [
    (ALPACA, "unsupported chat template"),
    (CHATML_NEAR_MISS, "unsupported chat template"),
    ("{{ raise_exception('no chat here') }}", "fails on a user/assistant conversation: no chat here"),
])
def test_a_template_no_format_explains_is_refused_with_the_reason(tmp_path: Path, template: str, why: str) -> None:
    tok = tokenizer(tmp_path / "other", template, bos=None, eos="</s>")
    with pytest.raises(ValidationError, match=why) as err:
        derive(tok)
    assert "chatml, llama3, mistral, gemma, phi3" in str(err.value)


def test_a_tokenizer_without_a_chat_template_is_refused(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 1}, unk_token="<unk>"))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(tmp_path)
    with pytest.raises(ValidationError, match="has no chat template"):
        derive(AutoTokenizer.from_pretrained(tmp_path))


def test_the_template_interpreter_keeps_go_semantics() -> None:
    """The interpreter the checks above rely on: trimming, variables assigned inside range, else-if."""
    data = {"System": "S", "Messages": [{"Role": "system", "Content": "S"}, {"Role": "user", "Content": "a"},
                                        {"Role": "assistant", "Content": "b"}, {"Role": "user", "Content": "c"}]}
    assert execute("x  {{- .System -}}  \n y", data) == "xSy"
    once = '{{ $s := .System }}{{ range $i, $_ := .Messages }}{{ if eq .Role "user" }}[{{ $s }}{{ .Content }}]' \
           '{{ $s = "" }}{{ else if ne .Role "system" }}({{ .Content }}){{ else }}-{{ end }}{{ end }}'
    assert execute(once, data) == "-[Sa](b)[c]"
    last = '{{ range $i, $_ := .Messages }}{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}' \
           "{{ $i }}{{ end }}{{ end }}"
    assert execute(last, data) == "3"
    with pytest.raises(ValueError, match="unsupported"):
        execute("{{ template \"x\" }}", data)
