"""Plain-text names -> the codes a patient's record actually holds.

Small models invent codes (asked for HbA1c, a 1.5B model sent a wrong LOINC code), so the
EHR tools accept names and resolve them here against the (system, code, display) triples
present in the patient's record for one resource type. Stages, each tried only when the one
before found nothing:
1. codes as given ('4548-4', 'http://loinc.org|4548-4', a comma list);
2. the clinicians' vocabulary (tools/ehr/vocabulary.py): 'WBC' -> Leukocytes [#/volume],
   'Lipitor' -> atorvastatin, group names ('any lung disease') -> every member the record holds;
3. lexical: a whole phrase or all of the query's words in a display name (a word may carry a
   small typo or a plural), an exact display scoring highest;
4. optionally, a semantic match (MiniLM, tools/ehr/semantic.py) with a threshold and a margin.
Anything else is "no match" with the closest names the record does hold, never a guess, and
every match says which codes it used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from . import semantic as _semantic
from .vocabulary import WORD_FORMS, Concept, concepts_named, norm

Candidate = tuple[str | None, str | None, str | None]  # system, code, display

THRESHOLD = 85.0  # lowest lexical score that counts as a match
MARGIN = 2.0      # keep every candidate within this of the best score
TYPO_RATIO = 88.0  # a query word this similar to a display word counts as present
DEFAULT: Any = object()  # resolve_codes(semantic=DEFAULT): the process default (semantic.default())

#: Words that say nothing about *which* record is meant.
FILLER = frozenset("""a an the of for in on at by to and or my her his their patient patients s
    level levels test tests testing result results value values reading readings measurement measurements
    lab labs history recent latest last most all any trend trends over time record records score scores""".split())
#: Words too generic to match on alone (they appear in many lab names).
GENERIC = frozenset("blood serum plasma urine mass volume ratio total panel by in of with".split())
#: Words that say what kind of record, not which: 'hep B vaccine' names the vaccine 'hep B'.
KIND_WORDS = frozenset("vaccine vaccines vaccination vaccinations shot shots immunization immunizations jab booster "
                       "visit visits encounter encounters medication medications med meds drug drugs pill pills "
                       "tablet tablets diagnosis condition".split())
SPECIMEN = frozenset("blood serum plasma total".split())
#: Doses, units and release forms: 'Lipitor 80 mg', 'metformin ER' name the drug.
DOSE_WORDS = frozenset("mg mcg g ml kg lb lbs cm mmhg percent er xr xl sr dr ec ir tab tabs tablet tablets".split())
#: Code systems, as the vocabulary names them.
SYSTEM_TAGS = {"loinc": "loinc", "snomed": "sct", "rxnorm": "rxnorm", "cvx": "cvx"}

_CODE_LIKE = re.compile(r"^(\d[\d.\-]*\d|\d|[A-Z]\d\d(\.\w+)?)$")
_PAREN = re.compile(r"\(([^)]*)\)")


@dataclass
class Match:
    system: str | None
    code: str
    display: str | None
    score: float

    @property
    def token(self) -> str:
        return f"{self.system}|{self.code}" if self.system else self.code

    def describe(self) -> str:
        return f"{self.token} {self.display or ''}".strip()


@dataclass
class Resolution:
    query: str
    matches: list[Match] = field(default_factory=list)
    message: str = ""
    verbatim: bool = False  # the query was used as code(s) as given
    how: str = ""  # 'code', 'vocabulary', 'group', 'lexical', 'semantic' or '' (no match)

    @property
    def codes(self) -> list[str]:
        """Token search values (``system|code``), for a FHIR ``code`` parameter."""
        return [m.token for m in self.matches]

    @property
    def score(self) -> float:
        return max((m.score for m in self.matches), default=0.0)

    @property
    def ok(self) -> bool:
        return bool(self.matches)

    def brief(self, shown: int = 3) -> str:
        """The message for a result's header: codes and names without system URLs, at most
        ``shown`` of them (the rows carry the rest). A 1.5B planner answered 'none found' from a
        header whose three 'http://www.nlm.nih.gov/research/umls/rxnorm|...' matches hid the
        count before them; a code given as a code is echoed as given."""
        if self.verbatim or not self.matches:
            return self.message
        unique = list(dict.fromkeys(f"{m.code} {m.display or ''}".strip() for m in self.matches))
        more = f"; and {len(unique) - shown} more" if len(unique) > shown else ""
        return f"matched '{self.query}' to {'; '.join(unique[:shown])}{more}"

    def param_value(self) -> str:
        return ",".join(dict.fromkeys(self.codes))


def normalise(text: str) -> str:
    return norm(text)


def _stem(word: str) -> str:
    """'platelets' -> 'platelet', 'colonoscopies' -> 'colonoscopy': a plural names the same thing."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _words(text: str) -> list[str]:
    return [w for w in normalise(text).split() if w not in FILLER]


