"""The tool-call protocol: how the planner is told about tools and how its output is read."""
