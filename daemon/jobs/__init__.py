"""Jobs: the durable queue (the `jobs` projection), resource slots, one worker process group per
job, the framed channel between worker and daemon, cancel (SIGTERM, grace, SIGKILL), crash
reconciliation, and the launchers for multi-device jobs. The daemon alone writes a job's terminal
state; `worker.py` is the entry point that runs inside the job's process."""
