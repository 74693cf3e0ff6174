"""The machinery that runs jobs: the plan, the scheduler and the executors.

Layering: the definition layer (routines, slots, events, connections, flows)
never imports from here at module level except :mod:`flowforge.flow`, which is
the door users run jobs through. The runtime knows the definition; nothing
here imports :mod:`flowforge.flow`.
"""
