"""Tool schemas from a real EhrSession, the planner-turn schema, and narrowing to a record."""

from __future__ import annotations

import copy
import json
from typing import Literal

import pytest

from agent.protocol.parser import parse_output, validate_calls
from agent.protocol.schema import DATE_PATTERN, MAX_STRING, PORTABLE_KEYWORDS, action_schema, schema_errors, tool_schemas
from fhir_fixtures import PATIENTS, bundle_paths
from tools.ehr import EhrSession
from tools.ehr.session import CLINICAL_TYPES
from tools.fhir.store import EmbeddedStore

MARIA = PATIENTS["diabetic"]


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> EhrSession:
    store = EmbeddedStore(f"sqlite:///{tmp_path_factory.mktemp('protocol') / 'fixtures.db'}")
    report = store.load_paths(bundle_paths())
    assert not report.errors, report.errors
    yield EhrSession(store, MARIA.id)
    store.close()


@pytest.fixture(scope="module")
def schemas(session):
    """Every planner tool's schema: an unbound session's (a bound one leaves out find_patient)."""
    return tool_schemas(EhrSession(session.backend).tools())


def _valid(instance, schema) -> bool:
    return not schema_errors(instance, schema)


# -- tool_schemas ---------------------------------------------------------------------------------

def test_tool_schemas_from_the_session(session, schemas):
    assert [s["name"] for s in schemas] == ["find_patient", "patient_summary", "search_records", "read_record", "draft_order"]
    by = {s["name"]: s for s in schemas}
    for tool in EhrSession(session.backend).tools():
        spec = by[tool.__name__]
        assert spec["description"].startswith(tool.__doc__.strip().splitlines()[0].strip())
        assert spec["parameters"]["type"] == "object" and spec["parameters"]["additionalProperties"] is False
    search = by["search_records"]["parameters"]
    assert search["required"] == ["resource_type"]
    assert search["properties"]["resource_type"]["enum"] == list(CLINICAL_TYPES)
    assert search["properties"]["code"] == {"type": "string"}          # Optional -> the plain type, not required
    assert search["properties"]["sort"]["default"] == "-date"
    assert search["properties"]["filters"]["additionalProperties"] == {"type": "string"}
    assert "Observation (lab results" in by["search_records"]["description"]  # what each record type holds
    draft = by["draft_order"]["parameters"]
    assert draft["required"] == ["kind", "code"]
    assert draft["properties"]["priority"] == {"type": "string", "enum": ["routine", "urgent", "asap", "stat"]}
    assert draft["properties"]["value"] == {"anyOf": [{"type": "string"}, {"type": "number"}]}
    assert by["patient_summary"]["parameters"]["properties"] == {}
    assert "null" not in json.dumps(schemas)


def test_tool_schemas_of_plain_functions():
    def lookup(term: str, kind: Literal["lab", "vital"], note: str | None, limit: int = 5) -> str:
        """Look something up.

        term: what to look for.
        """
        return term

    spec, = tool_schemas([lookup])
    params = spec["parameters"]
    assert spec["name"] == "lookup" and spec["description"] == "Look something up.\n\nterm: what to look for."
    assert params["required"] == ["term", "kind"]  # Optional without a default is still not required
    assert params["properties"]["kind"] == {"type": "string", "enum": ["lab", "vital"]}
    assert params["properties"]["note"] == {"type": "string"}
    with pytest.raises(ValueError, match="duplicate"):
        tool_schemas([lookup, lookup])


# -- action_schema ----------------------------------------------------------------------------------

VALID_TURNS = [
    {"tool": "patient_summary", "args": {}},
    {"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c", "limit": 3}},
    {"tool": "search_records", "args": {"resource_type": "Condition", "date_from": "2017", "date_to": "2020-06-30",
                                        "status": "active", "filters": {"clinical-status": "active"}}},
    {"tool": "read_record", "args": {"reference": "Observation/ebf6f24a-f6ca-5cf6-b83b-da02bc692293"}},
    {"tool": "draft_order", "args": {"kind": "Observation", "code": "blood pressure", "value": "128/82", "priority": "routine"}},
    {"tool": "find_patient", "args": {"name": "Garcia", "birth_date": "1962-04-17"}},
    {"answer": "The latest HbA1c is 7.1 % (Observation/ebf6f24a-f6ca-5cf6-b83b-da02bc692293)."},
]

