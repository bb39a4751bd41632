"""A small interpreter of the part of Go's text/template that Ollama TEMPLATEs use, so tests can
execute a Modelfile's TEMPLATE (no Go toolchain on these machines): text, `{{ .Field }}`,
`{{ $.Field }}`, variables (`$x := ...`, `$x = ...`), `if / else if / else / end`,
`range $i, $v := ...`, the functions `eq`, `ne`, `and`, `or`, `not`, `len`, `slice`, parentheses,
and the `{{-` / `-}}` whitespace trimming. Anything else raises, so an unexpected construct fails
the test instead of rendering wrongly."""

from __future__ import annotations

import re
from typing import Any

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_TERM = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+')


def execute(template: str, data: dict[str, Any]) -> str:
    """The text `template` gives for `data` (the dot and `$`)."""
    parts = _ACTION.split(template)
    for i in range(1, len(parts), 2):  # trim markers act on the neighbouring text
        if parts[i].startswith("-"):
            parts[i - 1], parts[i] = parts[i - 1].rstrip(), parts[i][1:]
        if parts[i].endswith("-"):
            parts[i + 1], parts[i] = parts[i + 1].lstrip(), parts[i][:-1]
    nodes, end, _ = _parse(parts, 0)
    if end != len(parts):
        raise ValueError(f"unexpected {parts[end]!r}")
    out: list[str] = []
    _run(nodes, data, {"$": data}, out)
    return "".join(out)


def _parse(parts: list[str], at: int) -> tuple[list[Any], int, str]:
    """Nodes from `at` until an `else`/`end` action (returned with where it is), or the end."""
    nodes: list[Any] = []
    while at < len(parts):
        if at % 2 == 0:
            nodes.append(("text", parts[at]))
            at += 1
            continue
        action = parts[at].strip()
        word = action.split(" ", 1)[0]
        if word in ("end", "else"):
            return nodes, at, action
        if word == "if":
            branches, otherwise = [], []
            cond = action[3:]
            while True:
                body, at, stop = _parse(parts, at + 1)
                branches.append((cond, body))
                if stop.startswith("else if "):
                    cond = stop[len("else if "):]
                    continue
                if stop == "else":
                    otherwise, at, stop = _parse(parts, at + 1)
                if stop != "end":
                    raise ValueError(f"if without end: {action!r}")
                break
            nodes.append(("if", branches, otherwise))
        elif word == "range":
            match = re.fullmatch(r"range (\$\w+), (\$\w+) := (.+)", action)
            if match is None:
                raise ValueError(f"unsupported range: {action!r}")
            body, at, stop = _parse(parts, at + 1)
            if stop != "end":
                raise ValueError(f"range without end: {action!r}")
            nodes.append(("range", match[1], match[2], match[3], body))
        elif (match := re.fullmatch(r"(\$\w+) (:=|=) (.+)", action)) is not None:
            nodes.append(("set", match[1], match[3]))
        else:
            nodes.append(("out", action))
        at += 1
    return nodes, at, ""


def _run(nodes: list[Any], dot: Any, names: dict[str, Any], out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "out":
            out.append(str(_eval(node[1], dot, names)))
        elif kind == "set":
            names[node[1]] = _eval(node[2], dot, names)
        elif kind == "if":
            for cond, body in node[1]:
                if _true(_eval(cond, dot, names)):
                    _run(body, dot, names, out)
                    break
            else:
                _run(node[2], dot, names, out)
        elif kind == "range":
            for i, item in enumerate(_eval(node[3], dot, names)):
                names[node[1]], names[node[2]] = i, item
                _run(node[4], item, names, out)


def _eval(expr: str, dot: Any, names: dict[str, Any]) -> Any:
    terms = _TERM.findall(expr)
    value, rest = _call(terms, dot, names)
    if rest:
        raise ValueError(f"cannot evaluate {expr!r}")
    return value


_FUNCS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "len": len, "not": lambda a: not _true(a),
          "slice": lambda a, i: a[i:], "and": lambda *a: next((x for x in a if not _true(x)), a[-1]),
          "or": lambda *a: next((x for x in a if _true(x)), a[-1])}


def _call(terms: list[str], dot: Any, names: dict[str, Any]) -> tuple[Any, list[str]]:
    """A function call with its arguments, or one operand; returns it and the terms after it."""
    if terms and terms[0] in _FUNCS:
        args, rest = [], terms[1:]
        while rest and rest[0] != ")":
            arg, rest = _operand(rest, dot, names)
            args.append(arg)
        return _FUNCS[terms[0]](*args), rest
    return _operand(terms, dot, names)


def _operand(terms: list[str], dot: Any, names: dict[str, Any]) -> tuple[Any, list[str]]:
    term, rest = terms[0], terms[1:]
    if term == "(":
        value, rest = _call(rest, dot, names)
        if not rest or rest[0] != ")":
            raise ValueError("unbalanced parentheses")
        return value, rest[1:]
    if term.startswith('"'):
        return bytes(term[1:-1], "utf-8").decode("unicode_escape"), rest
    if term.isdigit():
        return int(term), rest
    if term.startswith("$."):
        return names["$"][term[2:]], rest
    if term.startswith("$"):
        return names[term], rest
    if term.startswith("."):
        return dot[term[1:]], rest
    raise ValueError(f"unsupported term {term!r}")


def _true(value: Any) -> bool:
    return bool(value)
