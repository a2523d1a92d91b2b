"""``medagent chat``: an interactive conversation with the agent about one patient at a time.

``app`` is the loop, ``commands`` the slash-command table, ``render`` the terminal output,
``turn`` a turn in a worker thread (live events, streaming, Ctrl-C), ``sessions`` what is kept
on disk, ``card`` the patient summary card.
"""