INVALID_TURNS = [
    ("unknown tool", {"tool": "get_labs", "args": {}}),
    ("no args", {"tool": "patient_summary"}),
    ("extra arg", {"tool": "patient_summary", "args": {"patient": "x"}}),
    ("missing required", {"tool": "search_records", "args": {"code": "HbA1c"}}),
    ("bad enum", {"tool": "search_records", "args": {"resource_type": "Labs"}}),
    ("bad date", {"tool": "search_records", "args": {"resource_type": "Observation", "date_from": "last year"}}),
    ("bad month", {"tool": "search_records", "args": {"resource_type": "Observation", "date_to": "2020-13-01"}}),
    ("string too long", {"tool": "search_records", "args": {"resource_type": "Observation", "code": "x" * 81}}),
    ("filter too long", {"tool": "search_records", "args": {"resource_type": "Observation", "filters": {"k": "v" * 81}}}),
    ("limit as text", {"tool": "search_records", "args": {"resource_type": "Observation", "limit": "5"}}),
    ("limit too big", {"tool": "search_records", "args": {"resource_type": "Observation", "limit": 100000}}),
    ("null arg", {"tool": "search_records", "args": {"resource_type": "Observation", "code": None}}),
    ("tool and answer", {"tool": "patient_summary", "args": {}, "answer": "x"}),
    ("empty answer", {"answer": ""}),
    ("extra key", {"answer": "x", "thought": "y"}),
    ("not an object", ["patient_summary"]),
]


def test_valid_turns_validate(schemas):
    schema = action_schema(schemas)
    for turn in VALID_TURNS:
        assert _valid(turn, schema), (turn, schema_errors(turn, schema))
        parsed = parse_output(json.dumps(turn), [s["name"] for s in schemas])  # and they parse and validate as calls
        assert parsed.kind in ("calls", "answer") and not validate_calls(parsed.calls, schemas)


@pytest.mark.parametrize("why,turn", INVALID_TURNS, ids=[w for w, _ in INVALID_TURNS])
def test_invalid_turns_do_not_validate(schemas, why, turn):
    assert not _valid(turn, action_schema(schemas))


def test_same_verdicts_with_jsonschema(schemas):
    jsonschema = pytest.importorskip("jsonschema")
    schema = action_schema(schemas)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert all(validator.is_valid(t) for t in VALID_TURNS)
    assert not any(validator.is_valid(t) for _, t in INVALID_TURNS)


def _strings(node, path="$"):
    """Every schema node that admits a string, with its path."""
    if isinstance(node, dict):
        types = node.get("type")
        if types == "string" or (isinstance(types, list) and "string" in types):
            yield path, node
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")


def _objects(node):
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def test_every_argument_string_is_bounded_and_every_object_closed(schemas):
    schema = action_schema(schemas)
    for path, node in _strings(schema):
        if path.endswith(".answer"):  # free text: capped by the token budget (long bounds break llama.cpp)
            assert "maxLength" not in node and node["minLength"] == 1
        elif "pattern" in node:       # dates: the pattern bounds the length, no maxLength beside it
            assert node["pattern"] == DATE_PATTERN and "maxLength" not in node, path
        else:
            assert "enum" in node or "const" in node or node.get("maxLength", 10**9) <= MAX_STRING == 80, path
    dates = [n for p, n in _strings(schema) if p.endswith(("date_from", "date_to", "birth_date"))]
    assert len(dates) == 3 and all(n["pattern"] == DATE_PATTERN for n in dates)
    for node in _objects(schema):
        extra = node.get("additionalProperties")
        assert extra is False or extra == {"type": "string", "maxLength": MAX_STRING}, node  # filters: bounded values
    assert [b["properties"]["tool"]["const"] for b in schema["anyOf"][:-1]] == [s["name"] for s in schemas]
    json.dumps(schema)  # serialisable as is, for a backend's json_schema=


def _keywords(node, out=None):
    """Every JSON-schema keyword used (property names under ``properties`` are not keywords)."""
    out = set() if out is None else out
    if isinstance(node, dict):
        for key, value in node.items():
            out.add(key)
            if key == "properties":
                for sub in value.values():
                    _keywords(sub, out)
            elif key not in ("enum", "const", "required", "pattern", "title"):
                _keywords(value, out)
    elif isinstance(node, list):
        for value in node:
            _keywords(value, out)
    return out


def test_the_action_schema_keeps_to_what_serving_engines_compile(session, schemas):
    # xgrammar (vLLM) lacks propertyNames/patternProperties/maxProperties/format; llama.cpp's
    # converter expands maxLength into nested rules, so no bound may be long.
    bound = tool_schemas(session.tools())
    for schema in (action_schema(schemas), action_schema(bound, narrow=_narrow_for(session))):
        assert _keywords(schema) <= PORTABLE_KEYWORDS, _keywords(schema) - PORTABLE_KEYWORDS
        lengths = [n["maxLength"] for _, n in _strings(schema) if "maxLength" in n]
        assert lengths and max(lengths) <= MAX_STRING


