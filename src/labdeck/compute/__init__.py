"""Running workloads (model servers now, notebook servers later) on a compute backend:
local processes on this machine, or Kubernetes objects on a cluster."""
