// PlayheadLake: work in progress; see docs/architecture.md.
