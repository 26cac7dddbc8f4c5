"""hubrt: a hub runtime for SmartThings-Edge-style Lua drivers, on your laptop.

PYTEST_DONT_REWRITE: hubrt's pytest plugin lives in this package, which `hubrt
test` has imported before pytest starts; the marker keeps pytest from warning
that it can no longer rewrite asserts here (hubrt has no test asserts to rewrite).
"""

__version__ = "0.1.0"
