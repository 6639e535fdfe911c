"""Example processes: the code of the docs' tutorial, run by the test suite (tests/examples/)."""
