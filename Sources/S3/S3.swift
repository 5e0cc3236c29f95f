// S3: work in progress; see docs/architecture.md.
