"""The DVC pipeline: `core` (shared by every stage), `stages` (one module per stage),
`experiments` (one folder per experiment) and `reporting` (notebooks rendered to HTML).
Uses bnk, never the reverse."""
