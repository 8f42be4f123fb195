"""`kumeo run`: an embedded nats-server, the agent workers and an optional local LLM server."""
