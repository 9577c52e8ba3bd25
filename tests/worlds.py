"""Parameter sets for test worlds (imported by conftest and tests)."""

#: the world of config/small.yaml, as a parameter dict (tests that vary one scenario start here)
SMALL = {"world": {"n_firms": 2500, "n_counties": 120, "certification": {"per_batch": 8}}}
