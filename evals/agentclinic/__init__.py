"""AgentClinic-style consultations: our agent is the doctor (ask_patient, request_test), a
patient agent and a measurement agent answer from the case, a moderator judges the diagnosis."""

from .benchmark import AgentClinicBenchmark

__all__ = ["AgentClinicBenchmark"]
