"""The impairment harness: real calls through an SFU inside a private network namespace, with
loss, policing, shaping and delay per party and direction changed on a schedule while the call
runs, measured per receiver. ``python -m benchmarks.impair --help``; results in
benchmarks/RESULTS.md ("Impaired networks")."""
