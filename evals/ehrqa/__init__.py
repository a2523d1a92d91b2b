"""An EHRQA-style evaluation: questions with golds computed from any FHIR store (generate.py),
a scorer for free-text answers (score.py) and an oracle planner that plays each question's
ideal tool calls through the real agent (oracle.py), measuring what the tools let a planner
answer."""
