"""The Kubernetes executor: one pod per attempt, tracked by one watch per run."""
