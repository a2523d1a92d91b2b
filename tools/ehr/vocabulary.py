"""Clinicians' words -> the concepts FHIR records code them as (LOINC, SNOMED CT, RxNorm, CVX).

Written against the display names Synthea records hold (the 40 shared patients, several
Synthea generations: 'Body Weight' and 'Body weight', 'Simvistatin 10 MG' misspelt as shipped)
and the codes newer Synthea releases use. A concept says:
- ``names``: what clinicians say ('WBC', 'white count', 'Lipitor', 'any lung disease');
- ``codes``: codes that ARE the concept (a candidate holding one matches outright);
- ``phrases``: display phrases (whole words, anywhere in the display) that name it;
- ``exclude``: display phrases that rule a candidate out even when a phrase is present
  ('hemoglobin' must not reach 'Hemoglobin A1c', 'platelets' not 'Platelet mean volume');
- ``systems``: the code systems the phrases apply to ('loinc', 'sct', 'rxnorm', 'cvx'), so
  the lab 'potassium' never reaches 'Penicillin V Potassium' among medications.
Groups ('any lung disease', 'any statin', and panels such as 'CBC' among Observations) are
concepts with broad code sets and phrases: they resolve to every member the record holds, for
"does the patient have any ..." questions; a resolution says when it used a group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def norm(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces: the form names and displays meet in."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


@dataclass(frozen=True)
class Concept:
    key: str
    names: tuple[str, ...]
    codes: frozenset[str]
    phrases: tuple[str, ...]
    exclude: tuple[str, ...]
    systems: tuple[str, ...]
    group: bool = False


def _split(text: str) -> tuple[str, ...]:
    """'a|b c*' -> ('a', 'b c*'): a trailing * keeps a phrase a word prefix ('depressi*')."""
    return tuple(n + ("*" if p.strip().endswith("*") else "") for p in text.split("|") if (n := norm(p)))


CONCEPTS: list[Concept] = []


def _c(systems: str, names: str, codes: str = "", phrases: str = "", exclude: str = "", group: bool = False) -> None:
    CONCEPTS.append(Concept(_split(names)[0], _split(names), frozenset(codes.split()), _split(phrases),
                            _split(exclude), tuple(systems.split()), group))


L, S, R, V = "loinc", "sct", "rxnorm", "cvx"

# -- laboratory tests and vital signs (LOINC) -------------------------------------------------
_c(L, "white blood cell count|wbc|wbc count|white count|white cell count|white blood cells|white cells|"
   "white blood count|leukocytes|leukocyte count|leucocytes", "6690-2 26464-8 33256-9",
   "leukocytes #|wbc auto", "esterase|urine")
_c(L, "platelet count|platelets|platelet|plt|plt count|plts|thrombocytes", "777-3 26515-7 49497-1",
   "platelets #", "distribution width|mean volume|urine")
_c(L, "hemoglobin|hgb|hb|haemoglobin|blood hemoglobin|hemoglobin level", "718-7 20509-6 30313-1",
   "hemoglobin mass volume in blood", "a1c|urine|presence")
_c(L, "hematocrit|hct|haematocrit|packed cell volume|pcv", "4544-3 20570-8 31100-1", "hematocrit", "urine")
_c(L, "red blood cell count|rbc|rbc count|red count|red cell count|red blood cells|erythrocytes|"
   "erythrocyte count", "789-8 26453-1", "erythrocytes #|rbc auto", "distribution width|urine")
_c(L, "rdw|red cell distribution width|red blood cell distribution width|erythrocyte distribution width",
   "21000-5 30385-9", "erythrocyte distribution width")
_c(L, "mcv|mean corpuscular volume|mean cell volume", "787-2 30428-7", "mcv entitic")
_c(L, "mch|mean corpuscular hemoglobin|mean cell hemoglobin", "785-6", "mch entitic")
_c(L, "mchc|mean corpuscular hemoglobin concentration", "786-4", "mchc mass")
_c(L, "mpv|mean platelet volume|platelet mean volume", "32623-1", "platelet mean volume")
_c(L, "pdw|platelet distribution width", "32207-3", "platelet distribution width")
_c(L, "cbc|complete blood count|full blood count|fbc|hemogram|blood count|blood counts",
   "58410-2 57021-8 6690-2 26464-8 789-8 718-7 4544-3 20570-8 787-2 785-6 786-4 21000-5 777-3 32207-3 32623-1",
   group=True)
_c(L, "hba1c|a1c|hb a1c|hgb a1c|hgba1c|hba1c level|glycosylated hb|glycated hb|hemoglobin a1c|glycated hemoglobin|"
   "glycosylated hemoglobin|glycohemoglobin|"
   "haemoglobin a1c", "4548-4 17856-6 4549-2", "hemoglobin a1c|glycated hemoglobin")
_c(L, "glucose|blood sugar|blood glucose|serum glucose|plasma glucose|sugar|bg|fasting glucose|fbg|fasting sugar",
   "2339-0 2345-7 41653-7", "glucose", "urine|presence")
_c(L, "bun|blood urea nitrogen|urea nitrogen|urea", "6299-2 3094-0", "urea nitrogen", "urine")
_c(L, "creatinine|cr|creat|serum creatinine|scr", "2160-0 38483-4", "creatinine",
   "ratio|urine|clearance|albumin|glomerular|formula")
_c(L, "potassium|k|k+|serum potassium", "6298-4 2823-3", "potassium", "urine")
_c(L, "sodium|na|na+|serum sodium", "2947-0 2951-2", "sodium", "urine")
_c(L, "chloride|cl|serum chloride", "2069-3 2075-0", "chloride", "urine")
_c(L, "co2|bicarb|bicarbonate|hco3|total co2|carbon dioxide|tco2", "20565-8 2028-9 1963-8",
   "carbon dioxide|bicarbonate")
_c(L, "calcium|ca|serum calcium", "49765-1 17861-6", "calcium", "urine|ionized")
_c(L, "alt|sgpt|alanine aminotransferase|alanine transaminase", "1742-6", "alanine aminotransferase")
_c(L, "ast|sgot|aspartate aminotransferase|aspartate transaminase", "1920-8", "aspartate aminotransferase")
_c(L, "alkaline phosphatase|alk phos|alp|alkphos", "6768-6", "alkaline phosphatase")
_c(L, "albumin|serum albumin|alb", "1751-7", "albumin mass volume in serum", "urine|creatinine|microalbumin")
_c(L, "bilirubin|total bilirubin|tbili|t bili|bili", "1975-2", "bilirubin total mass volume in serum", "urine")
_c(L, "total protein|protein|serum protein", "2885-2", "protein mass volume in serum", "urine")
_c(L, "globulin", "10834-0", "globulin mass volume in serum")
_c(L, "egfr|gfr|e gfr|estimated gfr|glomerular filtration rate|estimated glomerular filtration rate",
   "33914-3 62238-1 48643-1 48642-3 69405-9 98979-8", "glomerular filtration rate")
_c(L, "uacr|acr|microalbumin|urine microalbumin|microalbumin creatinine ratio|albumin creatinine ratio|"
   "urine albumin creatinine ratio|urine albumin to creatinine ratio|urine microalbumin creatinine ratio|"
   "albumin to creatinine ratio|microalbuminuria",
   "14959-1 9318-7 32294-1", "microalbumin creatinine|albumin creatinine")
_c(L, "bmp|basic metabolic panel|chem 7|chem7|basic panel|lytes|electrolytes",
   "51990-0 2339-0 2345-7 6299-2 3094-0 2160-0 38483-4 49765-1 17861-6 2947-0 2951-2 6298-4 2823-3 2069-3 2075-0 "
   "20565-8 2028-9", group=True)
_c(L, "cmp|comprehensive metabolic panel|chem 14|chem14", "24323-8 24321-2")
_c(L, "liver enzymes|transaminases|aminotransferases|lft enzymes", "1742-6 1920-8", group=True)
_c(L, "h and h|h h|hh|hemoglobin and hematocrit|hgb hct|hgb and hct|h&h",
   "718-7 20509-6 30313-1 4544-3 20570-8 31100-1", group=True)
_c(L, "lft|lfts|liver function tests|liver panel|hepatic panel", "24325-3 1742-6 1920-8 6768-6 1975-2 1751-7 2885-2",
   group=True)
_c(L, "lipid panel|lipids|lipid profile|fasting lipids|cholesterol panel",
   "57698-3 24331-1 2093-3 18262-6 13457-7 2089-1 2085-9 2571-8", group=True)
_c(L, "total cholesterol|cholesterol|tc|serum cholesterol|chol", "2093-3",
   "total cholesterol|cholesterol mass volume in",
   "ldl|hdl|vldl|low density|high density")
_c(L, "ldl|ldl c|ldl cholesterol|bad cholesterol|low density lipoprotein|ldl chol",
   "18262-6 13457-7 2089-1", "ldl|low density lipoprotein", "vldl|very low")
_c(L, "hdl|hdl c|hdl cholesterol|good cholesterol|high density lipoprotein|hdl chol", "2085-9",
   "hdl|high density lipoprotein")
_c(L, "triglycerides|triglyceride|tg|tgs|trigs", "2571-8", "triglyceride")
_c(L, "psa|prostate specific antigen", "2857-1", "prostate specific ag|prostate specific antigen")
_c(L, "bnp|nt probnp|ntprobnp|probnp|pro bnp|natriuretic peptide|brain natriuretic peptide", "33762-6 30934-4",
   "natriuretic peptide|probnp")
_c(L, "ejection fraction|ef|lvef|lv ejection fraction", "10230-1 8806-2", "ejection fraction")
_c(L, "fev1 fvc|fev1 fvc ratio|fev1/fvc", "19926-5", "fev1 fvc")
_c(L, "mmse|mini mental|mini mental status exam|mini mental state exam|mini mental state examination",
   "72106-8", "mmse")
_c(L, "t score|bone density t score|dexa score|dexa t score|dxa t score|bone density score", "38265-5",
   "t score")
_c(L, "phq 9|phq9|phq 9 score|depression score", "44261-6", "phq 9")
_c(L, "phq 2|phq2", "55758-7", "phq 2")
_c(L, "gad 7|gad7|anxiety score", "69737-5 70274-6", "gad 7|generalized anxiety disorder 7")
_c(L, "audit c|audit", "72109-2 75626-2", "audit c")
_c(L, "blood pressure|bp|systolic|diastolic|sbp|dbp|systolic blood pressure|diastolic blood pressure|"
   "systolic bp|diastolic bp", "85354-9 55284-4 8480-6 8462-4 35094-2", "blood pressure", "percentile")
_c(L, "bmi|body mass index", "39156-5", "body mass index", "percentile")
_c(L, "weight|body weight|wt|weights", "29463-7 3141-9", "body weight", "percentile|birth")
_c(L, "height|body height|ht|length|stature", "8302-2 8306-3", "body height", "percentile")
_c(L, "temperature|temp|body temperature|oral temperature|oral temp|fever", "8310-5 8331-1", "temperature")
_c(L, "heart rate|hr|pulse|pulse rate|heart beat", "8867-4", "heart rate|pulse rate")
_c(L, "respiratory rate|rr|resp rate|respirations|breathing rate", "9279-1", "respiratory rate")
_c(L, "spo2|oxygen saturation|o2 sat|o2 saturation|sao2|pulse ox|pulse oximetry|sats", "59408-5 2708-6",
   "oxygen saturation")
_c(L, "nrs|numeric rating scale|nrs pain|verbal numeric rating|pain score|pain scale|pain severity|pain level|"
   "pain rating|pain", "72514-3", "pain severity")
_c(L + " " + S, "smoking status|smoking|tobacco use|tobacco|smoker|tobacco smoking|current smoker|cigarettes",
   "72166-2 449868002 65568007 266919005 8517006", "smoking status|smokes tobacco")
_c(L, "urine ph", "5803-2", "ph of urine")
_c(L, "urine specific gravity|specific gravity|sg", "5811-5 2965-2", "specific gravity")
_c(L, "urine glucose", "5792-7 25428-4", "glucose in urine")
_c(L, "urine protein|proteinuria", "5804-0 20454-5", "protein in urine")

# -- conditions (SNOMED CT) ---------------------------------------------------------------------
_c(S, "hypertension|htn|high blood pressure|elevated blood pressure|essential hypertension|hbp",
   "38341003 59621000", "hypertension", "pulmonary|pregnancy|gestational")
_c(S, "diabetes|dm|t2dm|dm2|dm 2|dm ii|type 2 diabetes|type ii diabetes|diabetes type 2|diabetes mellitus|"
   "sugar diabetes|niddm|type 2 dm|diabetes mellitus type 2|diabetic", "44054006 73211009",
   "diabetes mellitus type 2|diabetes", "prediabetes|neuropathy|retinopathy|nephropathy|gestational|due to|"
   "self management|insipidus")
_c(S, "prediabetes|pre diabetes|borderline diabetes|impaired fasting glucose", "15777000 714628002", "prediabetes")
_c(S, "diabetic neuropathy|diabetic peripheral neuropathy", "368581000119106", "neuropathy due to type 2 diabetes")
_c(S, "heart attack|mi|myocardial infarction|stemi|nstemi|ami", "22298006 399211009 401303003 401314000",
   "myocardial infarction")
_c(S, "afib|a fib|af|atrial fibrillation|a fibrillation", "49436004", "atrial fibrillation")
_c(S, "heart failure|chf|hf|congestive heart failure|chronic heart failure", "88805009 84114007",
   "heart failure", "self management|tracking")
_c(S, "coronary artery disease|cad|coronary heart disease|chd|ischemic heart disease|ihd", "53741008",
   "coronary heart disease|coronary artery disease")
_c(S, "stroke|cva|cerebrovascular accident|brain attack", "230690007", "stroke|cerebrovascular accident")
_c(S, "cardiac arrest|heart stopped|sudden cardiac arrest", "410429000 429007001", "cardiac arrest")
_c(S, "copd|chronic obstructive pulmonary disease|emphysema|chronic obstructive lung disease",
   "185086009 13645005 87433001", "chronic obstructive|emphysema")
_c(S, "asthma|childhood asthma", "195967001 233678006", "asthma")
_c(S, "acute bronchitis|bronchitis", "10509002", "acute bronchitis")
_c(S, "pneumonia|pna|lung infection", "233604007 53084003", "pneumonia")
_c(S, "strep throat|strep pharyngitis|streptococcal pharyngitis|strep", "43878008", "streptococcal sore throat")
_c(S, "viral pharyngitis|acute viral pharyngitis|pharyngitis", "195662009", "viral pharyngitis")
_c(S, "sore throat", "195662009 43878008", "sore throat|pharyngitis")
_c(S, "sinusitis|rhinosinusitis", "36971009 444814009 40055000", "sinusitis")
_c(S, "sinus infection|sinus infections", "36971009 444814009", "viral sinusitis|sinusitis disorder",
   "chronic")
_c(S, "ear infection|otitis media|aom|middle ear infection|otitis", "65363002", "otitis media")
_c(S, "uri|upper respiratory infection|upper respiratory tract infection|urti|common cold|cold",
   "195662009 444814009 36971009 43878008 82272006", "common cold", group=True)
_c(S, "uti|urinary tract infection|bladder infection|utis", "38822007 197927001 68566005",
   "urinary tract infection|cystitis")
_c(S, "hyperlipidemia|high cholesterol|hld|dyslipidemia|hypercholesterolemia|hyperlipidaemia",
   "55822004 13644009", "hyperlipidemia|hypercholesterolemia", "management plan")
_c(S, "hypertriglyceridemia|high triglycerides", "302870006", "hypertriglyceridemia")
_c(S, "anemia|anaemia", "271737000", "anemia")
_c(S, "obesity|obese", "162864005 414916001 408512008", "obesity")
_c(S, "dementia|alzheimer s|alzheimers|alzheimer|alzheimer s disease|alzheimers disease",
   "26929004 230265002 52448006", "alzheimer|dementia", "management")
_c(S, "adhd|add|attention deficit disorder|attention deficit hyperactivity disorder", "192127007",
   "attention deficit")
_c(S, "migraine|migraines|migraine headache", "124171000119105 37796009", "migraine")
_c(S, "epilepsy|seizure disorder|seizures|seizure", "84757009 128613002", "epilepsy|seizure disorder")
_c(S, "concussion|mild tbi|mild traumatic brain injury", "62564004 62106007", "concussion")
_c(S, "broken arm|forearm fracture|fractured forearm|fracture of forearm|broken forearm", "65966004",
   "fracture of forearm")
_c(S, "broken collarbone|clavicle fracture|fractured clavicle|broken clavicle", "58150001", "fracture of clavicle")
_c(S, "wrist fracture|broken wrist|fractured wrist", "263102004", "fracture subluxation of wrist|fracture of wrist")
_c(S, "ankle sprain|sprained ankle|sprain of ankle", "44465007", "sprain of ankle")
_c(S, "wrist sprain|sprained wrist", "70704007", "sprain of wrist")
_c(S, "acl tear|acl injury|torn acl", "444470001", "anterior cruciate ligament")
_c(S, "mcl tear|mcl injury", "444448004", "medial collateral ligament")
_c(S, "rotator cuff injury|rotator cuff tear|torn rotator cuff", "307731004", "rotator cuff")
_c(S, "osteoarthritis|oa|degenerative joint disease|djd|arthritis", "239873007 201834006", "osteoarthritis")
_c(S, "knee oa|knee osteoarthritis|osteoarthritis of knee|knee arthritis", "239873007", "osteoarthritis of knee")
_c(S, "overdose|od|drug overdose", "55680006", "overdose")
_c(S, "pregnancy|pregnant|normal pregnancy", "72892002", "normal pregnancy")
_c(S, "ectopic pregnancy|tubal pregnancy", "79586000", "tubal pregnancy|ectopic pregnancy")
_c(S, "miscarriage|spontaneous abortion|pregnancy loss", "19169002", "miscarriage")
_c(S, "prostate cancer|prostate ca|cancer of the prostate", "126906006 92691004 314994000", "prostate",
   "physical findings|biopsy|specific")
_c(S, "colon cancer|colorectal cancer|crc|colon ca", "109838007 363406005 94260004", "malignant neoplasm of colon|"
   "malignant tumor of colon|carcinoma of colon")
_c(S, "colon polyps|colon polyp|colonic polyp|polyps", "68496003", "polyp of colon")
_c(S, "hay fever|allergic rhinitis|seasonal allergies", "446096008 367498001", "allergic rhinitis")
_c(S, "wisdom teeth|impacted wisdom teeth|impacted molars", "196416002", "impacted molars")
_c(S, "whiplash", "39848009", "whiplash")
_c(S, "chronic kidney disease|ckd|renal insufficiency|chronic renal failure",
   "431855005 431856006 433144002 431857002 46177005 709044004", "chronic kidney disease")
_c(S, "ckd stage 3|ckd 3|stage 3 ckd|chronic kidney disease stage 3", "433144002", "chronic kidney disease stage 3")
_c(S, "depression|major depression|mdd|depressive disorder", "370143000 36923009", "depressi*")
_c(S, "covid|covid 19|coronavirus|sars cov 2", "840539006", "covid 19")

# -- groups: "any <kind>" questions ------------------------------------------------------------
_c(S, "lung disease|lung diseases|lung condition|pulmonary disease|respiratory disease|respiratory condition",
   "10509002 185086009 13645005 87433001 195967001 233678006 233604007 254637007",
   "bronchitis|pneumonia|asthma|emphysema|chronic obstructive|pulmonary|lung|bronchiectasis",
   "management|rehabilitation|transplant|pulmonary embolism", group=True)
_c(S, "heart disease|heart condition|cardiac disease|heart problem|cardiac condition",
   "49436004 410429000 429007001 88805009 84114007 53741008 22298006 399211009",
   "heart|cardiac|myocardial|coronary|atrial fibrillation|angina|cardiomyopathy|arrhythmia",
   "heart rate|management|tracking", group=True)
_c(S, "cancer|any cancer|malignancy|malignant neoplasm|tumor|tumour",
   "126906006 92691004 314994000 109838007 363406005 94260004 254637007 424132000",
   "cancer|carcinoma|malignant|neoplasm|metastasis|lymphoma|leukemia|melanoma|sarcoma|tumor",
   "benign|care plan|screening", group=True)
_c(S, "kidney disease|renal disease|kidney problem|kidney condition",
   "431855005 431856006 433144002 431857002 46177005 709044004 127013003 90781000119102",
   "kidney|renal|nephropathy", "stone|calculus", group=True)
_c(S, "mental health condition|mental health disorder|mental illness|psychiatric condition|psychiatric disorder|"
   "mental disorder|mental health problem|behavioral health condition",
   "192127007 370143000 36923009 35489007 22253000", "depressi*|anxiety|attention deficit|bipolar|schizophren*|"
   "post traumatic stress|ptsd|psychotic|eating disorder|substance|alcoholism|drug abuse", "screening", group=True)
_c(S, "infection|infections|infectious disease|infectious condition",
   "10509002 195662009 43878008 36971009 444814009 40055000 65363002 233604007 38822007 197927001",
   "infection|viral|bacterial|streptococcal|pneumonia|otitis media|sinusitis|pharyngitis|acute bronchitis|"
   "cystitis|cellulitis|sepsis|covid|influenza|hepatitis|hiv", "screening|care", group=True)
_c(S, "fracture|fractures|broken bone|broken bones", "58150001 65966004 263102004 359817006 16114001",
   "fracture", "care", group=True)
_c(S, "cardiovascular disease|cvd|heart or blood vessel disease|circulatory disease",
   "49436004 410429000 429007001 88805009 84114007 53741008 22298006 399211009 38341003 59621000 230690007",
   "heart|cardiac|myocardial|coronary|atrial fibrillation|angina|cardiomyopathy|hypertension|stroke|"
   "cerebrovascular|peripheral vascular|aneurysm", "heart rate|management|tracking|pulmonary hypertension",
   group=True)
_c(S, "chronic lung disease|chronic respiratory disease|chronic pulmonary disease",
   "195967001 233678006 13645005 185086009 87433001", "asthma|chronic obstructive|emphysema|bronchiectasis|"
   "pulmonary fibrosis|cystic fibrosis", "management|rehabilitation", group=True)
_c(S, "respiratory infection|respiratory infections|respiratory tract infection|chest infection",
   "444814009 195662009 10509002 43878008 36971009 233604007 82272006", "pneumonia|acute bronchitis|"
   "sinusitis|pharyngitis|sore throat|common cold|influenza|covid|respiratory infection",
   "chronic sinusitis|chronic obstructive", group=True)
_c(S, "any form of diabetes|any diabetes|diabetes of any kind|any type of diabetes",
   "44054006 46635009 368581000119106 422034002 127013003 1551000119108 157141000119108 90781000119102",
   "diabetes|diabetic", "prediabetes|self management|screening|insipidus", group=True)
_c(S, "neurological disorder|neurological condition|neurologic disorder|neurological disease|nervous system disorder",
   "26929004 84757009 128613002 124171000119105 230690007 230265002", "alzheimer|dementia|epilepsy|seizure disorder|"
   "migraine|stroke|parkinson|multiple sclerosis|neuropathy", "history of|management", group=True)
_c(S, "injury|injuries|trauma|traumatic injury", "62564004 62106007 370247008 403190006 58150001 65966004 "
   "263102004 444470001 444448004 307731004 284551006 283371005 283385000 44465007 70704007 39848009",
   "injury|fracture|laceration|sprain|concussion|burn|whiplash|contusion|dislocation", "care|rehabilitation",
   group=True)
_c(S, "arthritis of any kind|any arthritis|joint disease", "239873007 201834006 90560007 69896004",
   "arthritis|osteoarthritis|gout", group=True)
_c(S, "lipid disorder|lipid disorders|dyslipidaemia|lipid problem", "55822004 302870006 237602007",
   "hyperlipidemia|hypertriglyceridemia|hypercholesterolemia|metabolic syndrome", "management", group=True)
_c(S, "drug allergy|medication allergy|drug allergies|medication allergies|allergy to a drug|allergy to medication",
   "91936005 294505008 293586001 294468006 293963004", "penicillin|sulfonamide|aspirin|ibuprofen|nsaid|"
   "antibiotic|cephalosporin|codeine|morphine", group=True)
_c(S, "food allergy|food allergies", "91930004 417532002 91934008 91935009 420174000 300913006 425525006 714035009",
   "eggs|fish|nut|peanuts|wheat|shellfish|milk|soya|soy", group=True)
_c(S, "environmental allergy|pollen allergy|pollen allergies", "418689008 419263009",
   "pollen", group=True)
_c(S, "nut allergy|tree nut allergy|tree nuts allergy|allergy to nuts", "91934008", "allergy to nut")
_c(S, "cat allergy|dog allergy|pet allergy|animal dander allergy", "232347008", "dander")
_c(S, "bee sting allergy|bee allergy|insect sting allergy|venom allergy", "424213003", "bee venom")

# -- medications (RxNorm): brand and everyday names -> the ingredient as displays spell it -------
# A drug name matches every product that holds the ingredient (combination products too).
for _names, _phrases in [
    ("atorvastatin|lipitor", "atorvastatin|lipitor"), ("simvastatin|zocor", "simvastatin|simvistatin|zocor"),
    ("rosuvastatin|crestor", "rosuvastatin|crestor"), ("pravastatin|pravachol", "pravastatin"),
    ("metformin|glucophage", "metformin|glucophage"), ("insulin|lantus|humalog|novolog", "insulin"),
    ("acetaminophen|tylenol|paracetamol|apap", "acetaminophen|tylenol"),
    ("percocet|oxycodone acetaminophen|oxycodone and acetaminophen", "acetaminophen 325 mg oxycodone"),
    ("vicodin|norco|hydrocodone acetaminophen|hydrocodone", "hydrocodone|vicodin|norco"),
    ("oxycodone|roxicodone", "oxycodone"), ("oxycontin|oxycodone er|oxycodone extended release",
                                            "oxycontin|12 hr oxycodone"),
    ("mirena|mirena iud|hormonal iud|levonorgestrel iud", "mirena|levonorgestrel 52"),
    ("ibuprofen|motrin|advil", "ibuprofen|motrin|advil"),
    ("naproxen|aleve|naprosyn", "naproxen|aleve"), ("clopidogrel|plavix", "clopidogrel|plavix"),
    ("warfarin|coumadin|jantoven", "warfarin|coumadin"), ("furosemide|lasix", "furosemide|lasix"),
    ("amlodipine|norvasc", "amlodipine|norvasc"), ("sertraline|zoloft", "sertraline|zoloft"),
    ("diazepam|valium", "diazepam|valium"), ("donepezil|aricept", "donepezil|aricept"),
    ("galantamine|razadyne", "galantamine|razadyne"), ("fexofenadine|allegra", "fexofenadine|allegra"),
    ("cetirizine|zyrtec", "cetirizine|zyrtec"), ("augmentin|amoxicillin clavulanate|amox clav",
                                                  "clavulanate|augmentin"),
    ("amoxicillin|amoxil", "amoxicillin"), ("penicillin|pen vk|penicillin vk", "penicillin"),
    ("hydrochlorothiazide|hctz|microzide", "hydrochlorothiazide|hctz"),
    ("metoprolol|toprol|toprol xl|lopressor", "metoprolol|toprol|lopressor"),
    ("digoxin|lanoxin", "digoxin|lanoxin"), ("epinephrine|epipen|epi pen|adrenaline", "epinephrine|epipen"),
    ("medroxyprogesterone|depo provera|depo", "medroxyprogesterone|depo provera"),
    ("fluticasone salmeterol|advair", "salmeterol|advair"), ("nitroglycerin|nitro|nitro spray|ntg|nitrostat",
                                                            "nitroglycerin|nitrostat"),
    ("nicotine patch|nicoderm|nicotine", "nicotine"), ("nitrofurantoin|macrobid|macrodantin", "nitrofurantoin"),
    ("prednisone|deltasone", "prednisone"), ("iron|ferrous sulfate|iron pills|iron supplement", "ferrous|iron"),
    ("vitamin b12|b12|b12 shot|cyanocobalamin|vitamin b 12", "vitamin b 12|vitamin b12|cyanocobalamin"),
    ("alteplase|tpa|activase", "alteplase|activase"), ("meperidine|demerol", "meperidine|demerol"),
    ("leuprolide|lupron", "leuprolide|lupron"), ("docetaxel|taxotere", "docetaxel|taxotere"),
    ("phenazopyridine|pyridium", "phenazopyridine|pyridium"), ("captopril|capoten", "captopril|capoten"),
    ("verapamil|calan", "verapamil|calan"), ("lisinopril|prinivil|zestril", "lisinopril|prinivil|zestril"),
    ("albuterol|ventolin|proair|albuterol inhaler|rescue inhaler", "albuterol|ventolin|proair"),
    ("apixaban|eliquis", "apixaban|eliquis"), ("aspirin|asa", "aspirin"),
]:
    _c(R, _names, phrases=_phrases)
_c(R, "statin|statins|cholesterol medication|cholesterol medicine", phrases="atorvastatin|simvastatin|simvistatin|"
   "rosuvastatin|pravastatin|lovastatin|pitavastatin|fluvastatin|lipitor|zocor|crestor", group=True)
_c(R, "opioid|opioids|narcotic|narcotics|opiate|opiates|opioid pain medication", phrases="oxycodone|hydrocodone|"
   "meperidine|morphine|fentanyl|tramadol|codeine|hydromorphone|methadone|tapentadol|buprenorphine|vicodin|"
   "percocet", group=True)
_c(R, "nsaid|nsaids|anti inflammatory", phrases="ibuprofen|naproxen|aspirin|meloxicam|diclofenac|celecoxib|"
   "ketorolac", group=True)
_c(R, "antibiotic|antibiotics", phrases="amoxicillin|penicillin|nitrofurantoin|cephalexin|azithromycin|"
   "doxycycline|ciprofloxacin|levofloxacin|clindamycin|sulfamethoxazole|cefuroxime|cefdinir|ceftriaxone|"
   "vancomycin|piperacillin", group=True)
_c(R, "birth control|contraceptive|contraceptives|contraception|the pill|oral contraceptive|hormonal contraception",
   phrases="28 day pack|91 day pack|day pack|intrauterine system|vaginal ring|norelgestromin|medroxyprogesterone|"
   "norethindrone|levonorgestrel|etonogestrel|drospirenone|norgestimate|mirena|nuvaring|yaz|camila|levora|natazia|"
   "seasonique|trinessa|ortho tri cyclen|jolivette|kyleena|nexplanon", group=True)
_c(R, "blood thinner|blood thinners|anticoagulant|anticoagulants", phrases="warfarin|apixaban|rivaroxaban|"
   "dabigatran|heparin|enoxaparin|coumadin|eliquis|xarelto", group=True)
_c(R, "antihypertensive|blood pressure medication|bp medication|blood pressure medicine|bp meds",
   phrases="lisinopril|hydrochlorothiazide|amlodipine|metoprolol|captopril|verapamil|losartan|atenolol|"
   "chlorthalidone|valsartan|enalapril|hctz|toprol", group=True)

# -- immunizations (CVX) ------------------------------------------------------------------------
_c(V, "flu|flu shot|flu vaccine|influenza|influenza vaccine|flu jab|seasonal flu|flu vaccination",
   "140 141 150 155 158 161 185 186 197 205 88 111 135 144 149 153 166 168 171", "influenza", "haemophilus|hib")
_c(V, "tdap|boostrix|adacel", "115", "tdap")
_c(V, "td|td vaccine|td booster|tenivac|tetanus diphtheria|tetanus and diphtheria|tetanus diphtheria toxoids",
   "113 09 138 139", "td adult|td")
_c(V, "tetanus|tetanus shot|tetanus booster|tetanus vaccine", "113 115 09 138 139", "td adult|tdap|tetanus")
_c(V, "dtap|diphtheria tetanus pertussis|dtp|pediarix|pentacel", "20 106 107 110 50 120 146 01", "dtap")
_c(V, "pneumovax|ppsv23|ppsv|pneumococcal polysaccharide", "33 109", "pneumococcal polysaccharide")
_c(V, "prevnar|pcv13|pcv|pneumococcal conjugate|pcv20|pcv15", "133 152 215 216 100", "pneumococcal conjugate")
_c(V, "pneumonia vaccine|pneumococcal|pneumococcal vaccine|pneumonia shot", "33 109 133 152 215 216 100",
   "pneumococcal")
_c(V, "shingles|shingles vaccine|zoster|shingrix|zostavax|shingles shot|herpes zoster vaccine",
   "121 187 188", "zoster", "varicella")
_c(V, "hpv|hpv vaccine|gardasil|human papillomavirus|human papilloma virus", "62 165 118 137", "hpv")
_c(V, "covid|covid 19|sars cov 2|covid vaccine|covid 19 vaccine|covid shot|covid booster|sars cov 2 vaccine|coronavirus vaccine",
   "207 208 210 211 212 213 217 218 219 221 225 226 227 228 229 230 300 301 302 309 310 311 312 313",
   "covid|sars cov 2")
_c(V, "hep a|hepatitis a|hep a vaccine|hepatitis a vaccine|havrix", "52 83 84 31 85", "hep a")
_c(V, "hep b|hepatitis b|hep b vaccine|hepatitis b vaccine|engerix|recombivax|heplisav", "08 43 44 45 189",
   "hep b")
_c(V, "hib|haemophilus influenzae type b|h flu vaccine", "49 48 17 46 47 51 148", "hib")
_c(V, "polio|ipv|polio vaccine|opv", "10 89 02", "ipv|polio")
_c(V, "mmr|measles|mumps|rubella|mmr vaccine|mmrv", "03 94", "mmr")
_c(V, "varicella|chickenpox|chicken pox|varivax|vzv", "21 94", "varicella")
_c(V, "meningococcal|meningitis vaccine|menactra|menveo|mcv4|menacwy|meningococcal vaccine", "114 136 147 203 108",
   "meningococcal")
_c(V, "rotavirus|rotavirus vaccine|rotateq|rotarix", "119 116 122", "rotavirus")
_c(V, "rsv vaccine|rsv|arexvy|abrysvo", "303 304 305 306 307", "rsv|respiratory syncytial")

# -- encounters, procedures, reports (SNOMED, LOINC) -------------------------------------------------
_c(S, "ed visit|er visit|emergency|emergency visit|emergency room|emergency room visit|emergency department|"
   "emergency department visit|ed|er|ed encounter|er trip", "50849002 4525004",
   "emergency room|emergency encounter|emergency department", "obstetric")
_c(S, "well visit|wellness visit|physical|annual physical|check up|checkup|annual exam|routine visit|"
   "preventive visit|well child visit|well child check|annual visit|wellness exam|physical exam",
   "185349003 410620009 162673000", "check up|well child|general examination of patient")
_c(S, "urgent care|urgent care visit", "702927004", "urgent care")
_c(S, "telehealth|telehealth visit|telemedicine|virtual visit|video visit", "448337001 185317003",
   "telemedicine|telehealth|telephone encounter")
_c(S, "hospitalization|hospitalisation|hospital admission|admission|admitted|hospital stay|inpatient admission",
   "183452005 32485007 305408004 305411003 183495009 183460006", "admission|inpatient", "emergency room",
   group=True)
_c(S, "inpatient stay|inpatient|inpatient encounter|inpatient visit", "183452005", "encounter inpatient")
_c(S, "follow up visit|follow up|followup|follow up appointment", "390906007", "follow up encounter")
_c(S, "office visit|clinic visit", "316744009 185463005", "office visit")
_c(S, "prenatal visit|prenatal visits|antenatal visit|ob visit|prenatal care", "424619006 424441002", "prenatal")
_c(S, "postpartum visit|postnatal visit|post partum visit", "169762003", "postnatal visit")
_c(S, "sick visit|problem visit|visit for a problem|acute visit", "185347001", "encounter for problem")
_c(S, "detox|rehab|drug rehab|drug rehabilitation|detoxification", "56876005", "detoxification|drug rehabilitation")
_c(S, "colonoscopy|scope", "73761001", "colonoscopy")
_c(S, "c section|cesarean|cesarean section|caesarean|c sec|cesarean delivery|c section delivery", "11466000",
   "cesarean")
_c(S, "tubal ligation|tubes tied|btl", "287664005", "tubal ligation")
_c(S, "iud insertion|iud placement|iud", "65200003", "insertion of intrauterine")
_c(S, "pci|stent|coronary stent|angioplasty|percutaneous coronary intervention", "415070008",
   "percutaneous coronary intervention")
_c(S, "cabg|bypass surgery|heart bypass|coronary bypass", "232717009", "coronary artery bypass")
_c(S, "cardioversion|dc cardioversion", "180325003", "cardioversion")
_c(S, "cardiac ablation|ablation|catheter ablation|afib ablation", "18286008", "ablation of tissue of heart")
_c(S, "chest x ray|cxr|chest xray|chest radiograph|chest film", "399208008", "chest x ray")
_c(S, "x ray|xray|x rays|radiograph", "", "x ray")
_c(S, "spirometry|pft|pfts|pulmonary function test|lung function test", "127783003", "spirometry")
_c(S, "echocardiogram|echo|tte|transthoracic echo|cardiac echo", "34552-0 40701008 433236007", "echocardiogra*")
_c(S, "tb skin test|ppd|tb test|tuberculin skin test|mantoux", "28163009", "skin test for tuberculosis")
_c(S, "pap smear|pap|pap test|cervical cytology", "90226004", "cytopathology procedure preparation of smear")
_c(S, "dre|digital rectal exam|rectal exam", "410006001", "digital examination of rectum")
_c(S, "medication reconciliation|med rec|med reconciliation", "430193006", "medication reconciliation")
_c(S, "wisdom tooth extraction|wisdom teeth removal|wisdom teeth extraction|third molar extraction",
   "65546002", "extraction of wisdom tooth")
_c(S, "stitches|sutures|suturing|laceration repair|wound closure", "288086009", "suture open wound")
_c(S, "allergy shots|allergy immunotherapy|immunotherapy|allergy injections", "180256009", "immunotherapy")
_c(S, "dexa scan|dexa|dxa|bone density scan|bone density test", "312681000", "bone density scan")
_c(S, "hiv test|hiv screening", "31676001", "human immunodeficiency virus")
_c(S, "strep test|rapid strep|throat culture|throat swab", "117015009", "throat culture")
_c(L, "urinalysis|ua|urine test|urine dipstick", "24357-6 24356-8", "urinalysis")
_c(L, "death certificate", "69409-1", "certificate of death")
_c(L, "cause of death", "69453-9", "cause of death")


#: Word abbreviations and spellings clinicians write -> the word the vocabulary uses.
WORD_FORMS = {
    "bp": "blood pressure", "temp": "temperature", "ct": "count", "cnt": "count", "hb": "hemoglobin",
    "hgb": "hemoglobin", "fib": "fibrillation", "mold": "mould", "hx": "history", "haemoglobin": "hemoglobin",
    "anaemia": "anemia", "caesarean": "cesarean", "oesophageal": "esophageal", "tumour": "tumor", "wt": "weight",
    "ht": "height", "chol": "cholesterol", "glu": "glucose", "creat": "creatinine", "lvl": "level",
}

#: name -> the concepts it names (one name may name a concept in several code systems:
#: 'covid' is a disorder among Conditions and a vaccine among Immunizations).
BY_NAME: dict[str, list[Concept]] = {}
for _concept in CONCEPTS:
    for _name in dict.fromkeys(_concept.names):
        BY_NAME.setdefault(_name, []).append(_concept)


def concepts_named(name: str) -> list[Concept]:
    """The concepts a (normalised) name names; [] when it names none."""
    return BY_NAME.get(name, [])
