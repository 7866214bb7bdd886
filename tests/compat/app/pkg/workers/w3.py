import email.message  # noqa: F401
