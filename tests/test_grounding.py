"""The question decides which filters, order and answer form a planner turn may use (agent/grounding.py).

Each case is one seen in a trace of the 1.5B embedded default on EHRQA questions."""

from __future__ import annotations

import pytest

from agent.grounding import denial_of_results


def test_date_filters_the_question_gives_no_ground_for_are_dropped():
    from langchain_core.messages import HumanMessage, SystemMessage

    from agent.grounding import ground_date_filters, question_turn
    from agent.protocol.types import ParsedOutput, ToolCall

    def search(**args):
        return ParsedOutput(kind="calls", calls=[ToolCall(name="search_records", args={"resource_type": "Condition", **args})])

    turn = HumanMessage("Question: Does she have asthma?\nReference date (today): 2020-02-02. Not a search filter.")
    assert question_turn([SystemMessage("s"), turn]) == ("Does she have asthma?", "2020-02-02")
    assert question_turn([HumanMessage("Question: Any asthma?")]) == ("Any asthma?", None)
    copied = search(code="asthma", date_from="2020-02-02", date_to="2020-02-02")
    note = ground_date_filters(copied, "Does she have asthma?", "2020-02-02")
    assert copied.calls[0].args == {"resource_type": "Condition", "code": "asthma", "date_to": "2020-02-02"}  # as of today
    assert note == "dropped search_records.date_from=2020-02-02: the question names no period"
    invented = search(code="HbA1c", date_from="2023-01-01", date_to="2023-12-31")   # "most recent": no period
    assert ground_date_filters(invented, "What was the most recent HbA1c?", None)
    assert "date_from" not in invented.calls[0].args
    period = search(date_from="2019-02-02", date_to="2020-02-02")                     # a named period: kept
    assert ground_date_filters(period, "How many visits in the last year?", "2020-02-02") is None
    from_today = search(date_from="2020-02-02")                                        # ... but never from today on
    assert "reference date is context" in ground_date_filters(from_today, "Any visits since 2019?", "2020-02-02")
    assert ground_date_filters(search(code="asthma"), "Asthma?", "2020-02-02") is None


def test_a_date_an_earlier_result_showed_is_kept_without_a_named_period():
    from agent.grounding import ground_date_filters
    from agent.protocol.types import ParsedOutput, ToolCall

    call = ParsedOutput(kind="calls", calls=[ToolCall(name="search_records", args={
        "resource_type": "Observation", "code": "height", "date_from": "2017-10-12", "date_to": "2017-10-12"})])
    seen = "Observation: 3 found, newest first\n| 2017-10-12 | Body Mass Index | 27.1 kg/m2 |"
    assert ground_date_filters(call, "When her BMI was last checked, what was her height?", "2018-03-23", seen) is None
    assert call.calls[0].args["date_from"] == "2017-10-12"
    invented = ParsedOutput(kind="calls", calls=[ToolCall(name="search_records", args={
        "resource_type": "Observation", "code": "height", "date_from": "2016-01-01"})])
    assert ground_date_filters(invented, "When her BMI was last checked, what was her height?", "2018-03-23", seen)
    assert "date_from" not in invented.calls[0].args


def test_status_and_category_filters_stay_only_when_the_question_asks_for_them():
    from agent.grounding import ground_filters, ground_status_category
    from agent.protocol.types import ParsedOutput, ToolCall
    from langchain_core.messages import HumanMessage

    def search(**args):
        return ParsedOutput(kind="calls", calls=[ToolCall(name="search_records", args=args)])

    # The traces' cases: each made-up filter hid the record that answered.
    last_rx = search(resource_type="MedicationRequest", code="clopidogrel", status="completed", category="medication")
    note = ground_status_category(last_rx, "When was clopidogrel last prescribed?")
    assert last_rx.calls[0].args == {"resource_type": "MedicationRequest", "code": "clopidogrel"}
    assert note == ("dropped search_records.status=completed, search_records.category=medication: "
                    "the question asks for no such filter")
    bmi = search(resource_type="Observation", code="bmi", status="final", category="laboratory")
    ground_status_category(bmi, "When the patient's BMI was last checked, what was their height?")
    assert set(bmi.calls[0].args) == {"resource_type", "code"}
    # ... and the filters a question does ask for stay.
    current = search(resource_type="MedicationRequest", code="ferrous sulfate", status="active", category="medication")
    ground_status_category(current, "Is the patient currently taking ferrous sulfate?")
    assert current.calls[0].args == {"resource_type": "MedicationRequest", "code": "ferrous sulfate", "status": "active"}
    # ... with the status the words mean (a holdout trace: "currently taking" searched as completed).
    completed = search(resource_type="MedicationRequest", code="naproxen", status="completed")
    assert "status=completed (the question means active)" in ground_status_category(
        completed, "Is the patient currently taking naproxen?")
    assert completed.calls[0].args["status"] == "active"
    resolved = search(resource_type="Condition", code="sinusitis", status="resolved")
    assert ground_status_category(resolved, "Has her sinusitis resolved?") is None
    for question, category in [("What were her latest labs?", "laboratory"), ("Show the last vitals", "vital-signs"),
                               ("How many emergency visits in 2013?", "EMER"), ("Any ER visits?", "emergency")]:
        kept = search(resource_type="Observation", category=category)
        assert ground_status_category(kept, question) is None, question
    # The combined guard reads the question and reference date from the messages.
    msgs = [HumanMessage("Question: Has he ever had asthma?\nReference date (today): 2020-02-02. Not a search filter.")]
    both = search(resource_type="Condition", code="asthma", date_from="2020-02-02", status="active")
    note = ground_filters(both, msgs)
    assert both.calls[0].args == {"resource_type": "Condition", "code": "asthma"}
    assert "date_from=2020-02-02" in note and "status=active" in note


