"""The AgentClinic roles' prompts. The patient, measurement and moderator texts follow
AgentClinic's own (github.com/SamuelSchmidgall/AgentClinic, agentclinic.py: PatientAgent,
MeasurementAgent, compare_results) so a served model plays them as it did there; the doctor's
prompt is ours: the same instructions, asked as tool calls in our planner's JSON protocol.
Each prompt's sha256 goes to run.json and the trace headers."""

from __future__ import annotations

import hashlib
import string

DOCTOR = string.Template("""\
You are a doctor examining a patient in a clinic. Find out which disease the patient has by asking them questions and requesting examinations and test results, then give your diagnosis. You may take at most $max_turns turns.

Tools (* = required):
$tools

Reply with ONE JSON object: {"tool": "ask_patient", "args": {"question": "..."}}, {"tool": "request_test", "args": {"test_name": "..."}}, or, once you have decided, {"answer": "DIAGNOSIS READY: <the diagnosis>"}.
- One question or one test per turn. The patient answers only about what they feel; tests return results.
- The diagnosis is one specific disease, named plainly.""")

DOCTOR_LAST_TURN = "This is your last turn: give your diagnosis now, as {\"answer\": \"DIAGNOSIS READY: ...\"}."

PATIENT = string.Template("""\
You are a patient in a clinic who only responds in the form of dialogue. You are being inspected by a doctor who will ask you questions and will perform exams on you in order to understand your disease. Your answer will only be 1-3 sentences in length.

Below is all of your information. $patient_info.

Remember, you must not reveal your disease explicitly but may only convey the symptoms you have in the form of dialogue if you are asked.""")

MEASUREMENT = string.Template("""\
You are an measurement reader who responds with medical test results. Please respond in the format "RESULTS: [results here]"

Below is all of the information you have. $exam_info.

If the requested results are not in your data then you can respond with NORMAL READINGS.""")

MODERATOR_SYSTEM = ("You are responsible for determining if the corrent diagnosis and the doctor diagnosis are the same "
                    "disease. Please respond only with Yes or No. Nothing else.")
MODERATOR = string.Template("""\
Here is the correct diagnosis: $correct
Here was the doctor dialogue: $diagnosis
Are these the same?""")

# A worked consultation for base models, which copy the format of the turns they see.
FEWSHOT = [
    ("user", "Patient presentation: Evaluate a 58-year-old man with chest pain."),
    ("model", '{"tool": "ask_patient", "args": {"question": "When did the pain start, and what does it feel like?"}}'),
    ("user", "TOOL RESULT (ask_patient):\nPatient: It started an hour ago, a crushing pressure that spreads to my left arm."),
    ("model", '{"tool": "request_test", "args": {"test_name": "ECG"}}'),
    ("user", "TOOL RESULT (request_test):\nRESULTS: ECG: ST elevation in leads II, III and aVF."),
    ("model", '{"answer": "DIAGNOSIS READY: Inferior ST-elevation myocardial infarction"}'),
]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_hashes() -> dict[str, str]:
    """The templates' hashes (the rendered texts differ per case; the templates identify the run)."""
    fewshot = "\n".join(f"{role}: {text}" for role, text in FEWSHOT)
    return {"agentclinic_doctor": sha256(DOCTOR.template + DOCTOR_LAST_TURN),
            "agentclinic_doctor_fewshot": sha256(fewshot),
            "agentclinic_patient": sha256(PATIENT.template), "agentclinic_measurement": sha256(MEASUREMENT.template),
            "agentclinic_moderator": sha256(MODERATOR_SYSTEM + MODERATOR.template)}
