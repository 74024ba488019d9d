"""The `factory` command line: submit, run, status and ui over the same Definitions."""
