"""medagent's planner side: settings, the command line, and (later) the LangGraph agent."""
