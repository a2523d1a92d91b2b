"""The react strategy as an explicit LangGraph ``StateGraph``:

    START -> plan -+-> act -> plan            (tool calls, then plan again)
                   +-> plan                   (a repeated call: a note, plan again)
                   +-> answer -> END          (a final answer, ids cited)
                   +-> finish -> END          (budget, invalid output, model or tool failure)
"""

from __future__ import annotations

from langgraph.graph import START, StateGraph

from . import nodes
from .state import AgentContext, AgentState


def build_react_graph(checkpointer=None):
    graph = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("plan", nodes.plan)
    graph.add_node("act", nodes.act)
    graph.add_node("answer", nodes.answer)
    graph.add_node("finish", nodes.finish)
    graph.add_edge(START, "plan")
    return graph.compile(checkpointer=checkpointer)
