"""Model deployments: the spec (and SeldonDeployment import), their storage, the
controller that makes them run, and the gateway that routes predictions to them."""