def _phrase_in(phrase: str, display_norm: str) -> int:
    """0: absent; 2: display starts with the phrase; 1: the phrase is elsewhere (whole words)."""
    if not phrase:
        return 0
    p = " ".join(_stem(w) for w in phrase.split())
    d = " ".join(_stem(w) for w in display_norm.split())
    if d == p or d.startswith(p + " "):
        return 2
    return 1 if f" {p} " in f" {d} " else 0


def _has(display_norm: str, phrase: str) -> bool:
    """The phrase in the display as whole words; a vocabulary phrase ending in * is a word prefix."""
    if phrase.endswith("*"):
        return f" {phrase[:-1]}" in f" {display_norm}"
    return f" {phrase} " in f" {display_norm} "


def _word_present(word: str, display_words: list[str]) -> bool:
    stems = [_stem(d) for d in display_words]
    if _stem(word) in stems:
        return True
    return len(word) >= 5 and any(len(d) >= 5 and fuzz.ratio(word, d) >= TYPO_RATIO for d in display_words)


def score(phrase: str, display: str, strip: bool = True) -> float:
    """How well one (normalised) query phrase names a display: 0-100 (``strip``: filler words
    such as 'level' or 'test' need not be in the display)."""
    d = normalise(display)
    if not phrase or not d:
        return 0.0
    if phrase == d:
        return 100.0
    words = [w for w in phrase.split() if w not in FILLER or not strip]
    content = [w for w in words if w not in GENERIC and w not in FILLER]
    if not content:  # 'blood', 'serum level': names no particular record
        return 0.0
    where = _phrase_in(phrase, d)
    if where:
        return 97.0 if where == 2 else 93.0
    dwords = d.split()
    if all(_word_present(w, dwords) for w in words):
        exact = all(_stem(w) in {_stem(x) for x in dwords} for w in words)
        return 91.0 if exact else 88.0
    # Whole-string fuzzy similarity, for a typo spanning words; strict threshold. (Not
    # token_set_ratio: it scores 100 whenever one side's words are a subset of the other's,
    # so 'urine microalbumin/creatinine ratio' matched plain 'Creatinine'.)
    ratio = fuzz.token_sort_ratio(phrase, d)
    return float(ratio) * 0.9 if ratio >= 95 else 0.0


def name_forms(text: str) -> list[str]:
    """The forms of a name to look up in the vocabulary, most literal first: as written, without
    filler words, singular, with letters joined ('W.B.C.' -> 'wbc') and word abbreviations
    spelt out ('Plt ct' -> 'plt count', 'high BP' -> 'high blood pressure'), without kind words
    ('vaccine', 'visit'), specimen words, doses and release forms ('Lipitor 80', 'metformin
    ER'), and the parts outside and inside parentheses ('tetanus-diphtheria (Td)')."""
    raw = [text, _PAREN.sub(" ", text), *_PAREN.findall(text)]
    forms: list[str] = []
    for r in raw:
        full = normalise(r)
        words = [w for w in full.split() if w not in FILLER]
        forms += [full, " ".join(words), " ".join(_stem(w) for w in words), _join_letters(words)]
        spelt = " ".join(WORD_FORMS.get(w, w) for w in words)
        kept = [w for w in spelt.split() if w not in KIND_WORDS]
        forms += [spelt, " ".join(kept), " ".join(w for w in kept if w not in SPECIMEN),
                  " ".join(w for w in kept if w not in DOSE_WORDS and not w.isdigit())]
    return [f for f in dict.fromkeys(forms) if f]


def _join_letters(words: list[str]) -> str:
    out: list[str] = []
    for w in words:
        if len(w) == 1 and out and out[-1].isalpha() and len(out[-1]) < 4 and not out[-1] in FILLER:
            out[-1] += w
        else:
            out.append(w)
    return " ".join(out)


def _system_tag(system: str | None) -> str | None:
    s = (system or "").lower()
    return next((tag for key, tag in SYSTEM_TAGS.items() if key in s), None)


def _fits(concept: Concept, system: str | None) -> bool:
    tag = _system_tag(system)
    return tag is None or tag in concept.systems


