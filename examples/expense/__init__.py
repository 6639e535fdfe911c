"""The tutorial's expense claim: a definition (expense.json) and its step handler (steps.py).

Load the handler in every Flowdesk process with ``FLOWDESK_STEP_MODULES=examples.expense.steps``.
"""
