"""The router's labels, the promotion gate and shadow agreement (drift) all take their verdicts from
the configured grader: a right answer worded differently from the teacher's counts as agreement
where the grading rules say so, and as disagreement under exact match (the testbed default).

The teacher and student here are scripted backends on purpose: the test is about what happens to
two fixed wordings of one right answer, so the wordings must be fixed. The answers are written the
way R1 and SmolLM2-135M-Instruct write them."""

from __future__ import annotations

from distillserve.config import load_settings
from distillserve.distiller.evaluation import grade_set
from distillserve.distiller.examples import TrainingExample
from distillserve.distiller.gate import decide
from distillserve.monitoring.agreement import AgreementScorer, ExactAgreement
from distillserve.monitoring.drift import AgreementTracker
from distillserve.monitoring.graders import configured_graders
from distillserve.protocol.schema import ChatCompletionRequest
from distillserve.router.retraining import TeacherAnswer, relabel
from distillserve.serving.shadow import ShadowSampler
from distillserve.teacher_log.sink import NullSink
from tests.support.scripted_backend import Script, ScriptedBackend

QUESTION = "Weng earns $12 an hour for babysitting. Yesterday she did 50 minutes. How much did she earn?"
TEACHER = (
    "<think>\n$12 per hour is $0.2 per minute; 0.2 * 50 = 10.\n</think>\n"
    "Weng earns 12/60 = $0.20 per minute, so she earned 0.20 x 50 = $10.\n\n\\boxed{10}"
)
STUDENT = (
    "Great question! Weng earns $12 per hour, which is $0.20 per minute. "
    "For 50 minutes she earns 50 x $0.20 = $10.00. So Weng earned $10.00 yesterday."
)
MATH_RULES = {"rules": [{"task": "math", "grader": "final_answer"}]}


def graders(grading: dict | None = None):  # type: ignore[no-untyped-def]
    return configured_graders(load_settings(grading=grading or {}))


async def test_router_labels_a_differently_worded_right_answer_as_good() -> None:
    student = ScriptedBackend("student", script=Script(tokens=[STUDENT]))
    answers = [TeacherAnswer([{"role": "user", "content": QUESTION}], TEACHER, task="math")]
    by_rule = await relabel(student, answers, graders=graders(MATH_RULES))
    assert by_rule[0].student_quality == 1.0 and by_rule[0].student_as_good
    by_exact = await relabel(student, answers, graders=graders())
    assert by_exact[0].student_quality == 0.0 and not by_exact[0].student_as_good
    # No task tag, no rule: the default grader (exact) decides.
    untagged = [TeacherAnswer(answers[0].messages, TEACHER)]
    assert not (await relabel(student, untagged, graders=graders(MATH_RULES)))[0].student_as_good


def test_the_gate_promotes_on_differently_worded_right_answers() -> None:
    held_out = [
        TrainingExample(
            [{"role": "user", "content": QUESTION}], TEACHER, TEACHER.split("</think>\n")[1], task="math"
        )
    ] * 4
    live_answers = ["She earned $600."] * 4  # the live version is wrong
    cand_answers = [STUDENT] * 4

    def evaluation(selection):  # type: ignore[no-untyped-def]
        return {
            "candidate": {"heldout": grade_set(selection, held_out, cand_answers).as_dict()},
            "live": {"heldout": grade_set(selection, held_out, live_answers).as_dict()},
        }

    graded = evaluation(graders(MATH_RULES))
    assert graded["candidate"]["heldout"] == {"score": 1.0, "grader": "final_answer", "n": 4}
    assert decide(graded, promote_margin=0.05, max_regression=0.05).promote
    exact = evaluation(graders())
    assert exact["candidate"]["heldout"]["score"] == 0.0
    held = decide(exact, promote_margin=0.05, max_regression=0.05)
    assert not held.promote and "held-out gain +0.000" in held.reasons[0]


def chat(metadata: dict[str, str] | None = None) -> ChatCompletionRequest:
    extra = {"metadata": metadata} if metadata else {}
    return ChatCompletionRequest(model="auto", messages=[{"role": "user", "content": QUESTION}], **extra)


async def test_shadow_agreement_counts_a_differently_worded_right_answer() -> None:
    teacher = ScriptedBackend("teacher", script=Script(tokens=[TEACHER]))
    tracker = AgreementTracker(window=10)
    sampler = ShadowSampler(
        teacher, NullSink(), AgreementScorer(graders(MATH_RULES)), tracker, rate=1.0, log_pairs=False
    )
    sampler.maybe_shadow(chat({"task": "math"}), STUDENT, "m@v1")
    sampler.maybe_shadow(chat(), STUDENT, "m@v1")  # untagged: the default grader (exact)
    sampler.maybe_shadow(chat({"task": "math"}), "She earned $600.", "m@v1")
    await sampler.aclose()
    # Comparisons run as concurrent tasks: their order is not the order they were sampled in.
    assert sorted(tracker._adapters["m@v1"].pairs) == [False, False, True]
    exact = ShadowSampler(
        teacher, NullSink(), ExactAgreement(), AgreementTracker(10), rate=1.0, log_pairs=False
    )
    exact.maybe_shadow(chat({"task": "math"}), STUDENT, "m@v1")
    await exact.aclose()
    assert exact.tracker.agreement("m@v1") == 0.0
