"""The shared kernel every service runs on: settings, service runtime, bus, database.

No domain logic lives here.
"""
