"""The four services; each folder is one service and nothing else."""
