"""What a user can ask ldapsync to do, one module per operation.

Each action takes a validated config and plain arguments, does its work
through the pipeline (:mod:`ldapsync.sync`) and the apply step
(:mod:`ldapsync.apply`), and returns a typed result; it prints nothing.
The command line (:mod:`ldapsync.cli`) parses options, calls an action and
shows its result as text or JSON.
"""