def _excluded(concepts: list[Concept], display_norm: str) -> bool:
    return any(_has(display_norm, x) for c in concepts for x in c.exclude)


def _concept_hits(concepts: list[Concept], cands: list[Candidate]) -> list[Match]:
    hits = []
    for system, code, display in cands:
        d = normalise(display or "")
        for c in concepts:
            if code in c.codes:
                hits.append(Match(system, code, display, 100.0))
                break
            if _fits(c, system) and not _excluded([c], d) and any(_has(d, p) for p in c.phrases):
                hits.append(Match(system, code, display, 97.0))
                break
    return _dedupe(hits)


def _is_code(part: str, codes: set[str]) -> bool:
    return "|" in part or part in codes


def resolve_codes(text: str, candidates: Iterable[Candidate], limit: int = 8, *,
                  semantic: Any = DEFAULT) -> Resolution:
    """Resolve ``text`` (a code, ``system|code``, a comma list, or a plain name such as
    'HbA1c') against the (system, code, display) the record holds. Returns the matching
    codes with a sentence saying what was matched, or no codes and the closest names.
    ``semantic``: a ``SemanticMatcher`` for the last stage, None for none, or (default) the
    process default (``tools.ehr.semantic.default()``, off unless configured)."""
    text = (text or "").strip()
    cands = [(s, c, d) for s, c, d in candidates if c]
    present = {c for _, c, _ in cands}
    if not text:
        return Resolution(text, message="empty code/name")
    matcher = _semantic.default() if semantic is DEFAULT else semantic
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if parts and all(_is_code(p, present) for p in parts):
        return _as_codes(text, parts, cands)
    result = _by_name(text, cands, limit, matcher)
    if not result.ok and len(parts) > 1:  # "HbA1c, LDL": each name on its own
        found = [_by_name(p, cands, limit, matcher) for p in parts]
        matches = [m for r in found for m in r.matches]
        if matches:
            hows = {r.how for r in found if r.ok}
            result = Resolution(text, _dedupe(matches), "; ".join(r.message for r in found),
                                how=hows.pop() if len(hows) == 1 else "mixed")
    if not result.ok and all(_is_code(p, present) or _CODE_LIKE.match(p) for p in parts):
        # A real-looking code the record does not hold: searched as given (it may sit in a
        # component, or the record holds none of it); the caller says so.
        res = _as_codes(text, parts, cands)
        res.message += " (not among the codes this record holds for this type)"
        return res
    return result


def _as_codes(text: str, parts: list[str], cands: list[Candidate]) -> Resolution:
    matches = []
    for part in parts:
        if "|" in part:
            system, _, code = part.partition("|")
            display = next((d for s, c, d in cands if c == code and (not system or s == system)), None)
            matches.append(Match(system or None, code, display, 100.0))
            continue
        hits = [(s, c, d) for s, c, d in cands if c == part]
        matches += [Match(s, c, d, 100.0) for s, c, d in hits] or [Match(None, part, None, 100.0)]
    matches = _dedupe(matches)
    return Resolution(text, matches, f"used code {', '.join(m.describe() for m in matches)}", verbatim=True,
                      how="code")


def _dedupe(matches: list[Match]) -> list[Match]:
    seen, out = set(), []
    for m in matches:
        if (m.system, m.code) not in seen:
            seen.add((m.system, m.code))
            out.append(m)
    return out


def _matched(text: str, matches: list[Match], how: str, note: str = "") -> Resolution:
    return Resolution(text, matches, f"matched '{text}'{note} to {'; '.join(m.describe() for m in matches)}", how=how)


