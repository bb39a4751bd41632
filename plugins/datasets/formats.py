"""The input formats `prepare` understands and their normalised records.

Normalised records, one per row (what `tunelog.plugins.common.data` reads back):

    chat        {"messages": [{"role": "system|user|assistant|tool", "content": str}, ...], "tools": [...]?}
    text        {"text": str}
    preference  {"prompt": [messages], "chosen": str, "rejected": str}
    kto         {"prompt": [messages], "completion": str, "label": bool}
    prompt      {"prompt": [messages], <other columns as they are, e.g. "answer">}

alpaca, sharegpt and messages rows all become chat records. Field names below are canonical;
the `columns` parameter maps a canonical name (or a LLaMA-Factory `dataset_info` name, see
`ALIASES`) to the column that holds it in the user's data, and `tags` names the keys and role
values of sharegpt turns.

Preference pairs come in three shapes: prompt/chosen/rejected (text or message lists, as TRL);
a sharegpt `conversations` or OpenAI `messages` prompt with `chosen`/`rejected` answer objects
(LLaMA-Factory); or only `chosen`/`rejected` conversations that share their prompt turns (TRL's
implicit prompt). KTO rows hold one answer and a boolean label (`label`, or LLaMA-Factory's
`kto_tag`) with a prompt/completion or a conversation ending in the answer. Prompt rows (GRPO's
online RL) hold a `prompt` and any other columns, e.g. a reference `answer`, which reach the
reward functions as they are; a column that holds an answer to train on is refused there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .problems import kind_of as _kind

FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alpaca": (("instruction", "output"), ("input", "system", "history")),
    "sharegpt": (("conversations",), ("system", "tools")),
    "messages": (("messages",), ("tools",)),
    "text": (("text",), ()),
    "preference": (("chosen", "rejected"), ("prompt", "conversations", "messages", "system")),
    "kto": (("label",), ("prompt", "completion", "conversations", "messages", "system")),
    "prompt": (("prompt",), ("system",)),
}
"""Format -> (required fields, optional fields)."""

FORMATS = tuple(FIELDS)
KIND = {"alpaca": "chat", "sharegpt": "chat", "messages": "chat", "text": "text", "preference": "preference",
        "kto": "kto", "prompt": "prompt"}
"""Format -> kind of normalised record it produces."""
CANONICAL = tuple(sorted({f for req, opt in FIELDS.values() for f in req + opt}))
ALIASES: dict[str, tuple[str, ...]] = {
    "prompt": ("instruction", "prompt"), "query": ("input",), "response": ("output",),
    "messages": ("conversations", "messages"), "kto_tag": ("label",),
}
"""LLaMA-Factory `dataset_info` column names -> the canonical fields they stand for."""
MAPPABLE = tuple(sorted({*CANONICAL, *ALIASES}))
TAGS: dict[str, str | None] = {
    "role_tag": None, "content_tag": None, "user_tag": "user", "assistant_tag": "assistant",
    "observation_tag": "tool", "function_tag": "assistant", "system_tag": "system",
}
"""LLaMA-Factory `tags`: the keys of a turn (role_tag, content_tag) and the role value each tag names."""
STAGES = {"preference": "--stage dpo, --stage orpo or --stage simpo", "kto": "--stage kto", "prompt": "--stage grpo"}
"""Training stages that consume a non-supervised kind of record."""
STAGE_KINDS = {"sft": ("chat", "text"), "dpo": ("preference",), "orpo": ("preference",), "simpo": ("preference",),
               "kto": ("kto",), "grpo": ("prompt",)}
"""The kinds of record each stage of lora_trainer.train trains on (its `stage` parameter)."""
ANSWER_COLUMNS = ("chosen", "rejected", "completion", "messages", "conversations", "text", "output", "label")
"""Columns a prompt row must not have: they hold answers (or labels) that belong to other stages."""


def expand_columns(columns: Mapping[str, str]) -> dict[str, str]:
    """The mapping by canonical field: LLaMA-Factory names fan out to the fields they stand for;
    a canonical name given explicitly wins over an alias."""
    out: dict[str, str] = {}
    for key, column in columns.items():
        for field in ALIASES.get(key, (key,)):
            if field not in columns or field == key:
                out[field] = column
    return out

ROLES = {
    "system": "system", "developer": "system",
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "chatgpt": "assistant",
    "function_call": "assistant",
    "tool": "tool", "observation": "tool", "function": "tool", "ipython": "tool",
}
"""Speaker names seen in sharegpt / OpenAI data -> normalised role."""


class Row:
    """One raw row seen through the column mapping: `get` by canonical name, `name` for messages."""

    def __init__(self, raw: Mapping[str, Any], mapping: Mapping[str, str], tags: Mapping[str, str] | None = None):
        self.raw = raw
        self.mapping = mapping
        self.tags = dict(tags or {})
        self.errors: list[str] = []

    def name(self, field: str) -> str:
        return self.mapping.get(field, field)

    def get(self, field: str) -> Any:
        return self.raw.get(self.name(field))

    def error(self, field: str, message: str) -> None:
        self.errors.append(f"field '{field}' {message}")

    def text(self, field: str, *, required: bool = True) -> str | None:
        """A string field; a missing or empty optional field is None."""
        value = self.get(field)
        if value is None or (not required and value == ""):
            if required:
                self.error(self.name(field), "is missing")
            return None
        if not isinstance(value, str):
            self.error(self.name(field), f"must be a string, got {_kind(value)}")
            return None
        if required and not value.strip():
            self.error(self.name(field), "is empty")
            return None
        return value

    def structured(self, field: str, *, text_ok: bool = False) -> Any:
        """A list/object field; CSV cells and many datasets carry these as JSON text. With `text_ok`,
        text that does not parse is returned as it is (a prompt may well start with a bracket)."""
        value = self.get(field)
        if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError as e:
                if not text_ok:
                    self.error(self.name(field), f"is not valid JSON ({e.msg} at column {e.colno})")
                    return None
        return value


def detect(columns: list[str], first: Mapping[str, Any], mapping: Mapping[str, str]
           ) -> tuple[str | None, dict[str, str], str]:
    """Guess the format from the columns: (format or None, mapping to use, why)."""
    present = {f for f in CANONICAL if mapping.get(f, f) in columns}
    if {"chosen", "rejected"} <= present:
        shape = next((f for f in ("prompt", "conversations", "messages") if f in present), None)
        return "preference", dict(mapping), f"columns {shape + ', ' if shape else ''}chosen, rejected"
    label = labelled(columns, first, mapping)
    if label is not None:
        return "kto", {**mapping, "label": label}, f"boolean column {label}"
    if "conversations" in present:
        return "sharegpt", dict(mapping), "column conversations"
    if "messages" in present:
        turns = Row(first, mapping).structured("messages")
        if isinstance(turns, list) and turns and isinstance(turns[0], dict) and "from" in turns[0]:
            return "sharegpt", {**mapping, "conversations": mapping.get("messages", "messages")}, \
                "column messages with from/value turns"
        return "messages", dict(mapping), "column messages with role/content turns"
    if {"instruction", "output"} <= present:
        return "alpaca", dict(mapping), "columns instruction, output"
    if "text" in present:
        return "text", dict(mapping), "column text"
    if "prompt" in present:
        return "prompt", dict(mapping), "column prompt without answers"
    return None, dict(mapping), ""


def labelled(columns: list[str], first: Mapping[str, Any], mapping: Mapping[str, str]) -> str | None:
    """The column holding a KTO label (a boolean in the first row), or None."""
    for name in (mapping.get("label"), "label", "kto_tag"):
        if name and name in columns and isinstance(_boolean(first.get(name)), bool):
            return name
    return None


def _boolean(value: Any) -> Any:
    """A boolean, also from CSV text (`true` / `false`); anything else as it is."""
    return {"true": True, "false": False}.get(value.strip().lower(), value) if isinstance(value, str) else value


def normalise(fmt: str, row: Row) -> dict[str, Any] | None:
    """The normalised record of one row, or None with `row.errors` filled in."""
    record = _NORMALISERS[fmt](row)
    return None if row.errors else record


def _alpaca(row: Row) -> dict[str, Any]:
    instruction, output = row.text("instruction"), row.text("output")
    extra, system = row.text("input", required=False), row.text("system", required=False)
    messages = [{"role": "system", "content": system}] if system else []
    history = row.structured("history")
    if history is not None:
        if not isinstance(history, list):
            row.error(row.name("history"), f"must be a list of [question, answer] pairs, got {_kind(history)}")
            history = []
        for i, pair in enumerate(history):
            if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                row.error(f"{row.name('history')}[{i}]", "must be a [question, answer] pair of strings")
                continue
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = f"{instruction}\n{extra}" if extra else instruction
    return {"messages": [*messages, {"role": "user", "content": prompt}, {"role": "assistant", "content": output}]}


def _sharegpt(row: Row) -> dict[str, Any]:
    messages = _turns(row, "conversations", keys=("from", "value"))
    system = row.text("system", required=False)
    if system and messages is not None and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return _chat(row, messages, "conversations")


def _messages(row: Row) -> dict[str, Any]:
    return _chat(row, _turns(row, "messages", keys=("role", "content")), "messages")


def _chat(row: Row, messages: list[dict[str, str]] | None, field: str) -> dict[str, Any]:
    record: dict[str, Any] = {"messages": messages}
    if messages and not row.errors and not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        row.error(row.name(field), "has no assistant turn to learn from")
    tools = row.structured("tools")
    if isinstance(tools, dict):
        tools = [tools]
    if tools is not None and tools != []:
        if not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
            row.error(row.name("tools"), "must be a list of tool definitions (objects or JSON text)")
        else:
            record["tools"] = tools
    return record


def _turns(row: Row, field: str, *, keys: tuple[str, str]) -> list[dict[str, str]] | None:
    """Validated turns of a list field; accepts both from/value and role/content keys."""
    turns, name = row.structured(field), row.name(field)
    if turns is None:
        if row.get(field) is None:
            row.error(name, "is missing")
        return None
    if not isinstance(turns, list) or not turns:
        row.error(name, f"must be a non-empty list of turns, got {_kind(turns) if turns != [] else 'an empty list'}")
        return None
    out = []
    roles = {**ROLES, **{row.tags[t]: r for t, r in TAGS.items() if r and t in row.tags}}
    for i, turn in enumerate(turns):
        where = f"{name}[{i}]"
        if not isinstance(turn, dict):
            row.error(where, f"must be an object with {keys[0]}/{keys[1]}, got {_kind(turn)}")
            continue
        role_key, content_key = keys if keys[0] in turn else ("role", "content") if "role" in turn else ("from", "value")
        role_key, content_key = row.tags.get("role_tag", role_key), row.tags.get("content_tag", content_key)
        speaker, content = turn.get(role_key), _content(turn, content_key)
        role = roles.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            row.error(f"{where}.{role_key}", "is missing" if speaker is None else
                      f"has unknown role {speaker!r} (known: {', '.join(sorted(roles))}; name yours in the "
                      "`tags` of a --columns mapping file or the datasets.prepare `tags` parameter, e.g. "
                      '{"assistant_tag": "bot"})')
        elif not isinstance(content, str):
            row.error(f"{where}.{content_key}", "is missing" if content is None else
                      f"must be text, got {_kind(content)}")
        elif role == "assistant" and not content.strip() and speaker != "function_call" \
                and not turn.get("tool_calls"):
            row.error(f"{where}.{content_key}", "is empty (an assistant turn needs text)")
        else:
            out.append({"role": role, "content": content})
    return out


def _content(turn: Mapping[str, Any], key: str) -> Any:
    """Turn content as text: text parts are joined, a function call object or tool_calls become JSON."""
    content = turn.get(key)
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    if isinstance(content, dict):
        return json.dumps(content, ensure_ascii=False, default=str)
    if isinstance(turn.get("tool_calls"), list) and turn["tool_calls"] and (content is None or isinstance(content, str)):
        calls = [c.get("function", c) if isinstance(c, dict) else c for c in turn["tool_calls"]]
        text = json.dumps(calls, ensure_ascii=False, default=str)
        return f"{content}\n{text}" if content and content.strip() else text
    return content


def _text(row: Row) -> dict[str, Any]:
    return {"text": row.text("text")}


def _preference(row: Row) -> dict[str, Any]:
    prompt = _prompt(row, answer="chosen")
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    if chosen is not None and chosen == rejected:
        row.errors.append(f"fields '{row.name('chosen')}' and '{row.name('rejected')}' are identical")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _kto(row: Row) -> dict[str, Any]:
    label = _boolean(row.get("label"))
    if not isinstance(label, bool):
        row.error(row.name("label"), f"must be true or false, got {_kind(label)}")
    if row.get("completion") is not None:
        return {"prompt": _prompt(row, answer="completion"), "completion": row.text("completion"), "label": label}
    field = next((f for f in ("conversations", "messages") if row.get(f) is not None), "messages")
    turns = _turns(row, field, keys=("role", "content")) or []
    if turns and turns[-1]["role"] != "assistant":
        row.error(row.name(field), "must end with the assistant answer the label judges")
    return {"prompt": _with_system(row, turns[:-1]), "completion": turns[-1]["content"] if turns else None,
            "label": label}


def _prompt(row: Row, *, answer: str) -> list[dict[str, str]]:
    """The prompt turns of a preference or KTO row: a `prompt` (text or turns), a `conversations` /
    `messages` column, or the turns the `answer` conversation has before its last one."""
    field = next((f for f in ("prompt", "conversations", "messages") if row.get(f) is not None), None)
    if field is None:
        implicit = row.structured(answer)
        prompt = _turns(row, answer, keys=("role", "content"))[:-1] if isinstance(implicit, list) and implicit else []
        if not prompt:
            row.error(row.name("prompt"), "is missing" + (f" (and {row.name(answer)} has no turns before its answer)"
                                                          if isinstance(implicit, list) else ""))
        return _with_system(row, prompt or [])
    value = row.structured(field, text_ok=True)
    if isinstance(value, list):
        prompt = _turns(row, field, keys=("role", "content")) or []
        if prompt and prompt[-1]["role"] == "assistant":
            row.error(row.name(field), "must end with a user turn, not an assistant one")
    else:
        text = row.text(field)
        prompt = [{"role": "user", "content": text}] if text else []
    return _with_system(row, prompt)


def _with_system(row: Row, prompt: list[dict[str, str]]) -> list[dict[str, str]]:
    system = row.text("system", required=False)
    if system and not any(m["role"] == "system" for m in prompt):
        prompt.insert(0, {"role": "system", "content": system})
    return prompt


def _answer(row: Row, field: str) -> str | None:
    """A preference answer: text, an assistant message, or a conversation ending in one."""
    value = row.structured(field, text_ok=True)
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        speaker = value.get("role", value.get("from"))
        if not isinstance(speaker, str) or ROLES.get(speaker) != "assistant":
            row.error(row.name(field), "must be the assistant's answer (text, or a conversation ending in it)")
            return None
        value = value.get("content", value.get("value"))
        if not isinstance(value, str) or not value.strip():
            row.error(row.name(field), "has an assistant turn without text")
            return None
        return value
    return row.text(field)


def _prompt_only(row: Row) -> dict[str, Any]:
    """A prompt row: its turns, and every other column as it is (they reach the reward functions)."""
    answers = [c for c in ANSWER_COLUMNS if row.get(c) is not None]
    for column in answers:
        row.error(row.name(column), "holds an answer: prompt rows (stage grpo) hold only prompts and columns "
                                    "for the reward functions")
    if row.get("prompt") is None:
        row.error(row.name("prompt"), "is missing")
        return {}
    own = {row.name("prompt"), row.name("system")}
    return {"prompt": _prompt(row, answer="prompt"), **{k: v for k, v in row.raw.items() if k not in own}}


_NORMALISERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "messages": _messages, "text": _text,
                "preference": _preference, "kto": _kto, "prompt": _prompt_only}