def test_the_constrained_schema_leaves_out_the_filters_a_question_does_not_ask_for():
    from langchain_core.messages import AIMessage, HumanMessage

    from agent.grounding import unasked_filters
    from agent.protocol.schema import action_schema

    def turn(question, *results):
        return [HumanMessage(f"Question: {question}\nReference date (today): 2020-02-02. Not a search filter."),
                *results]

    schemas = [{"name": "search_records", "parameters": {"type": "object", "required": ["resource_type"], "properties": {
        "resource_type": {"type": "string"}, "code": {"type": "string"}, "date_from": {"type": "string"},
        "date_to": {"type": "string"}, "status": {"type": "string"}, "category": {"type": "string"}}}}]
    last_rx = unasked_filters(turn("When was clopidogrel last prescribed?"), schemas)
    assert sorted(last_rx) == ["search_records.category", "search_records.date_from", "search_records.date_to",
                               "search_records.status"]
    current = unasked_filters(turn("Is she currently taking metformin?"), schemas)
    assert "search_records.status" not in current and "search_records.category" in current
    assert "search_records.category" not in unasked_filters(turn("Her latest vital signs?"), schemas)
    assert "search_records.category" in unasked_filters(turn("Any medication for her asthma?"), schemas)
    assert "search_records.category" in unasked_filters(turn("The latest prescription for acute bronchitis?"), schemas)
    assert "search_records.category" not in unasked_filters(turn("Her last laboratory results?"), schemas)
    assert "search_records.category" not in unasked_filters(turn("Any medication allergies?"), schemas)
    assert "search_records.date_from" not in unasked_filters(turn("How many visits in 2013?"), schemas)
    # After a result, a date it showed may be searched (the guard judges it).
    later = turn("When her BMI was last checked, what was her height?", AIMessage("{}"),
                 HumanMessage("TOOL RESULT search_records:\n2017-10-12 | Body Mass Index"))
    assert "search_records.date_from" not in unasked_filters(later, schemas)
    # The schema then has no such property; required arguments are never left out.
    schema = action_schema(schemas, omit=last_rx + ["search_records.resource_type"])
    args = schema["anyOf"][0]["properties"]["args"]
    assert set(args["properties"]) == {"resource_type", "code"} and args["additionalProperties"] is False


def test_the_search_order_follows_first_or_last_in_the_question():
    from agent.grounding import ground_sort
    from agent.protocol.types import ParsedOutput, ToolCall

    def search(**args):
        return ParsedOutput(kind="calls", calls=[ToolCall(name="search_records", args={
            "resource_type": "MedicationRequest", "code": "oxycodone", **args})])

    first = search(sort="-date", limit=1)   # the trace's call: newest first, one row
    assert ground_sort(first, "When was oxycodone first prescribed?") == \
        "set search_records.sort=-date->date: the order the question asks for"
    assert first.calls[0].args["sort"] == "date"
    unsorted = search()
    ground_sort(unsorted, "What was her earliest HbA1c?")
    assert unsorted.calls[0].args["sort"] == "date"
    latest = search(sort="date")
    ground_sort(latest, "What is the latest ALT on record?")
    assert latest.calls[0].args["sort"] == "-date"
    assert ground_sort(search(), "What is the latest ALT?") is None          # newest first already
    assert ground_sort(search(sort="date"), "How many ALT results in 2015?") is None   # no order asked


