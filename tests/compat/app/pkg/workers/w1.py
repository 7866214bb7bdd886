import fractions  # noqa: F401
