"""Lightning callbacks: the task sequencer and the in-task checkpoint."""
