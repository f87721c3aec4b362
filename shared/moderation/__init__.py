"""The moderation core both services run: policy, subjects, the store interface, the memory store, the engine.

The moderation service serves it over HTTP on Redis; auth's fail-open fallback runs it in
process on the memory store. It imports no service: each caller hands the engine its own
metrics hook.
"""