def test_free_form_filters_get_the_same_judgement_as_the_named_ones():
    from agent.grounding import ground_free_filters
    from agent.protocol.types import ParsedOutput, ToolCall

    def search(filters):
        return ParsedOutput(kind="calls", calls=[ToolCall(name="search_records", args={
            "resource_type": "Condition", "code": "pharyngitis", "filters": filters})])

    # The traces' cases: the reference date and the banner's patient written into filters.
    today = search({"date": "2019-08-18"})
    assert ground_free_filters(today, "Has acute viral pharyngitis ever been recorded?", "2019-08-18")
    assert "filters" not in today.calls[0].args
    mixed = search({"date": "2019-08-18", "value-concept": "x"})
    note = ground_free_filters(mixed, "Has she had pharyngitis?", "2019-08-18")
    assert mixed.calls[0].args["filters"] == {"value-concept": "x"} and "filters.date=2019-08-18" in note
    patient = search({"patient": "Patient/p2"})          # the tool's to refuse (or ignore, if it is the bound one)
    assert ground_free_filters(patient, "Has she had pharyngitis?", None) is None
    assert patient.calls[0].args["filters"] == {"patient": "Patient/p2"}
    below = search({"date": "<2019-07-27"})
    ground_free_filters(below, "When did she first get the flu vaccine?", "2019-07-27")
    assert "filters" not in below.calls[0].args
    # A period the question names, or a date a result showed, stays; so does {} removal.
    period = search({"date": "ge2013"})
    assert ground_free_filters(period, "Any pharyngitis since 2013?", "2019-08-18") is None
    shown = search({"date": "2017-10-12"})
    assert ground_free_filters(shown, "Her height when her BMI was last checked?", "2018-01-01",
                               seen="2017-10-12 | Body Mass Index") is None
    empty = search({})
    assert ground_free_filters(empty, "Pharyngitis?", None) is None and "filters" not in empty.calls[0].args


@pytest.mark.parametrize("question, form", [
    ("Who last prescribed leuprolide for the patient?", "a person's name"),
    ("Which clinician wrote the most recent amoxicillin prescription?", "a person's name"),
    ("When was oxycodone first prescribed?", "a date"),
    ("What is the date of the most recent hydrochlorothiazide prescription?", "a date"),
    ("When the patient's BMI was last checked, what was their body weight?", "first search BMI (newest first)"),
    ("At the visit where the BMI was most recently recorded, what was the height?", "then search height on that date"),
    ("What was the latest prescription for acute bronchitis?", "a drug name"),
    ("Which medication was most recently prescribed for the patient's strep throat?", "a drug name"),
    ("How many visits did the patient have in 2017?", "a number: how many records the search found"),
    ("How old is the patient?", "an age in years"),
    ("Has the patient ever been prescribed simvastatin?", "yes or no"),
    ("Is naproxen on the patient's active medication list?", "yes or no"),
    ("What is the latest ALT on record?", "the value, unit and date"),
    ("Which patient id belongs to Donnell Torphy, born on 1910-09-19?", "the patient's id"),
])
def test_the_answer_form_follows_the_question(question, form):
    from agent.grounding import answer_form

    assert form in answer_form(question)


@pytest.mark.parametrize("question", [
    "When the patient's BMI was last checked, what was their body weight?",
    "At the visit where the BMI was most recently recorded, what was the body weight?",
    "What was the patient's body weight when their BMI was last measured?",
])
def test_a_question_about_one_thing_at_the_time_of_another_names_both_searches(question):
    from agent.grounding import answer_form

    assert answer_form(question) == ("the body weight's value, unit and date: first search BMI (newest first) for "
                                     "its date, then search body weight on that date")


def test_an_open_request_gets_no_answer_form():
    from agent.grounding import answer_form

    assert answer_form("Summarise the diabetes care so far.") is None


def test_a_patient_lookup_keeps_only_what_the_question_gives():
    from langchain_core.messages import HumanMessage

    from agent.grounding import ground_lookup, unasked_filters
    from agent.protocol.types import ParsedOutput, ToolCall

    question = "What is the patient id of Sydney Oberbrunner, born 1910-09-19?"
    call = ParsedOutput(kind="calls", calls=[ToolCall(name="find_patient", args={
        "name": "Sydney Oberbrunner", "birth_date": "1910-09-19", "identifier": "1234567890", "gender": "male"})])
    assert ground_lookup(call, question) == ("dropped find_patient.identifier=1234567890, find_patient.gender=male: "
                                             "the question gives no such detail")
    assert call.calls[0].args == {"name": "Sydney Oberbrunner", "birth_date": "1910-09-19"}
    kept = ParsedOutput(kind="calls", calls=[ToolCall(name="find_patient", args={"identifier": "MRN-00042", "gender": "female"})])
    assert ground_lookup(kept, "Find the woman with MRN-00042") is None
    schemas = [{"name": "find_patient", "parameters": {"type": "object", "properties": {
        "name": {}, "birth_date": {}, "identifier": {}, "gender": {}}}}]
    assert sorted(unasked_filters([HumanMessage(f"Question: {question}")], schemas)) == [
        "find_patient.gender", "find_patient.identifier"]
    assert unasked_filters([HumanMessage("Question: Which female patient has MRN 8812345?")], schemas) == []


