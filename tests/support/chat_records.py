"""Teacher-log records of ordinary chat traffic (no testbed task), for the distiller's data tests.

The answers are written the way a reasoning teacher (DeepSeek-R1 behind the gateway) answers:
short chat replies, word problems with a trace (inline ``<think>…</think>`` or the API's separate
``reasoning_content`` field) and a ``\\boxed{}`` result, and a JSON extraction. They are hand
written in that style, not recorded model output.
"""

from __future__ import annotations

from distillserve.teacher_log.record import TeacherLogRecord, conversation_key

CHAT = [
    ("What is the capital of Australia?", "The capital of Australia is Canberra."),
    ("Translate 'good morning' into French.", "Bonjour."),
    ("Give me a synonym for 'happy'.", "Joyful."),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet."),
    ("Who wrote 'Pride and Prejudice'?", "Jane Austen wrote *Pride and Prejudice* (1813)."),
    ("What does HTTP stand for?", "HTTP stands for HyperText Transfer Protocol."),
    ("Name the largest ocean on Earth.", "The Pacific Ocean is the largest ocean on Earth."),
    ("How many minutes are in three hours?", "There are 180 minutes in three hours."),
    ("What is the boiling point of water at sea level in Celsius?", "100 °C."),
    ("Suggest a name for a grey cat.", "How about Smokey?"),
]

MATH = [
    (
        "A shop sells pencils at 3 for $1. How much do 12 pencils cost?",
        "12 pencils is 4 groups of 3. Each group costs $1, so 4 × $1 = $4.",
        "12 pencils cost $4.\n\n\\boxed{4}",
    ),
    (
        "Tom has 15 apples and gives away 6. How many are left?",
        "Start with 15, subtract the 6 he gives away: 15 - 6 = 9.",
        "Tom has 9 apples left.\n\n\\boxed{9}",
    ),
    (
        "What is 25% of 80?",
        "25% is one quarter. 80 / 4 = 20.",
        "25% of 80 is **20**.\n\n\\boxed{20}",
    ),
    (
        "A train travels 60 km in 45 minutes. What is its speed in km/h?",
        "45 minutes is 0.75 h. Speed = 60 / 0.75 = 80 km/h.",
        "The train's speed is 80 km/h.\n\n\\boxed{80}",
    ),
]

JSON = [
    (
        'Extract the name and age as JSON: "Maria is 34 and lives in Lisbon."',
        '{"name": "Maria", "age": 34}',
    ),
    (
        'Extract the city and country as JSON: "The conference is in Osaka, Japan."',
        '{"city": "Osaka", "country": "Japan"}',
    ),
]

MORE_CHAT = [
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("Convert 5 kilometres to metres.", "5 km = 5,000 m."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the *Mona Lisa*."),
    ("What is the square root of 144?", "The square root of 144 is 12."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("What language is spoken in Brazil?", "Portuguese is the official language of Brazil."),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at 32 °F."),
]


def _record(i: int, prompt: str, text: str, reasoning: str | None = None) -> TeacherLogRecord:
    messages = [{"role": "user", "content": prompt}]
    return TeacherLogRecord(
        request_id=f"chat-{i}",
        key=conversation_key(messages, None, None),
        messages=messages,
        teacher_model="deepseek-reasoner",
        teacher_backend="openai",
        response_text=text,
        reasoning_content=reasoning,
        finish_reason="stop",
        usage={"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60},
    )


def chat_records() -> list[TeacherLogRecord]:
    """16 records: chat answers, R1 math (half with inline ``<think>``, half ``reasoning_content``), JSON."""
    out = [_record(i, p, a) for i, (p, a) in enumerate(CHAT)]
    for j, (p, trace, a) in enumerate(MATH):
        i = len(out)
        out.append(_record(i, p, f"<think>\n{trace}\n</think>\n\n{a}") if j % 2 else _record(i, p, a, trace))
    out += [_record(len(out) + k, p, a) for k, (p, a) in enumerate(JSON)]
    return out


def more_chat_records() -> list[TeacherLogRecord]:
    """8 further chat records (a later batch), disjoint from ``chat_records``."""
    return [_record(100 + i, p, a) for i, (p, a) in enumerate(MORE_CHAT)]


def long_reasoning_record(i: int, prompt: str, answer: str, trace_words: int) -> TeacherLogRecord:
    """An R1-style answer whose ``<think>`` trace runs to ``trace_words`` words."""
    steps = " ".join(f"Step {k}: check the partial result again." for k in range(trace_words // 7 + 1))
    trace = " ".join(steps.split()[:trace_words])
    return _record(i, prompt, f"<think>\n{trace}\n</think>\n\n{answer}")
