"""Dataset artifacts to model features: the tokenization every built-in plugin shares.

A dataset artifact (written by the `datasets` plugin's `prepare`) is a folder:

    train.jsonl          normalised records, one JSON object a line
    validation.jsonl     only when a validation split was asked for
    meta.json            format, kind, counts, source and content sha256, seed, split

Records are one of these kinds:

    chat        {"messages": [{"role": "system|user|assistant|tool", "content": str}, ...], "tools": [...]?}
    text        {"text": str}
    preference  {"prompt": [messages], "chosen": str, "rejected": str}
    kto         {"prompt": [messages], "completion": str, "label": bool}
    prompt      {"prompt": [messages], <other columns, e.g. "answer">}   (GRPO: prompts only)

Tool definitions of a chat record reach the training text one of two ways, never dropped:
through the chat template's own `tools` support (`apply_chat_template(..., tools=...)`) when the
template renders them, else in a system message in this format (prepended to the record's own
system message, or first when it has none):

    You can call these tools. Each line defines one, as JSON:
    {"type": "function", "function": {"name": "weather", ...}}
    ...

`encode_dataset` counts what it does to the records (`Encoded.counts`: truncated, dropped and
why, tools put in a system message) so a trainer can log and report it.

A feature is `{"input_ids": [int], "labels": [int]}` (labels are -100 where no loss is taken;
transformers shifts them inside the model), plus `position_ids` once packed. Everything here is a
pure function of its inputs and the tokenizer passed in; torch loads only in `collate`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from tunelog.events.errors import NotFoundError, ValidationError

from .packing import IGNORE_INDEX, collate, pack

__all__ = ["IGNORE_INDEX", "Encoded", "assistant_spans", "collate", "counts_text", "encode_chat", "encode_dataset",
           "encode_text", "features_hash", "marked_pieces", "pack", "read_dataset", "read_meta", "record_kind", "splits",
           "template_takes_tools", "tools_in_system"]

Truncation = Literal["right", "left", "drop"]
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_PROBLEMS = 50
TOOLS_HEADER = "You can call these tools. Each line defines one, as JSON:"
"""First line of the system message that carries tool definitions for a template without `tools`."""
STAGES = {"preference": "--stage dpo, --stage orpo or --stage simpo", "kto": "--stage kto", "prompt": "--stage grpo"}
"""The training stages for records that are not supervised examples."""


class Encoded(list):  # type: ignore[type-arg]
    """Features (a list) plus `counts`: what encoding did to the records, per reason."""

    def __init__(self, features: Iterable[dict[str, Any]] = (), *, counts: dict[str, Any] | None = None):
        super().__init__(features)
        self.counts: dict[str, Any] = dict(counts or {})


def read_dataset(folder: Path, split: str = "train") -> list[dict[str, Any]]:
    """The normalised records of one split of a dataset artifact folder."""
    if not _SPLIT_NAME.match(split):
        raise ValidationError(f"not a split name: {split!r}", hint="splits are named like train or validation")
    path = Path(folder) / f"{split}.jsonl"
    if not path.is_file():
        raise NotFoundError(f"dataset {Path(folder).name[:12]} has no {split} split",
                            hint=f"its splits: {', '.join(splits(folder)) or 'none'}")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_meta(folder: Path) -> dict[str, Any]:
    """meta.json of a dataset artifact (format, kind, counts, hashes, split)."""
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise NotFoundError(f"{folder} is not a dataset artifact: it has no meta.json")
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def splits(folder: Path) -> list[str]:
    """Names of the splits a dataset artifact holds, e.g. ["train", "validation"]."""
    return sorted(p.stem for p in Path(folder).glob("*.jsonl"))


def record_kind(record: dict[str, Any]) -> str:
    """`chat`, `text`, `preference`, `kto` or `prompt`."""
    if "messages" in record:
        return "chat"
    if "text" in record:
        return "text"
    if {"prompt", "chosen", "rejected"} <= record.keys():
        return "preference"
    if {"prompt", "completion", "label"} <= record.keys():
        return "kto"
    if "prompt" in record and not {"chosen", "rejected", "completion"} & record.keys():
        return "prompt"
    raise ValidationError(f"not a normalised record (keys: {', '.join(record)})",
                          hint="read records of a dataset artifact made by the datasets plugin")


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]], *, tools: list[dict[str, Any]] | None = None
                    ) -> tuple[str, list[tuple[int, int]]]:
    """The conversation rendered by the tokenizer's chat template, and the character spans the
    assistant turns occupy in it (content plus the template's end-of-turn text).

    Found by rendering incrementally, which works for any template: the text up to each assistant
    turn with the generation prompt (`before`) must prefix the text including that turn (`upto`),
    which must prefix the whole conversation; the turn is `upto[len(before):]` minus trailing
    whitespace. Templates that render earlier turns differently (e.g. dropping reasoning) fall back
    to finding the turn's content in the full text, followed by the eos token when it is there.
    """
    full = _render(tokenizer, messages, tools=tools, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], tools=tools, generation_prompt=True, empty_ok=True)
        upto = _render(tokenizer, messages[: i + 1], tools=tools, generation_prompt=False)
        if upto.startswith(before) and full.startswith(upto) and len(before) >= cursor:
            start, end = len(before), max(len(before), len(upto.rstrip()))
        else:
            start, end = _find_turn(tokenizer, full, message["content"], cursor)
        spans.append((start, end))
        cursor = end
    return full, spans


def _render(tokenizer: Any, messages: list[dict[str, str]], *, tools: list[dict[str, Any]] | None,
            generation_prompt: bool, empty_ok: bool = False) -> str:
    if not messages and empty_ok:
        try:
            return _render(tokenizer, messages, tools=tools, generation_prompt=generation_prompt)
        except ValidationError:  # some templates refuse an empty conversation: nothing precedes the turn
            return ""
    kwargs = {"tools": tools} if tools else {}
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                             **kwargs)
    except Exception as e:  # jinja raises its own types (and templates raise on purpose) for unsupported input
        raise ValidationError(f"the chat template cannot render this conversation: {e}",
                              hint="check the roles and their order against the model's chat template") from e
    if not isinstance(text, str):
        raise ValidationError("the tokenizer's chat template did not return text")
    return text


def _find_turn(tokenizer: Any, full: str, content: str, cursor: int) -> tuple[int, int]:
    start = full.find(content, cursor) if content else -1
    if start < 0:
        raise ValidationError("cannot locate an assistant turn in the rendered conversation",
                              hint="the chat template changes assistant text; use train_on_prompt or another template")
    end = start + len(content)
    eos = getattr(tokenizer, "eos_token", None)
    if isinstance(eos, str) and eos:
        gap = len(full[end:]) - len(full[end:].lstrip())
        if full.startswith(eos, end + gap):
            end += gap + len(eos)
    return start, end


def template_takes_tools(tokenizer: Any) -> bool:
    """Whether the chat template renders tool definitions passed as `tools=` (many ignore them)."""
    probe = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "tunelog_probe_tool", "description": "probe",
                                               "parameters": {"type": "object", "properties": {}}}}]
    try:
        return "tunelog_probe_tool" in _render(tokenizer, probe, tools=tools, generation_prompt=False)
    except ValidationError:
        return False


def tools_in_system(messages: list[dict[str, str]], tools: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation with the tool definitions in its system message (the format in the module doc)."""
    block = "\n".join([TOOLS_HEADER, *(json.dumps(t, ensure_ascii=False) for t in tools)])
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{block}"}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]


def encode_chat(tokenizer: Any, record: dict[str, Any], *, max_length: int, train_on_prompt: bool = False,
                truncation: Truncation = "right", tools_in_template: bool | None = None) -> dict[str, list[int]] | None:
    """Tokenize one chat record with the tokenizer's chat template.

    Labels equal input_ids on assistant turns (including their end-of-turn token) and -100
    elsewhere; with `train_on_prompt` every token is a target. Longer than `max_length`: `right`
    keeps the start, `left` keeps the end, `drop` returns None. Tools go through the template
    when `tools_in_template` (found out when None), else into the system message.
    """
    if truncation not in ("right", "left", "drop"):
        raise ValidationError(f"unknown truncation {truncation!r}", hint="use right, left or drop")
    if record_kind(record) != "chat":
        raise ValidationError(f"encode_chat needs a chat record, got a {record_kind(record)} record")
    ids, labels = _encode_whole(tokenizer, record, train_on_prompt=train_on_prompt,
                                tools_in_template=tools_in_template)
    if len(ids) > max_length:
        if truncation == "drop":
            return None
        cut = slice(-max_length, None) if truncation == "left" else slice(0, max_length)
        ids, labels = ids[cut], labels[cut]
    return {"input_ids": ids, "labels": labels}


def marked_pieces(tokenizer: Any, messages: list[dict[str, str]], *, max_length: int, train_on_prompt: bool = False,
                  truncation: Truncation = "right") -> dict[str, Any]:
    """A conversation as the model will see it: the chat template's text cut into pieces of
    consecutive tokens that are all trained on or all not (`[text, trained]`), and the token counts.
    Tokens past `max_length` (on the side `truncation` cuts) come as pieces marked `"cut"`."""
    full, spans = assistant_spans(tokenizer, messages)
    ids, marks = _tokenize_marked(tokenizer, full, spans)
    kept = range(len(ids) - max_length, len(ids)) if truncation == "left" else range(0, max_length)
    pieces: list[list[Any]] = []
    for i, (token, mark) in enumerate(zip(ids, marks, strict=True)):
        state: Any = "cut" if i not in kept else bool(train_on_prompt or mark)
        if pieces and pieces[-1][1] == state:
            pieces[-1][2].append(token)
        else:
            pieces.append(["", state, [token]])
    out = [[tokenizer.decode(toks), state] for _, state, toks in pieces]
    return {"pieces": out, "tokens": len(ids), "trained_tokens": sum(1 for i, m in enumerate(marks) if i in kept
                                                                     and (train_on_prompt or m)),
            "truncated": len(ids) > max_length}


def _encode_whole(tokenizer: Any, record: dict[str, Any], *, train_on_prompt: bool,
                  tools_in_template: bool | None) -> tuple[list[int], list[int]]:
    messages, tools = record["messages"], record.get("tools") or None
    if tools and not (template_takes_tools(tokenizer) if tools_in_template is None else tools_in_template):
        messages, tools = tools_in_system(messages, tools), None
    full, spans = assistant_spans(tokenizer, messages, tools=tools)
    ids, in_turn = _tokenize_marked(tokenizer, full, spans)
    return ids, [t if (train_on_prompt or marked) else IGNORE_INDEX for t, marked in zip(ids, in_turn, strict=True)]


def _tokenize_marked(tokenizer: Any, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[bool]]:
    """Token ids of `text` (special tokens come from the template, none are added) and, per token,
    whether it overlaps an assistant span."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [_overlaps(a, b, spans) for a, b in enc["offset_mapping"]]
    ids: list[int] = []
    marks: list[bool] = []
    edges = sorted({0, len(text), *(p for span in spans for p in span)})
    for a, b in zip(edges, edges[1:], strict=False):  # slow tokenizers have no offsets: tokenize piecewise
        piece = tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
        ids += piece
        marks += [_overlaps(a, b, spans)] * len(piece)
    return ids, marks


def _overlaps(a: int, b: int, spans: list[tuple[int, int]]) -> bool:
    return any(a < end and max(b, a + 1) > start for start, end in spans)


def encode_text(tokenizer: Any, records: Iterable[dict[str, Any]], *, max_length: int) -> Encoded:
    """Raw text for continued pretraining: each text tokenized (with the tokenizer's own special
    tokens) and ended by eos, all concatenated and cut into chunks of `max_length`; labels =
    input_ids. A chunk may span two texts, as in standard causal-LM pretraining. A last chunk of
    one token has nothing to predict and is left out (counted as `tokens_left_out`)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    stream: list[int] = []
    texts = [record["text"] for record in records]
    for ids in tokenizer(texts, add_special_tokens=True)["input_ids"] if texts else []:
        ids = list(ids)
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        stream += ids
    chunks = [stream[i: i + max_length] for i in range(0, len(stream), max_length)]
    kept = [{"input_ids": c, "labels": list(c)} for c in chunks if len(c) > 1]
    return Encoded(kept, counts={"kind": "text", "records": len(texts), "chunks": len(kept), "max_length": max_length,
                                 "tokens_left_out": len(stream) - sum(len(c["input_ids"]) for c in kept)})


def encode_dataset(tokenizer: Any, records: Sequence[dict[str, Any]], *, max_length: int,
                   train_on_prompt: bool = False, truncation: Truncation = "right") -> Encoded:
    """Features for a whole split, with `counts` of what happened to the records: chat records
    longer than `max_length` are truncated (or dropped with `truncation="drop"`), records left
    with no target token are dropped; text records are joined and chunked. `used` counts every
    feature kept, `truncated` the kept ones that were cut. Preference and KTO
    records are refused: supervised training would learn their rejected or bad answers too."""
    kinds = {record_kind(r) for r in records}
    if len(kinds) > 1:
        raise ValidationError(f"records of several kinds in one split: {', '.join(sorted(kinds))}")
    if kinds == {"text"}:
        return encode_text(tokenizer, records, max_length=max_length)
    if truncation not in ("right", "left", "drop"):
        raise ValidationError(f"unknown truncation {truncation!r}", hint="use right, left or drop")
    for kind in kinds & STAGES.keys():
        what = {"preference": "preference pairs (chosen/rejected answers)", "kto": "rows labelled good or bad (KTO)",
                "prompt": "prompts without answers"}[kind]
        raise ValidationError(f"this dataset holds {what}, not supervised examples: supervised fine-tuning "
                              + ("has no answer to learn" if kind == "prompt" else
                                 "would learn the rejected answers as well as the chosen ones"),
                              hint=f"train it with {'online RL' if kind == 'prompt' else 'a preference stage'}: "
                                   f"{STAGES[kind]}")
    counts = {"kind": "chat", "records": len(records), "used": 0, "truncated": 0, "dropped_too_long": 0,
              "dropped_no_target": 0, "tools_in_system": 0, "max_length": max_length, "truncation": truncation}
    takes_tools = template_takes_tools(tokenizer) if any(r.get("tools") for r in records) else True
    out, problems = [], []
    for number, record in enumerate(records, start=1):
        if record_kind(record) != "chat":
            raise ValidationError(f"encode_dataset: record {number} is not a chat record")
        try:
            ids, labels = _encode_whole(tokenizer, record, train_on_prompt=train_on_prompt,
                                        tools_in_template=takes_tools)
        except ValidationError as e:
            problems.append((f"record {number}", e.message))
            continue
        counts["tools_in_system"] += bool(record.get("tools")) and not takes_tools
        if len(ids) > max_length:
            if truncation == "drop":
                counts["dropped_too_long"] += 1
                continue
            cut = slice(-max_length, None) if truncation == "left" else slice(0, max_length)
            whole, ids, labels = len(ids), ids[cut], labels[cut]
        else:
            whole = len(ids)
        if all(label == IGNORE_INDEX for label in labels):
            counts["dropped_no_target"] += 1
            continue
        counts["truncated"] += whole > max_length
        out.append({"input_ids": ids, "labels": labels})
    if problems:
        raise ValidationError.collect(f"{len(problems)} records cannot be encoded", problems[:_MAX_PROBLEMS])
    counts["used"] = len(out)
    return Encoded(out, counts=counts)


def counts_text(counts: dict[str, Any]) -> str:
    """One line for the log, parts that add up to the total: `1,204 records: 1,150 used · 40
    truncated to max_length 512 · 14 dropped (...)`; `used` counts the records used whole."""
    if counts.get("kind") == "text":
        left = f" (a last {counts['tokens_left_out']}-token piece left out)" if counts.get("tokens_left_out") else ""
        return (f"{counts['records']:,} texts joined and cut into {counts['chunks']:,} chunks of max_length "
                f"{counts['max_length']}{left}")
    parts = [f"{counts['records']:,} records: {counts['used'] - counts['truncated']:,} used"]
    kept = "the start" if counts.get("truncation") == "right" else "the end"
    for key, text in (("truncated", f"truncated to max_length {counts['max_length']} (kept {kept})"),
                      ("dropped_too_long", f"dropped (longer than max_length {counts['max_length']})"),
                      ("dropped_no_target", "dropped (no response token within max_length)")):
        if counts.get(key):
            parts.append(f"{counts[key]:,} {text}")
    line = " · ".join(parts)
    if counts.get("tools_in_system"):
        line += (f"; tools of {counts['tools_in_system']:,} went into a system message (the chat template "
                 "does not render tools)")
    return line


def features_hash(features: Iterable[dict[str, Any]]) -> str:
    """sha256 of tokenized features (keys and int values in order): equal iff the tokens are equal."""
    h = hashlib.sha256(b"tunelog-features-v1\n")
    count = 0
    for feature in features:
        for key in sorted(feature):
            values = feature[key]
            arr = array("q", values.tolist() if hasattr(values, "tolist") else values)
            if sys.byteorder == "big":
                arr.byteswap()
            h.update(f"{key}\0{len(arr)}\0".encode())
            h.update(arr.tobytes())
        h.update(b"\n")
        count += 1
    h.update(f"{count}".encode())
    return h.hexdigest()