@pytest.mark.parametrize("question, date", [
    ("What is the patient id of Sydney Oberbrunner, born September 19, 1910?", "1910-09-19"),
    ("Find Jesus Smitham (date of birth January 10, 1953) and give their patient id.", "1953-01-10"),
    ("Which patient id belongs to Robbin Gutmann, born on 3rd of December 1979?", "1979-12-03"),
    ("Who is the patient born 09/19/1910 named Oberbrunner?", "1910-09-19"),
])
def test_a_lookup_takes_the_birth_date_as_the_question_states_it(question, date):
    from agent.grounding import ground_lookup, question_dates
    from agent.protocol.types import ParsedOutput, ToolCall

    assert question_dates(question) == [date]
    wrong = ParsedOutput(kind="calls", calls=[ToolCall(name="find_patient", args={"name": "X", "birth_date": "1910-09-01"})])
    note = ground_lookup(wrong, question)
    assert wrong.calls[0].args["birth_date"] == date
    assert note == f"set find_patient.birth_date={date} as the question states it (was 1910-09-01)"
    right = ParsedOutput(kind="calls", calls=[ToolCall(name="find_patient", args={"name": "X", "birth_date": date})])
    assert ground_lookup(right, question) is None
    # No date in the question (or two): the model's value stands.
    kept = ParsedOutput(kind="calls", calls=[ToolCall(name="find_patient", args={"name": "X", "birth_date": "1950"})])
    assert ground_lookup(kept, "Find the patient named X born in the fifties") is None
    assert question_dates("Visits between 2012 and 2017?") == []


def test_diagnosis_is_not_a_category_filter():
    """Holdout trace: 'Is there a diagnosis of sprain of ankle?' searched with category diagnosis
    (encounter-diagnosis), which hid the patient's sprain: Synthea conditions carry no category."""
    from langchain_core.messages import HumanMessage

    from agent.grounding import unasked_filters

    schemas = [{"name": "search_records", "parameters": {"type": "object", "properties": {"category": {}}}}]
    question = [HumanMessage("Question: Is there a diagnosis of sprain of ankle in the patient's record?")]
    assert unasked_filters(question, schemas) == ["search_records.category"]


@pytest.mark.parametrize("question, form", [
    ("What was the latest prescription for Alzheimer's disease?", "whose reason column is that condition"),
    ("What drug was last ordered to treat the patient's viral sinusitis?", "whose reason column is that condition"),
    ("Is the patient taking any medication for asthma?", "yes or no"),
    ("What medication is she on?", "a drug name"),
])
def test_a_drug_for_a_condition_points_at_the_reason_column(question, form):
    from agent.grounding import answer_form

    assert form in answer_form(question)


@pytest.mark.parametrize("reply, sent_back", [
    ("No medication was most recently prescribed for the patient's acute bronchitis.", True),
    ("There were no prescriptions for it.", True),
    ("None found.", True),
    ("Nothing in the record.", True),
    ("Normal saline was prescribed on 2014-02-03.", False),       # 'No' inside a word is no denial
    ("Acetaminophen 325 MG Oral Tablet (MedicationRequest/abc).", False),
])
def test_an_answer_that_denies_found_records_is_noticed(reply, sent_back):
    results = [("search_records", "Acetaminophen 325 MG Oral Tablet was prescribed on 2014-02-03.\nMedicationRequest: 1 found")]
    note = denial_of_results(reply, "Which medication was most recently prescribed for her bronchitis?", results,
                             ["MedicationRequest/abc"])
    assert (note is not None) is sent_back
    if note:
        assert '"Acetaminophen 325 MG Oral Tablet was prescribed on 2014-02-03."' in note
    assert denial_of_results(reply, "Which medication was prescribed for her bronchitis?", results, []) is None
    assert denial_of_results(reply, "Was she prescribed anything for bronchitis?", results, ["MedicationRequest/abc"]) is None