def _by_name(text: str, cands: list[Candidate], limit: int, matcher: Any) -> Resolution:
    forms = name_forms(text)
    concepts = next((found for f in forms if (found := concepts_named(f))), [])
    if concepts:
        hits = _concept_hits(concepts, cands)
        numbers = [w for w in normalise(text).split() if w.isdigit()]
        if numbers and hits and all(_system_tag(m.system) == "rxnorm" for m in hits):  # 'Lipitor 80': that dose
            hits = [m for m in hits if set(numbers) & set(normalise(m.display or "").split())] or hits
        if hits:
            group = any(c.group for c in concepts)
            held = f"{len(hits)} of its codes" if len(hits) > 1 else "one of its codes"
            note = f" (a group name; this record holds {held})" if group else ""
            return _matched(text, hits, "group" if group else "vocabulary", note)
        # A name the vocabulary knows that this record does not hold: no loose lexical guess
        # ('hep A' must not become 'Hep B' nor 'follow-up visit' an allergy follow-up
        # assessment), only every word as written ('pregnancy test' reached the concept
        # 'pregnancy' by dropping 'test', but Standard pregnancy test is what it names).
        # Either stage looks only among names of the concept's kind that its exclusions allow
        # ('hemoglobin' never reaches 'Hemoglobin A1c', the lab 'potassium' never a potassium salt).
        pool = [(s, c, d) for s, c, d in cands if any(_fits(k, s) for k in concepts)
                and not _excluded(concepts, normalise(d or ""))]
        if not concepts_named(normalise(text)):
            found = _lexical([normalise(text)], pool, limit, strip=False)
            if found:
                return _matched(text, found, "lexical")
        if matcher is not None and pool:
            return _by_meaning(text, concepts[0].key, pool, matcher, cands)
        return Resolution(text, message=f"no match for '{text}' in this record; {closest(text, cands)}")
    # The name as written first ('pregnancy test' is Standard pregnancy test, not 'pregnancy'
    # Pregnancy termination care), then its other forms.
    literal = normalise(text)
    found = _lexical([literal], cands, limit, strip=False) or _lexical(forms, cands, limit)
    if found:
        return _matched(text, found, "lexical")
    if matcher is not None and cands:
        return _by_meaning(text, text, cands, matcher, cands)
    return Resolution(text, message=f"no match for '{text}' in this record; {closest(text, cands)}")


def _lexical(phrases: list[str], cands: list[Candidate], limit: int, strip: bool = True) -> list[Match]:
    if strip:
        phrases = list(dict.fromkeys(" ".join(_words(p)) or p for p in phrases if p))
    scored = []
    for system, code, display in cands:
        best = max((score(p, display or "", strip) for p in phrases), default=0.0)
        if best >= THRESHOLD:
            scored.append(Match(system, code, display, best))
    if not scored:
        return []
    top = max(m.score for m in scored)
    # A drug name means every product that holds it: 'acetaminophen/hydrocodone' is both
    # 'Acetaminophen/Hydrocodone' and 'Acetaminophen 300 MG / HYDROcodone ... [Vicodin]'.
    drugs = all(_system_tag(m.system) == "rxnorm" for m in scored)
    floor = THRESHOLD if drugs else top - MARGIN
    return _dedupe(sorted((m for m in scored if m.score >= floor), key=lambda m: -m.score))[:limit]


def _by_meaning(text: str, query: str, pool: list[Candidate], matcher: Any, cands: list[Candidate]) -> Resolution:
    """The semantic stage: the nearest display, used only when near enough and clearly nearer
    than any other code's; otherwise no code and the nearest names with their similarity."""
    named = [(s, c, d) for s, c, d in pool if d]
    ranked = matcher.rank(query, [d for _, _, d in named])
    if not ranked:
        return Resolution(text, message=f"no match for '{text}' in this record; {closest(text, cands)}")
    best = ranked[0]
    system, code, display = named[best.index]
    runner_up = next((r.similarity for r in ranked[1:] if named[r.index][1] != code), -1.0)
    if best.similarity >= matcher.threshold and best.similarity - runner_up >= matcher.margin:
        m = Match(system, code, display, round(100 * best.similarity, 1))
        return _matched(text, [m], "semantic", f" by meaning (similarity {best.similarity:.2f}, no name matched)")
    why = "weak" if best.similarity < matcher.threshold else "ambiguous"
    near = "; ".join(f"{r.name} ({r.similarity:.2f})" for r in _distinct(ranked, named)[:5])
    return Resolution(text, message=f"no match for '{text}' in this record (nearest by meaning is {why}); "
                                    f"closest names the record holds: {near}")


def _distinct(ranked: list, named: list[Candidate]) -> list:
    seen, out = set(), []
    for r in ranked:
        if named[r.index][1] not in seen:
            seen.add(named[r.index][1])
            out.append(r)
    return out


def closest(text: str, cands: list[Candidate], n: int = 5) -> str:
    """A sentence naming the few display names in the record nearest to ``text``."""
    names = list(dict.fromkeys(d for _, _, d in cands if d))
    if not names:
        return "the record holds no coded entries of this type"
    picks = process.extract(text, names, scorer=fuzz.WRatio, processor=default_process, limit=n)
    return "closest names the record holds: " + "; ".join(name for name, _, _ in picks)


def looks_like_code(text: str) -> bool:
    """'4548-4', '860975', 'E11.9': a code rather than a name."""
    return bool(_CODE_LIKE.match(text.strip()))
