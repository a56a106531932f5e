"""Runtime helpers of the estimator layer: devices, chunked evaluation, threads, progress."""
