import csv  # noqa: F401
import pkg.sub.leaf  # noqa: F401
