import decimal  # noqa: F401
