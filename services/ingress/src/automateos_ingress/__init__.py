"""AutomateOS ingress: webhooks and manual runs in, jobs on the queue, 202 out."""
