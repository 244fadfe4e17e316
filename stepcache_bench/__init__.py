"""The StepCache benchmarks: `stepcache bench` (paper-shaped, arms compared in one run) and
`stepcache scale` (lookup latency and memory against cache size). Not collected by pytest."""
