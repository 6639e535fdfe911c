"""The inbox keeps no tables of its own: who may act on a task is ``processes.authority``'s rule
over the task's columns."""
