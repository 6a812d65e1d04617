"""The run engine: one run in one process (see :mod:`streambench.generate`)."""