def test_llama_cpp_converts_the_action_schema_to_a_shallow_grammar(session, schemas):
    # llama-cpp-python's server turns response_format's schema into GBNF with this converter; its
    # C++ parser died at maxLength 2000 (nesting ~2000 deep). The real compile: test_openai_compat.
    grammar_mod = pytest.importorskip("llama_cpp.llama_grammar")
    for schema in (action_schema(schemas), action_schema(tool_schemas(session.tools()), narrow=_narrow_for(session))):
        gbnf = grammar_mod.json_schema_to_gbnf(json.dumps(schema))
        depth = deepest = 0
        for ch in gbnf:
            depth += ch == "("
            depth -= ch == ")"
            deepest = max(deepest, depth)
        assert "root ::=" in gbnf and deepest <= MAX_STRING + 2, deepest


def test_guidance_compiles_the_action_schema_as_sent(schemas):
    # vLLM's guidance engine is llguidance: the schema as sent, no local rewriting.
    llguidance = pytest.importorskip("llguidance")
    grammar = llguidance.LLMatcher.grammar_from_json_schema(action_schema(schemas))
    assert llguidance.LLMatcher.validate_grammar(grammar) == ""


def test_options(schemas):
    before = copy.deepcopy(schemas)
    no_answer = action_schema(schemas, allow_answer=False)
    assert not _valid({"answer": "x"}, no_answer) and _valid({"tool": "patient_summary", "args": {}}, no_answer)
    short = action_schema(schemas, max_string=10, max_answer=20)
    assert not _valid({"tool": "read_record", "args": {"reference": "Observation/0123456789"}}, short)
    assert not _valid({"answer": "x" * 21}, short)
    only_summary = action_schema([s for s in schemas if s["name"] == "patient_summary"], allow_answer=False)
    assert len(only_summary["anyOf"]) == 1
    assert schemas == before  # never mutated
    with pytest.raises(ValueError):
        action_schema([], allow_answer=False)


# -- narrowing to what the record holds ------------------------------------------------------------

def _narrow_for(session) -> dict[str, list[str]]:
    manifest = session.manifest()
    types = [t for t in ("Observation", "Condition", "MedicationRequest") if manifest.codes(t)]
    codes = [c.code for t in types for c in manifest.codes(t) if c.code]
    names = ["HbA1c", "blood pressure", "metformin"]
    return {"search_records.resource_type": types, "search_records.code": names + codes,
            "search_records.sort": ["-date", "date"]}


def test_narrowing_grounds_calls_in_the_record(session, schemas):
    narrow = _narrow_for(session)
    schema = action_schema(schemas, narrow=narrow)
    ok = {"tool": "search_records", "args": {"resource_type": "Observation", "code": "4548-4"}}
    assert _valid(ok, schema)
    assert _valid({"tool": "search_records", "args": {"resource_type": "Condition", "code": "44054006"}}, schema)
    invented = {"tool": "search_records", "args": {"resource_type": "Observation", "code": "4165-9"}}
    assert not _valid(invented, schema) and _valid(invented, action_schema(schemas))
    assert not _valid({"tool": "search_records", "args": {"resource_type": "Immunization"}}, schema)
    assert not _valid({"tool": "search_records", "args": {"resource_type": "Observation", "sort": "value"}}, schema)
    search = next(b for b in schema["anyOf"] if b["properties"].get("tool", {}).get("const") == "search_records")
    assert search["properties"]["args"]["properties"]["code"] == {"type": "string", "enum": narrow["search_records.code"]}
    # every narrowed code finds records when the planner calls the real tool with it
    for code in narrow["search_records.code"][3:8]:
        rtype = next(t for t in narrow["search_records.resource_type"] if code in {c.code for c in session.manifest().codes(t)})
        result = session.search_records(rtype, code=code)
        assert result.ok and result.ids, (rtype, code, result.text)


@pytest.mark.parametrize("narrow,match", [
    ({"lookup.code": ["x"]}, "no tool 'lookup'"),
    ({"search_records.loinc": ["x"]}, "has no argument 'loinc'"),
    ({"search_records.code": []}, "empty"),
    ({"search_records.code": "HbA1c"}, "list of values"),
    ({"search_records.resource_type": ["Observation", "Labs"]}, "Labs"),
    ({"search_records.filters": ["x"]}, "object"),
])
def test_bad_narrowing_fails_loudly(schemas, narrow, match):
    with pytest.raises(ValueError, match=match):
        action_schema(schemas, narrow=narrow)


def test_narrowing_a_non_string_or_union_argument(schemas):
    schema = action_schema(schemas, narrow={"search_records.limit": [1, 5, 20], "draft_order.priority": ["routine"]})
    assert _valid({"tool": "search_records", "args": {"resource_type": "Observation", "limit": 5}}, schema)
    assert not _valid({"tool": "search_records", "args": {"resource_type": "Observation", "limit": 6}}, schema)
    assert not _valid({"tool": "draft_order", "args": {"kind": "ServiceRequest", "code": "HbA1c", "priority": "stat"}}, schema)
