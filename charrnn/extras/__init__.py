"""Optional accelerators and scale-out: each behind one switch, tested equal to the core path,
falls back with one message.
"""
