"""hubrt: a hub runtime for SmartThings-Edge-style Lua drivers, on your laptop."""

__version__ = "0.1.0"
