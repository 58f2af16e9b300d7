"""The agent runtime: executes a ``Run`` with AgentScope 2.x and streams AG-UI events.

Modules (import them directly; this package imports nothing heavy so Django start-up
never pays for AgentScope, which costs ~1.7 s and ~115 MB to import):

``execute``     ``run_execute(run_id)``: claim, build, stream, finalise (the task calls it)
``recovery``    ending runs whose worker died, the sweeper
``emitter``     per-run sequence numbers, batching, store-then-publish of events
``translate``   AgentScope events → AG-UI events, RunStep records, the answer text
``strategies``  the agent types (dialog, react, agentic_rag, plan_execute, reflexion)
``builder``     the AgentScope agent for a pinned ``AgentVersion`` (model, tools, memory)
``persona``     safe rendering of the system prompt template and few-shot examples
``tools``       the built-in tools and their permission policy
``smoke``       the review smoke run: a version answers once on the demo model, no rows
``errors``      ``RunFailure``: a failure with a stable code and a message users may see
"""
