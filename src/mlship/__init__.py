"""mlship: ship a notebook's model as a tested, versioned container image with one command.

The command line is a thin layer over this package's functions; each returns a result model and raises
:class:`mlship.errors.MlshipError` (one message and a hint) when something is wrong.
"""

__version__ = "0.1.0"
