"""The agent runtime: the worker that runs one agent of a Plan on NATS JetStream, in a pod or in `kumeo run`."""
